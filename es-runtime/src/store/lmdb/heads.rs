//! Stream heads: a stream's version and the position of its last event.
//!
//! The `heads` database is brought up to date only every so many positions (a *heads
//! checkpoint*, recorded as `meta/heads_at`), so that a group commit writes the log's pages and
//! not a page of `heads` per stream it touches. The records after the checkpoint form the
//! tail; a stream's head is its latest record in the tail, or else its `heads` entry.
//!
//! [`Tail`] indexes the tail in memory, per process. Log records never change once committed,
//! so whatever a transaction sees of the log can be added to the index, and a transaction that
//! sees the log up to position `p` with the checkpoint at `h` looks up the latest record of a
//! stream in `(h, p]`. Transactions older than the previous checkpoint fall back to scanning
//! the log themselves.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::MutexGuard;

use heed::{RoTxn, RwTxn};

use super::fail::Fail;
use super::{Inner, record};
use crate::error::{Location, WriteError};
use crate::event::StreamId;
use crate::store::{StreamHead, in_category};

impl Inner {
    /// The version of `stream` and the position of its last event, as `txn` sees them.
    pub(super) fn head_in(&self, txn: &RoTxn<'_>, stream: &StreamId) -> Result<(u64, u64), Fail> {
        let (stream, id) = (stream.as_str(), stream);
        let (h, p) = self.tail_window(txn)?;
        if h < p {
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, txn, h, p)?;
            let found = if tail.covers(h, p) {
                tail.latest(stream, h, p).map_err(unreadable)?
            } else {
                // A transaction older than the index (two checkpoints ago): read its tail.
                drop(tail);
                self.scan_tail(txn, stream, h, p)?
            };
            if let Some(head) = found {
                return Ok(head);
            }
        }
        self.stored_head(txn, id)
    }

    /// The heads checkpoint and the last position, as `txn` sees them: the tail is `(h, p]`.
    pub(super) fn tail_window(&self, txn: &RoTxn<'_>) -> Result<(u64, u64), Fail> {
        let p = super::log::last_position(self.log, self.meta, txn)?;
        Ok((self.heads_at(txn, p)?, p))
    }

    /// The heads checkpoint as `txn` sees it, for a log whose last position is `p`.
    pub(super) fn heads_at(&self, txn: &RoTxn<'_>, p: u64) -> Result<u64, Fail> {
        let h = match self.meta.get(txn, record::HEADS_AT_KEY)? {
            None => 0,
            Some(value) => record::read_position(value).ok_or_else(|| Fail::Corrupt {
                at: Location::Store,
                reason: format!(
                    "the heads checkpoint has {} bytes instead of 8",
                    value.len()
                ),
            })?,
        };
        // Never past the log, even if records were removed behind LMDB's back.
        Ok(h.min(p))
    }

    pub(super) fn lock_tail(&self) -> MutexGuard<'_, Tail> {
        // The index is consistent between any two of its calls, so a poisoned lock is too.
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the tail index up to what `txn` sees: checkpoint `h`, log up to `p`.
    pub(super) fn index_tail(
        &self,
        tail: &mut Tail,
        txn: &RoTxn<'_>,
        h: u64,
        p: u64,
    ) -> Result<(), Fail> {
        tail.observe(h);
        if tail.upto() >= p {
            return Ok(());
        }
        for item in self.log.range(txn, &(tail.upto() + 1..=p))? {
            let (position, value) = item?;
            // A hole, or a key damaged into a larger number: one entry for the whole gap, so
            // that a key far past the log's end costs no more than a hole of one.
            if tail.upto() + 1 < position {
                tail.add_missing(position - 1);
            }
            match record::decode_event(position, value) {
                Ok(e) => tail.add(position, e.stream, e.version),
                Err(reason) => tail.add_unreadable(position, reason),
            }
        }
        Ok(())
    }

    /// The latest record of `stream` in `(h, p]`, read from the log, newest first.
    pub(super) fn scan_tail(
        &self,
        txn: &RoTxn<'_>,
        stream: &str,
        h: u64,
        p: u64,
    ) -> Result<Option<(u64, u64)>, Fail> {
        for item in self.log.rev_range(txn, &(h + 1..=p))? {
            let (position, value) = item?;
            let e = record::decode_event(position, value)
                .map_err(|reason| unreadable(Unreadable(position, reason)))?;
            if e.stream == stream {
                return Ok(Some((e.version, position)));
            }
        }
        Ok(None)
    }

    /// The head of `stream` in the `heads` database (as of the heads checkpoint).
    ///
    /// A head is checked against its own checksum (which covers its key); a stream with no
    /// head is checked against its neighbours: the entry after where its head would be must
    /// link to the key before it. A head whose key was damaged sorts elsewhere, or is not
    /// found at all; either way that link is broken (or the entry found fails its checksum),
    /// so the stream is not taken for a new one.
    pub(super) fn stored_head(
        &self,
        txn: &RoTxn<'_>,
        stream: &StreamId,
    ) -> Result<(u64, u64), Fail> {
        let key = stream.as_str().as_bytes();
        let corrupt = |reason: String| Fail::Corrupt {
            at: Location::Head(stream.clone()),
            reason,
        };
        let found = self.heads.get(txn, key)?;
        if self.plain_heads {
            return match found {
                None => Ok((0, 0)),
                Some(value) => record::read_plain_head(value)
                    .ok_or_else(|| corrupt(format!("{} bytes instead of 16", value.len()))),
            };
        }
        if let Some(value) = found {
            return record::read_head(key, value)
                .map(|head| (head.version, head.position))
                .map_err(corrupt);
        }
        let after = self
            .heads
            .range(txn, &(Bound::Excluded(key), Bound::Unbounded))?
            .next()
            .transpose()?;
        let Some((after, value)) = after else {
            return Err(corrupt(
                "no head is stored for it, and the end of the stream heads is missing (a \
                 damaged key of the heads database)"
                    .to_owned(),
            ));
        };
        let link = record::read_head(after, value)
            .map_err(|reason| {
                corrupt(format!(
                    "no head is stored for it, and the head after where it would be (under \
                     {}) cannot be read: {reason}",
                    record::shown_key(after)
                ))
            })?
            .link;
        let before = self
            .heads
            .rev_range(txn, &(Bound::Unbounded, Bound::Excluded(key)))?
            .next()
            .transpose()?
            .map_or(&[][..], |(k, _)| k);
        if record::head_link(before) != link {
            return Err(corrupt(format!(
                "no head is stored for it, but the heads around where it would be (under {} \
                 and {}) do not follow one another: a key of the heads database was damaged, \
                 and it may have been this stream's",
                record::shown_key(before),
                record::shown_key(after)
            )));
        }
        Ok((0, 0))
    }

    /// Writes the head of the stream under `key`, linked to the key before it; a stream new
    /// to `heads` also relinks the entry after it.
    fn put_head(
        &self,
        txn: &mut RwTxn<'_>,
        key: &[u8],
        version: u64,
        position: u64,
    ) -> Result<(), Fail> {
        let known = self
            .heads
            .get(txn, key)?
            .and_then(|old| record::read_head(key, old).ok())
            .map(|old| old.link);
        let link = match known {
            Some(link) => link,
            None => {
                let link = record::head_link(
                    self.heads
                        .rev_range(txn, &(Bound::Unbounded, Bound::Excluded(key)))?
                        .next()
                        .transpose()?
                        .map_or(&[][..], |(k, _)| k),
                );
                let after = self
                    .heads
                    .range(txn, &(Bound::Excluded(key), Bound::Unbounded))?
                    .next()
                    .transpose()?
                    .map(|(k, v)| (k.to_vec(), record::read_head(k, v)));
                let (after, head) = match after {
                    None => (record::HEADS_END.to_vec(), Ok(record::Head::default())),
                    Some(found) => found,
                };
                let head = head.map_err(|reason| Fail::Corrupt {
                    at: Location::Store,
                    reason: format!(
                        "the stream head under {}: {reason}",
                        record::shown_key(&after)
                    ),
                })?;
                self.heads.put(
                    txn,
                    &after,
                    &record::head_value(
                        &after,
                        head.version,
                        head.position,
                        record::head_link(key),
                    ),
                )?;
                link
            }
        };
        self.heads
            .put(txn, key, &record::head_value(key, version, position, link))?;
        Ok(())
    }

    /// Writes the head of every stream of the tail `(h, p]` (as `tail` has them, overridden
    /// by `newer`) and moves the checkpoint to `to`.
    pub(super) fn write_heads(
        &self,
        txn: &mut RwTxn<'_>,
        tail: &Tail,
        (h, p): (u64, u64),
        newer: &HashMap<&str, (u64, u64)>,
        to: u64,
    ) -> Result<(), Fail> {
        let older = tail
            .heads(h, p)
            .map_err(unreadable)?
            .filter(|(stream, ..)| !newer.contains_key(stream));
        let newest = newer.iter().map(|(&s, &(v, pos))| (s, v, pos));
        for (stream, version, position) in older.chain(newest) {
            self.put_head(txn, stream.as_bytes(), version, position)?;
        }
        self.meta
            .put(txn, record::HEADS_AT_KEY, &to.to_be_bytes())?;
        Ok(())
    }

    /// Writes the heads of the whole tail (so that the next open reads no tail).
    pub(super) fn checkpoint_heads(&self) -> Result<(), WriteError> {
        let to = self.write(&|| Location::Store, |txn| {
            let (h, p) = self.tail_window(txn)?;
            if h == p {
                return Ok(None);
            }
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, txn, h, p)?;
            if !tail.covers(h, p) {
                return Ok(None);
            }
            self.write_heads(txn, &tail, (h, p), &HashMap::new(), p)?;
            Ok(Some(p))
        })?;
        if let Some(to) = to {
            self.lock_tail().observe(to);
        }
        Ok(())
    }
}

