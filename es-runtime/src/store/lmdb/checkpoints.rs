//! Projection checkpoints: per projection name, the last position it has applied.

use heed::{RoTxn, RwTxn};

use super::fail::{self, Fail};
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

    /// Every checkpoint, sorted by name (LMDB's key order is the names' byte order).
    pub(super) fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        let r = self.reader()?;
        let mut all = Vec::new();
        let entries = self.checkpoints.iter(&r.txn).map_err(fail::read_failed)?;
        for entry in entries {
            let (name, value) = entry.map_err(fail::read_failed)?;
            let at = || Location::Checkpoint(String::from_utf8_lossy(name).into_owned());
            let name = std::str::from_utf8(name).map_err(|e| ReadError::Corrupt {
                at: at(),
                reason: format!("the name is not UTF-8: {e}"),
            })?;
            let position = record::read_position(value).ok_or_else(|| ReadError::Corrupt {
                at: at(),
                reason: format!("{} bytes instead of 8", value.len()),
            })?;
            all.push((name.to_owned(), position));
        }
        Ok(all)
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
