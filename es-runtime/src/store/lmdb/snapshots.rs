//! Snapshots: records keyed by stream and version, the newest few of each stream kept.

use std::ops::Bound;

use heed::RwTxn;

use super::fail::{Fail, corrupt, read_failed};
use super::{Inner, record};
use crate::error::{Location, ReadError};
use crate::event::StreamId;
use crate::store::Snapshot;

/// The keys of one stream's snapshots, from version 0 up to an end: the range that every walk
/// over a stream's snapshots takes.
struct KeyRange {
    lo: Vec<u8>,
    hi: Vec<u8>,
    /// Whether `hi` is in the range.
    inclusive: bool,
}

impl KeyRange {
    /// The keys of `stream`'s snapshots of versions below `below`, or of all of them.
    fn of(stream: &str, below: Option<u64>) -> KeyRange {
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        record::stream_key(&mut lo, stream, 0);
        record::stream_key(&mut hi, stream, below.unwrap_or(u64::MAX));
        KeyRange {
            lo,
            hi,
            inclusive: below.is_none(),
        }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let hi = if self.inclusive {
            Bound::Included(&self.hi[..])
        } else {
            Bound::Excluded(&self.hi[..])
        };
        (Bound::Included(&self.lo[..]), hi)
    }
}

impl Inner {
    /// Writes a snapshot record and drops all but the newest `keep` of the stream's.
    pub(super) fn put_snapshot(
        &self,
        txn: &mut RwTxn<'_>,
        stream: &str,
        version: u64,
        value: &[u8],
        keep: usize,
    ) -> Result<(), Fail> {
        let db = self.snapshots;
        let mut key = Vec::new();
        record::stream_key(&mut key, stream, version);
        db.put(txn, &key, value)?;
        let range = KeyRange::of(stream, None);
        let mut old = Vec::new();
        for (i, entry) in db.rev_range(txn, &range.bounds())?.enumerate() {
            let (k, _) = entry?;
            if i >= keep {
                old.push(k.to_vec());
            }
        }
        for k in old {
            db.delete(txn, &k)?;
        }
        Ok(())
    }

    pub(super) fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        let r = self.reader()?;
        let name = stream.as_str();
        let mut key = Vec::new();
        record::stream_key(&mut key, name, u64::MAX);
        let Some((k, v)) = self
            .snapshots
            .get_lower_than_or_equal_to(&r.txn, &key)
            .map_err(read_failed)?
        else {
            return Ok(None);
        };
        let Some(version) = record::key_version(k, name) else {
            return Ok(None);
        };
        decode_snapshot(stream, version, k, v, self.legacy).map(Some)
    }

    pub(super) fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        let r = self.reader()?;
        let name = stream.as_str();
        let range = KeyRange::of(name, None);
        let mut out = Vec::new();
        for entry in self
            .snapshots
            .range(&r.txn, &range.bounds())
            .map_err(read_failed)?
        {
            let (k, v) = entry.map_err(read_failed)?;
            let version = record::key_version(k, name).unwrap_or_default();
            out.push(decode_snapshot(stream, version, k, v, self.legacy)?);
        }
        Ok(out)
    }

    pub(super) fn load_snapshot_before(
        &self,
        stream: &StreamId,
        below: u64,
    ) -> Result<Option<Snapshot>, ReadError> {
        let r = self.reader()?;
        let name = stream.as_str();
        let range = KeyRange::of(name, Some(below));
        for entry in self
            .snapshots
            .rev_range(&r.txn, &range.bounds())
            .map_err(read_failed)?
        {
            let (k, v) = entry.map_err(read_failed)?;
            let Some(version) = record::key_version(k, name) else {
                continue;
            };
            match decode_snapshot(stream, version, k, v, self.legacy) {
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(error) => {
                    tracing::warn!(%stream, version, %error, "skipping a damaged snapshot");
                }
            }
        }
        Ok(None)
    }
}

fn decode_snapshot(
    stream: &StreamId,
    version: u64,
    key: &[u8],
    value: &[u8],
    legacy: bool,
) -> Result<Snapshot, ReadError> {
    let (state_version, payload) =
        record::decode_snapshot(key, value, legacy).map_err(|reason| {
            corrupt(
                || Location::Snapshot {
                    stream: stream.clone(),
                    version,
                },
                reason,
            )
        })?;
    Ok(Snapshot {
        version,
        state_version,
        payload: payload.to_vec(),
    })
}