/// Rewrites every stream head of a store of format 4 or older with its checksum and its link
/// to the key before it, and adds the end of the heads ([`record::HEADS_END`]). A value that
/// is not a head of the older form is left as it is, to be found damaged.
pub(super) fn checksum_heads(
    txn: &mut RwTxn<'_>,
    heads: &heed::Database<'_, heed::types::Bytes, heed::types::Bytes>,
) -> heed::Result<()> {
    let mut all = Vec::new();
    for item in heads.iter(txn)? {
        let (key, value) = item?;
        if key != record::HEADS_END {
            all.push((key.to_vec(), record::read_plain_head(value)));
        }
    }
    let mut before: &[u8] = &[];
    for (key, head) in &all {
        if let Some((version, position)) = *head {
            let value = record::head_value(key, version, position, record::head_link(before));
            heads.put(txn, key, &value)?;
        }
        before = key;
    }
    let end = record::head_value(record::HEADS_END, 0, 0, record::head_link(before));
    heads.put(txn, record::HEADS_END, &end)
}

/// The end of the heads of a new store: no stream before it.
pub(super) fn new_heads(
    txn: &mut RwTxn<'_>,
    heads: &heed::Database<'_, heed::types::Bytes, heed::types::Bytes>,
) -> heed::Result<()> {
    let end = record::head_value(record::HEADS_END, 0, 0, record::head_link(&[]));
    heads.put(txn, record::HEADS_END, &end)
}

