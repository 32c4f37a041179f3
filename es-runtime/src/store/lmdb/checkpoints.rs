//! Projection checkpoints: per projection name, the last position it has applied.

use heed::{RoTxn, RwTxn};

use super::fail::Fail;
use super::{Inner, record};
use crate::error::{Location, ReadError, WriteError};

impl Inner {
    pub(super) fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        let at = || Location::Checkpoint(name.to_owned());
        let key =
            checkpoint_key(name).map_err(|reason| WriteError::InvalidInput { at: at(), reason })?;
        self.write(&at, |txn| {
            self.checkpoints.put(txn, key, &position.to_be_bytes())?;
            Ok(())
        })
    }

    pub(super) fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        let key = checkpoint_key(name).map_err(|reason| ReadError::InvalidInput {
            at: Location::Checkpoint(name.to_owned()),
            reason,
        })?;
        let r = self.reader()?;
        self.checkpoint_in(&r.txn, key)
            .map_err(Fail::into_read_error)
    }

    /// The checkpoint of the projection named `name` (as bytes), as `txn` sees it.
    pub(super) fn checkpoint_in(&self, txn: &RoTxn<'_>, name: &[u8]) -> Result<Option<u64>, Fail> {
        match self.checkpoints.get(txn, name)? {
            None => Ok(None),
            Some(v) => record::read_position(v)
                .map(Some)
                .ok_or_else(|| Fail::Corrupt {
                    at: Location::Checkpoint(String::from_utf8_lossy(name).into_owned()),
                    reason: format!("{} bytes instead of 8", v.len()),
                }),
        }
    }

    /// Moves the checkpoint of the projection named `name` to `position`.
    pub(super) fn put_checkpoint(
        &self,
        txn: &mut RwTxn<'_>,
        name: &[u8],
        position: u64,
    ) -> Result<(), Fail> {
        Ok(self.checkpoints.put(txn, name, &position.to_be_bytes())?)
    }

    /// Removes the checkpoint of the projection named `name`.
    pub(super) fn delete_checkpoint(&self, txn: &mut RwTxn<'_>, name: &[u8]) -> Result<(), Fail> {
        self.checkpoints.delete(txn, name)?;
        Ok(())
    }
}

fn checkpoint_key(name: &str) -> Result<&[u8], String> {
    crate::store::checkpoint_name(name).map(|()| name.as_bytes())
}