/// A tail record that could not be read: the versions of the streams it may belong to are
/// unknown.
pub(super) fn unreadable(Unreadable(position, reason): Unreadable) -> Fail {
    Fail::Corrupt {
        at: Location::Position(position),
        reason: format!(
            "{reason}; it was written after the stream heads were last stored, so the version \
             of any stream that may have an event there is unknown"
        ),
    }
}

/// The tail index: the stream, version and position of every record in `(from, upto]`.
#[derive(Debug)]
pub(super) struct Tail {
    /// Every record after this position (up to `upto`) is indexed.
    from: u64,
    /// The last position indexed.
    upto: u64,
    /// The latest heads checkpoint seen; entries up to the previous one are dropped when it
    /// moves, so a transaction begun just before a checkpoint still finds its tail here.
    checkpoint: u64,
    /// Per stream, `(position, version)` of its records in the indexed range, in log order.
    streams: HashMap<Box<str>, Vec<(u64, u64)>>,
    /// The runs of positions `first..=last` of the indexed range that could not be read, and
    /// why: a stream whose latest readable record is older than one of them has an unknown
    /// head.
    unreadable: Vec<(u64, u64, String)>,
}

/// A record of the tail that could not be read: its position and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unreadable(pub(super) u64, pub(super) String);

impl Tail {
    /// An empty index of a tail that starts after `checkpoint`.
    pub(super) fn new(checkpoint: u64) -> Tail {
        Tail {
            from: checkpoint,
            upto: checkpoint,
            checkpoint,
            streams: HashMap::new(),
            unreadable: Vec::new(),
        }
    }

    /// The last position indexed.
    pub(super) fn upto(&self) -> u64 {
        self.upto
    }

    /// Prepares the index for a transaction that sees the checkpoint at `h`: forgets what an
    /// older checkpoint covered, or starts over when the checkpoint moved past everything
    /// indexed (another process wrote and checkpointed meanwhile). The caller then indexes up
    /// to what the transaction sees.
    pub(super) fn observe(&mut self, h: u64) {
        if h > self.upto {
            *self = Tail::new(h);
        } else if h > self.checkpoint {
            let keep_after = self.checkpoint;
            self.checkpoint = h;
            self.trim(keep_after);
        }
    }

    /// Whether the index answers for a transaction that sees the checkpoint at `h` and the log
    /// up to `p`.
    pub(super) fn covers(&self, h: u64, p: u64) -> bool {
        self.from <= h && p <= self.upto
    }

    /// Indexes the record at `position`, the next one after `upto`; records already indexed
    /// are ignored, and so is a record that would leave a gap (the index then stays short and
    /// is extended from the log by the next lookup).
    pub(super) fn add(&mut self, position: u64, stream: &str, version: u64) {
        if position != self.upto + 1 {
            return;
        }
        self.upto = position;
        match self.streams.get_mut(stream) {
            Some(records) => records.push((position, version)),
            None => {
                self.streams
                    .insert(stream.into(), vec![(position, version)]);
            }
        }
    }

    /// Notes that the record at `position`, the next one after `upto`, could not be read.
    pub(super) fn add_unreadable(&mut self, position: u64, reason: String) {
        if position != self.upto + 1 {
            return;
        }
        self.upto = position;
        self.unreadable.push((position, position, reason));
    }

    /// Notes that the log has no record after `upto` up to `last`.
    pub(super) fn add_missing(&mut self, last: u64) {
        if last <= self.upto {
            return;
        }
        let first = self.upto + 1;
        self.upto = last;
        let reason = if first == last {
            "the log has no record there".to_owned()
        } else {
            format!("the log has no record there, nor up to position {last}")
        };
        self.unreadable.push((first, last, reason));
    }

    /// The `(version, position)` of the latest record of `stream` in `(h, p]`; `None` if the
    /// stream has none there. Fails if a record after the stream's latest one in the window
    /// could not be read: it may be the stream's. Needs [`covers`](Self::covers)`(h, p)`.
    pub(super) fn latest(
        &self,
        stream: &str,
        h: u64,
        p: u64,
    ) -> Result<Option<(u64, u64)>, Unreadable> {
        debug_assert!(self.covers(h, p));
        let found = self
            .streams
            .get(stream)
            .and_then(|records| latest_in(records, h, p));
        let after = found.map_or(h, |(position, _)| position);
        self.readable(after, p)?;
        Ok(found.map(|(position, version)| (version, position)))
    }

    /// Fails if a record in `(after, p]` could not be read.
    pub(super) fn readable(&self, after: u64, p: u64) -> Result<(), Unreadable> {
        match self
            .unreadable
            .iter()
            .find(|(first, last, _)| *first <= p && *last > after)
        {
            Some((first, _, reason)) => Err(Unreadable((*first).max(after + 1), reason.clone())),
            None => Ok(()),
        }
    }

    /// The latest `(stream, version, position)` of every stream with records in `(h, p]`:
    /// what a checkpoint at `p` writes to `heads`. Needs [`covers`](Self::covers)`(h, p)`.
    pub(super) fn heads(
        &self,
        h: u64,
        p: u64,
    ) -> Result<impl Iterator<Item = (&str, u64, u64)>, Unreadable> {
        debug_assert!(self.covers(h, p));
        self.readable(h, p)?;
        Ok(self.streams.iter().filter_map(move |(stream, records)| {
            latest_in(records, h, p).map(|(position, version)| (&**stream, version, position))
        }))
    }

    /// Drops the entries at or before `position`.
    fn trim(&mut self, position: u64) {
        if position <= self.from {
            return;
        }
        self.from = position;
        self.streams.retain(|_, records| {
            let cut = records.partition_point(|&(p, _)| p <= position);
            records.drain(..cut);
            !records.is_empty()
        });
        self.unreadable.retain_mut(|(first, last, _)| {
            *first = (*first).max(position + 1);
            *last > position
        });
    }
}

/// The latest `(position, version)` of a stream's records (in log order) in `(h, p]`.
fn latest_in(records: &[(u64, u64)], h: u64, p: u64) -> Option<(u64, u64)> {
    records
        .iter()
        .rev()
        .find(|&&(position, _)| position <= p)
        .filter(|&&(position, _)| position > h)
        .copied()
}

/// Listing the streams: the `heads` database merged with the tail, in key order.
impl Inner {
    /// [`EventStore::streams`](crate::EventStore::streams) as `txn` sees the store.
    pub(super) fn list_streams(
        &self,
        txn: &RoTxn<'_>,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, Fail> {
        use std::collections::BTreeMap;
        use std::ops::Bound;

        let wanted = |stream: &str| {
            in_category(stream, category) && after.is_none_or(|a| stream > a.as_str())
        };
        // The tail is short (at most `heads_every` records): read it whole, newest wins.
        let (h, p) = self.tail_window(txn)?;
        let mut tail = BTreeMap::<String, (u64, u64)>::new();
        for item in self.log.range(txn, &(h + 1..=p))? {
            let (position, value) = item?;
            let e = record::decode_event(position, value)
                .map_err(|reason| unreadable(Unreadable(position, reason)))?;
            if wanted(e.stream) {
                tail.insert(e.stream.to_owned(), (e.version, position));
            }
        }
        let prefix = category.unwrap_or("").as_bytes();
        let start = match after {
            Some(a) if a.as_str().as_bytes() >= prefix => Bound::Excluded(a.as_str().as_bytes()),
            // LMDB takes no empty key, not even as a bound.
            _ if prefix.is_empty() => Bound::Unbounded,
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let mut tail = tail.into_iter().peekable();
        let head = |stream: &str, (version, position): (u64, u64)| {
            StreamId::parse(stream)
                .map(|id| StreamHead::new(id, version, position))
                .map_err(|e| Fail::Corrupt {
                    at: Location::Position(position),
                    reason: e.to_string(),
                })
        };
        for item in self.heads.range(txn, &(start, Bound::Unbounded))? {
            if out.len() >= limit {
                return Ok(out);
            }
            let (key, value) = item?;
            // The end of the heads sorts after every stream id.
            if !key.starts_with(prefix) || key == record::HEADS_END {
                break;
            }
            let stream = std::str::from_utf8(key).map_err(|e| Fail::Corrupt {
                at: Location::Store,
                reason: format!("a stream head's key is not UTF-8: {e}"),
            })?;
            if !wanted(stream) {
                continue;
            }
            while let Some((newer, _)) = tail.peek()
                && newer.as_str() < stream
                && out.len() < limit
            {
                let (newer, at) = tail.next().expect("peeked");
                out.push(head(&newer, at)?);
            }
            if out.len() >= limit {
                break;
            }
            if tail.peek().is_some_and(|(newer, _)| newer == stream) {
                let (newer, at) = tail.next().expect("peeked");
                out.push(head(&newer, at)?);
                continue;
            }
            let damaged = |reason: String| Fail::Corrupt {
                at: StreamId::parse(stream).map_or(Location::Store, Location::Head),
                reason: format!("the head of stream {stream:?}: {reason}"),
            };
            let stored = if self.plain_heads {
                record::read_plain_head(value)
                    .ok_or_else(|| damaged(format!("{} bytes instead of 16", value.len())))?
            } else {
                record::read_head(key, value)
                    .map(|h| (h.version, h.position))
                    .map_err(damaged)?
            };
            out.push(head(stream, stored)?);
        }
        for (stream, at) in tail {
            if out.len() >= limit {
                break;
            }
            out.push(head(&stream, at)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ExpectedVersion, NewEvent, StreamId};
    use crate::store::EventStore;
    use crate::store::lmdb::{LmdbOptions, LmdbStore};

    fn filled(checkpoint: u64, records: &[(&str, u64)]) -> Tail {
        let mut tail = Tail::new(checkpoint);
        for (i, (stream, version)) in records.iter().enumerate() {
            tail.add(checkpoint + 1 + i as u64, stream, *version);
        }
        tail
    }

    #[test]
    fn the_latest_record_in_the_window_is_the_head() {
        // Positions 11..=15.
        let tail = filled(10, &[("a", 4), ("b", 1), ("a", 5), ("b", 2), ("a", 6)]);
        assert!(tail.covers(10, 15));
        assert_eq!(tail.latest("a", 10, 15), Ok(Some((6, 15))));
        // A transaction that saw the log up to 13 sees version 5.
        assert_eq!(tail.latest("a", 10, 13), Ok(Some((5, 13))));
        assert_eq!(tail.latest("b", 10, 13), Ok(Some((1, 12))));
        // Nothing in the window: the `heads` entry answers.
        assert_eq!(tail.latest("a", 10, 10), Ok(None));
        assert_eq!(tail.latest("c", 10, 15), Ok(None));
        // A checkpoint at 14 covers b's records; a's last is after it.
        assert_eq!(tail.latest("b", 14, 15), Ok(None));
        assert_eq!(tail.latest("a", 14, 15), Ok(Some((6, 15))));
        assert!(!tail.covers(9, 15));
        assert!(!tail.covers(10, 16));
    }

    #[test]
    fn heads_are_the_latest_per_stream() {
        let tail = filled(0, &[("a", 1), ("b", 1), ("a", 2), ("c", 1)]);
        let mut heads: Vec<_> = tail.heads(0, 4).unwrap().collect();
        heads.sort();
        assert_eq!(heads, [("a", 2, 3), ("b", 1, 2), ("c", 1, 4)]);
        let mut heads: Vec<_> = tail.heads(2, 3).unwrap().collect();
        heads.sort();
        assert_eq!(heads, [("a", 2, 3)]);
    }

    #[test]
    fn a_checkpoint_keeps_the_previous_generation() {
        let mut tail = filled(0, &[("a", 1), ("b", 1), ("a", 2), ("b", 2)]);
        tail.observe(2);
        // A transaction from before the checkpoint (h = 0) is still answered.
        assert!(tail.covers(0, 4));
        assert_eq!(tail.latest("a", 0, 4), Ok(Some((2, 3))));
        tail.observe(4);
        // The first generation is gone: a transaction with h = 0 must scan the log.
        assert!(!tail.covers(0, 4));
        assert!(tail.covers(2, 4));
        assert_eq!(tail.latest("b", 2, 4), Ok(Some((2, 4))));
        assert_eq!(tail.streams.len(), 2);
        tail.add(5, "c", 1);
        tail.observe(5);
        assert_eq!(tail.streams.keys().map(|s| &**s).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn a_checkpoint_past_the_index_starts_over() {
        let mut tail = filled(0, &[("a", 1), ("a", 2)]);
        tail.observe(7);
        assert_eq!(tail.upto(), 7);
        assert!(tail.covers(7, 7));
        assert!(!tail.covers(2, 7));
        assert_eq!(tail.latest("a", 7, 7), Ok(None));
    }

    #[test]
    fn records_out_of_turn_are_ignored() {
        let mut tail = filled(0, &[("a", 1)]);
        tail.add(1, "b", 9); // already indexed
        tail.add(3, "b", 9); // a gap
        assert_eq!(tail.upto(), 1);
        assert_eq!(tail.latest("b", 0, 1), Ok(None));
    }

    #[test]
    fn an_unreadable_record_fails_the_lookups_that_span_it() {
        let mut tail = filled(0, &[("a", 1)]);
        tail.add_unreadable(2, "checksum mismatch".into());
        tail.add(3, "b", 1);
        // Position 2 may be a's, or a new stream's: their heads are not known...
        for stream in ["a", "c"] {
            assert_eq!(
                tail.latest(stream, 0, 3),
                Err(Unreadable(2, "checksum mismatch".into()))
            );
        }
        // ...but b's is: its latest record comes after it.
        assert_eq!(tail.latest("b", 0, 3), Ok(Some((1, 3))));
        tail.add(4, "a", 3);
        assert_eq!(tail.latest("a", 0, 4), Ok(Some((3, 4))));
        assert!(tail.heads(0, 4).is_err());
        // A transaction that saw only position 1 is not concerned.
        assert_eq!(tail.latest("a", 0, 1), Ok(Some((1, 1))));
        // Once a checkpoint covers it (written by a process that could read it), it is past.
        tail.observe(2);
        tail.observe(3);
        assert_eq!(tail.latest("b", 3, 4), Ok(None));
        assert_eq!(tail.latest("a", 3, 4), Ok(Some((3, 4))));
    }

    #[test]
    fn a_gap_in_the_tail_is_one_entry_however_long() {
        let mut tail = filled(0, &[("a", 1)]);
        // The next key read is far past the log's end (a damaged key): no entry per position.
        tail.add_missing(u64::MAX - 1);
        assert_eq!(tail.unreadable.len(), 1);
        assert_eq!(tail.upto(), u64::MAX - 1);
        assert_eq!(tail.latest("a", 0, 1), Ok(Some((1, 1))));
        assert_eq!(tail.latest("a", 0, 9).unwrap_err().0, 2);
        assert_eq!(tail.latest("a", 5, 9).unwrap_err().0, 6);
        tail.observe(7);
        tail.observe(8);
        assert_eq!(tail.latest("b", 8, 9).unwrap_err().0, 9);
    }

    #[test]
    fn a_reader_older_than_the_tail_index_scans_the_log_for_its_heads() {
        let store = LmdbStore::temporary(LmdbOptions::new().heads_every(2)).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let b = StreamId::new("acc", 2).unwrap();
        let append = |stream: &StreamId| {
            store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("E", vec![0xc0])],
                )
                .unwrap()
        };
        append(&a); // 1, then b at 2 takes the heads checkpoint to 2
        append(&b);
        append(&a); // 3: a's version 2, in the tail (2, 3]
        let reader = store.inner.reader().unwrap();
        let txn = &reader.txn;
        let window = store.inner.tail_window(txn).ok().unwrap();
        assert_eq!(window, (2, 3));
        assert_eq!(store.inner.head_in(txn, &a).ok(), Some((2, 3)));
        // Two more checkpoints (at 4 and 6) while the reader stays open, written from another
        // thread as another caller would: the index forgets everything up to 4.
        std::thread::scope(|s| {
            s.spawn(|| {
                append(&a);
                append(&b);
                append(&a);
            });
        });
        assert_eq!(store.stream_version(&a).unwrap(), 4);
        assert!(!store.inner.lock_tail().covers(window.0, window.1));
        // The old reader still sees a at version 2 and b at version 1, read from its log.
        assert_eq!(store.inner.head_in(txn, &a).ok(), Some((2, 3)));
        assert_eq!(store.inner.head_in(txn, &b).ok(), Some((1, 2)));
        let unknown = StreamId::new("acc", 3).unwrap();
        assert_eq!(store.inner.head_in(txn, &unknown).ok(), Some((0, 0)));
    }
}
