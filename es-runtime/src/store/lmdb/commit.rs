//! Commits: the writes of a group in one transaction, appends checked in arrival order.
//!
//! A group (see `store::group`) holds appends and snapshots; each gets its own outcome, so one
//! failing expectation or one unknown stream head fails its own write only. The next
//! position and the timestamp come from the committed log inside the transaction, so
//! processes sharing the directory never collide. Every `heads_every` positions the commit
//! also writes the stream heads of the tail (see `heads`).
//!
//! An import (events recorded elsewhere, see `store::import`) is a write of its own kind in
//! the same groups: its events keep their stream versions and timestamps, are checked whole
//! before any is written, and take the next positions like an append's.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;

use heed::PutFlags;

use super::Inner;
use super::env::Stopped;
use super::fail::Fail;
use super::heads::{Tail, Unreadable, unreadable};
use super::record::{self, BLOCK};
use crate::codec;
use crate::error::{AppendError, Location, WriteError};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId, Timestamp};
use crate::store::{AppendResult, ImportCheck, ImportResult, Layout};

/// One write waiting for the group commit.
pub(super) enum Write {
    /// Events for one stream, checked against their expected version in the transaction.
    Append(Append),
    /// A snapshot, riding with the appends so that it shares their transaction and fsync.
    Snapshot(SnapshotWrite),
    /// Recorded events to take in as they are.
    Import(Import),
}

/// Recorded events to import, of any streams: never empty.
pub(super) struct Import {
    events: Vec<RecordedEvent>,
    /// The encoded metadata of each event.
    metadata: Vec<Vec<u8>>,
}

/// Events to append to one stream.
pub(super) struct Append {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    /// The encoded metadata of each event.
    metadata: Vec<Vec<u8>>,
}

/// A snapshot record to store, and how many of the stream's to keep.
pub(super) struct SnapshotWrite {
    pub(super) stream: StreamId,
    pub(super) version: u64,
    /// The encoded record.
    pub(super) value: Vec<u8>,
    /// At least 1.
    pub(super) keep: usize,
}

/// What became of one write: the same kind as the write.
pub(super) enum Outcome {
    Append(Result<AppendResult, AppendError>),
    Snapshot(Result<(), WriteError>),
    Import(Result<ImportResult, AppendError>),
}

impl Write {
    /// About how many bytes the write adds to the store: its payloads and metadata, or its
    /// snapshot.
    fn bytes(&self) -> u64 {
        let bytes = match self {
            Write::Append(a) => {
                let events: usize = a.events.iter().map(|e| e.payload.len()).sum();
                let metadata: usize = a.metadata.iter().map(Vec::len).sum();
                events + metadata
            }
            Write::Snapshot(s) => s.value.len(),
            Write::Import(i) => {
                let events: usize = i.events.iter().map(|e| e.payload.len()).sum();
                let metadata: usize = i.metadata.iter().map(Vec::len).sum();
                events + metadata
            }
        };
        bytes as u64
    }

    /// The outcome of a write whose transaction failed.
    pub(super) fn failed(&self, source: impl Fn() -> crate::error::BoxError) -> Outcome {
        match self {
            Write::Append(a) => Outcome::Append(Err(AppendError::Storage {
                stream: a.stream.clone(),
                source: source(),
            })),
            Write::Snapshot(s) => Outcome::Snapshot(Err(WriteError::Storage {
                at: s.location(),
                source: source(),
            })),
            Write::Import(i) => Outcome::Import(Err(AppendError::Storage {
                stream: i.stream().clone(),
                source: source(),
            })),
        }
    }

    /// The outcome of a write that does not fit in a store of `limit` bytes.
    fn full(&self, limit: u64) -> Outcome {
        match self {
            Write::Append(a) => Outcome::Append(Err(AppendError::StoreFull {
                stream: a.stream.clone(),
                limit,
            })),
            Write::Snapshot(s) => Outcome::Snapshot(Err(WriteError::StoreFull {
                at: s.location(),
                limit,
            })),
            Write::Import(i) => Outcome::Import(Err(AppendError::StoreFull {
                stream: i.stream().clone(),
                limit,
            })),
        }
    }
}

impl SnapshotWrite {
    fn location(&self) -> Location {
        Location::Snapshot {
            stream: self.stream.clone(),
            version: self.version,
        }
    }
}

impl Outcome {
    /// The outcome of an append (the group answers each write with its own kind).
    pub(super) fn into_append(self) -> Result<AppendResult, AppendError> {
        match self {
            Outcome::Append(outcome) => outcome,
            _ => unreachable!("an append is answered as an append"),
        }
    }

    /// The outcome of a snapshot (the group answers each write with its own kind).
    pub(super) fn into_snapshot(self) -> Result<(), WriteError> {
        match self {
            Outcome::Snapshot(outcome) => outcome,
            _ => unreachable!("a snapshot is answered as a snapshot"),
        }
    }

    /// The outcome of an import (the group answers each write with its own kind).
    pub(super) fn into_import(self) -> Result<ImportResult, AppendError> {
        match self {
            Outcome::Import(outcome) => outcome,
            _ => unreachable!("an import is answered as an import"),
        }
    }
}

impl Append {
    /// Checks what can be checked before queueing, so that a bad event fails only its own
    /// append.
    pub(super) fn new(
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Append, AppendError> {
        let mut metadata = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            metadata.push(storable(stream, i, &e.event_type, &e.metadata)?);
        }
        Ok(Append {
            stream: stream.clone(),
            expected,
            events,
            metadata,
        })
    }
}

/// Checks that event `i` (0-based) of a batch for `stream` fits in a record, and encodes its
/// metadata.
fn storable(
    stream: &StreamId,
    i: usize,
    event_type: &str,
    metadata: &crate::event::Metadata,
) -> Result<Vec<u8>, AppendError> {
    let invalid = |reason: String| AppendError::InvalidInput {
        stream: stream.clone(),
        reason,
    };
    if event_type.len() > usize::from(u16::MAX) {
        return Err(invalid(format!(
            "event {} of the batch has a type name of {} bytes; the limit is {}",
            i + 1,
            event_type.len(),
            u16::MAX
        )));
    }
    let m = codec::encode_metadata(metadata);
    if u32::try_from(m.len()).is_err() {
        return Err(invalid(format!(
            "event {} of the batch has more than 4 GiB of metadata",
            i + 1
        )));
    }
    Ok(m)
}

impl Import {
    /// Checks what can be checked before queueing; `None` for an empty batch, which has
    /// nothing to write.
    pub(super) fn new(events: Vec<RecordedEvent>) -> Result<Option<Import>, AppendError> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut metadata = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            metadata.push(storable(&e.stream, i, &e.event_type, &e.metadata)?);
        }
        Ok(Some(Import { events, metadata }))
    }

    /// The stream of the first event, which names the import in errors of the whole batch.
    pub(super) fn stream(&self) -> &StreamId {
        &self.events[0].stream
    }
}

/// The heads of the streams written by the group so far: version and last position.
type Newer<'g> = HashMap<&'g str, (u64, u64)>;

impl Inner {
    /// The head (version, last position) of `stream` in a commit whose heads checkpoint is
    /// at `h` and whose log ends at `start`, the group's earlier writes in `newer`. An
    /// unknown head (a damaged record in the tail) is the write's own failure.
    fn head_in_group(
        &self,
        txn: &heed::RoTxn<'_>,
        newer: &Newer<'_>,
        stream: &StreamId,
        (h, start): (u64, u64),
    ) -> Result<Result<(u64, u64), AppendError>, Fail> {
        let found = match newer.get(stream.as_str()) {
            Some(&head) => Ok(Some(head)),
            None if h == start => Ok(None),
            None => self.lock_tail().latest(stream.as_str(), h, start),
        };
        Ok(match found {
            Ok(Some(head)) => Ok(head),
            Ok(None) => Ok(self.stored_head(txn, stream)?),
            Err(e) => Err(AppendError::Storage {
                stream: stream.clone(),
                source: unreadable(e).to_box(),
            }),
        })
    }

    /// Writes one event's record at `position`, with its stream-index entry when due.
    fn put_event(
        &self,
        txn: &mut heed::RwTxn<'_>,
        (key, buf): (&mut Vec<u8>, &mut Vec<u8>),
        position: u64,
        parts: &record::EventParts<'_>,
    ) -> Result<(), Fail> {
        record::encode_event(buf, position, parts)
            .map_err(|reason| Fail::Other(heed::Error::Io(io::Error::other(reason))))?;
        self.log
            .put_with_flags(txn, PutFlags::APPEND, &position, buf)?;
        if parts.version.is_multiple_of(BLOCK) {
            record::stream_key(key, parts.stream, parts.version);
            self.index
                .put(txn, key, &record::position_value(position))?;
        }
        Ok(())
    }

    /// Lays out and writes an import in the group's transaction, after checking it whole:
    /// refused, it writes nothing.
    #[allow(clippy::too_many_arguments)]
    fn put_import<'g>(
        &self,
        txn: &mut heed::RwTxn<'_>,
        layout: &mut Layout,
        newer: &mut Newer<'g>,
        window: (u64, u64),
        log_timestamp: Timestamp,
        import: &'g Import,
        scratch: (&mut Vec<u8>, &mut Vec<u8>),
    ) -> Result<Result<ImportResult, AppendError>, Fail> {
        let mut check = ImportCheck::new(layout.latest().unwrap_or(log_timestamp));
        // Per stream of the batch, the position of its last event before the batch: the
        // back pointer of its first event in the batch.
        let mut before: HashMap<&str, u64> = HashMap::new();
        for event in &import.events {
            let stream = event.stream.as_str();
            let current = match check.version(stream) {
                Some(v) => v,
                None => match self.head_in_group(txn, newer, &event.stream, window)? {
                    Ok((version, position)) => {
                        before.insert(stream, position);
                        version
                    }
                    Err(e) => return Ok(Err(e)),
                },
            };
            if let Err(refused) = check.admit(event, current) {
                return Ok(Err(refused));
            }
        }
        let count = import.events.len() as u64;
        let first = layout.import(count, check.last_timestamp());
        let (key, buf) = scratch;
        for (i, (event, metadata)) in import.events.iter().zip(&import.metadata).enumerate() {
            let position = first + i as u64;
            let stream = event.stream.as_str();
            let previous = before.insert(stream, position).unwrap_or(0);
            let parts = record::EventParts {
                stream,
                version: event.version,
                previous,
                timestamp: event.timestamp,
                event_id: event.event_id,
                event_type: &event.event_type,
                event_version: event.event_version,
                metadata,
                payload: &event.payload,
            };
            self.put_event(txn, (&mut *key, &mut *buf), position, &parts)?;
        }
        for (stream, version) in check.into_versions() {
            newer.insert(stream, (version, before[stream]));
        }
        Ok(Ok(ImportResult::new(first, count)))
    }

    /// Commits a group of writes, growing the map as needed. One outcome per write.
    pub(super) fn commit_group(&self, group: Vec<Write>) -> Vec<Outcome> {
        let may_checkpoint = Cell::new(true);
        let committed = self.env.retry(
            || self.try_commit(&group, may_checkpoint.get()),
            // Writing the heads as well does not fit: the writes alone may.
            || may_checkpoint.replace(false),
        );
        match committed {
            Ok(outcomes) => outcomes,
            // The group does not fit; some of its writes alone may.
            Err(Stopped::Full) if group.len() > 1 => group
                .into_iter()
                .flat_map(|w| self.commit_group(vec![w]))
                .collect(),
            Err(Stopped::Full) => vec![group[0].full(self.env.max_map_size() as u64)],
            Err(Stopped::Failed(failed)) => {
                tracing::error!(path = %self.env.path().display(), error = %failed.to_box(), "commit failed");
                group.iter().map(|w| w.failed(|| failed.to_box())).collect()
            }
        }
    }

    /// One attempt at committing a group in one write transaction.
    /// `may_checkpoint`: whether this commit may also write the stream heads, when due.
    fn try_commit(&self, group: &[Write], may_checkpoint: bool) -> Result<Vec<Outcome>, Fail> {
        let writing = || group.iter().map(Write::bytes).sum();
        let mut writer = self.env.writer(writing)?;
        let txn = &mut writer.txn;
        // Positions and timestamps continue from the committed log, which another process may
        // have extended since our last commit.
        let (start, last_timestamp) = match self.log.last(txn)? {
            Some((p, value)) => {
                let t = record::event_timestamp(value).ok_or_else(|| Fail::Corrupt {
                    at: Location::Position(p),
                    reason: "the record is too short for its header".to_owned(),
                })?;
                (p, t)
            }
            None => (0, Timestamp(0)),
        };
        let timestamp = self.clock.now().max(last_timestamp);
        let mut layout = Layout::new(start, timestamp);
        // The log's last record was read above: only the checkpoint is left to read.
        let h = self.heads_at(txn, u64::MAX)?;
        if h > start {
            // The heads were stored as of a position the log no longer has: its last records
            // were lost to damage, and appending would give their positions to other events.
            return Err(Fail::Corrupt {
                at: Location::Position(start + 1),
                reason: format!(
                    "the log ends at position {start}, but the stream heads were stored as of \
                     position {h}: the records after it are missing"
                ),
            });
        }
        let window = (h, start);
        {
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, txn, h, start)?;
            if !tail.covers(h, start) {
                // Only if the checkpoint went backwards (edited from outside): index afresh.
                *tail = Tail::new(h);
                self.index_tail(&mut tail, txn, h, start)?;
            }
        }
        // While this transaction holds LMDB's write lock, no checkpoint moves and no record is
        // added, so the index's entries in `(h, start]` stay put: it is locked per lookup only,
        // and readers wait for a lookup at most, never for the whole write.
        let mut newer: Newer<'_> = HashMap::new();
        let mut key = Vec::new();
        let mut buf = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut wrote = false;
        let mut appended = false;
        for write in group {
            let request = match write {
                Write::Append(append) => append,
                Write::Snapshot(s) => {
                    self.put_snapshot(txn, s.stream.as_str(), s.version, &s.value, s.keep)?;
                    wrote = true;
                    outcomes.push(Outcome::Snapshot(Ok(())));
                    continue;
                }
                Write::Import(import) => {
                    let scratch = (&mut key, &mut buf);
                    let outcome = self.put_import(
                        txn,
                        &mut layout,
                        &mut newer,
                        window,
                        last_timestamp,
                        import,
                        scratch,
                    )?;
                    if outcome.is_ok() {
                        wrote = true;
                        appended = true;
                    }
                    outcomes.push(Outcome::Import(outcome));
                    continue;
                }
            };
            let stream = request.stream.as_str();
            let (current, mut previous) =
                match self.head_in_group(txn, &newer, &request.stream, window)? {
                    Ok(head) => head,
                    // This stream's version is unknown; the rest of the group carries on.
                    Err(e) => {
                        outcomes.push(Outcome::Append(Err(e)));
                        continue;
                    }
                };
            let count = request.events.len() as u64;
            let admitted = match layout.admit(&request.stream, request.expected, current, count) {
                Ok(admitted) => admitted,
                Err(conflict) => {
                    outcomes.push(Outcome::Append(Err(conflict)));
                    continue;
                }
            };
            for (i, (event, metadata)) in request.events.iter().zip(&request.metadata).enumerate() {
                let version = admitted.first_version + i as u64;
                let position = admitted.first_position + i as u64;
                let parts = record::EventParts {
                    stream,
                    version,
                    previous,
                    // The group's stamp, raised past any import before this append.
                    timestamp: admitted.timestamp,
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    event_version: event.event_version,
                    metadata,
                    payload: &event.payload,
                };
                self.put_event(txn, (&mut key, &mut buf), position, &parts)?;
                previous = position;
            }
            if !request.events.is_empty() {
                let version = current + request.events.len() as u64;
                newer.insert(stream, (version, previous));
                wrote = true;
                appended = true;
            }
            outcomes.push(Outcome::Append(Ok(admitted)));
        }
        let last_position = layout.last_position();
        // Bring the stored heads up to date every `heads_every` positions. A damaged record in
        // the tail keeps them where they are (the heads after it cannot be known); appends to
        // the streams whose heads are known go on, with a longer tail.
        let checkpoint = may_checkpoint && appended && last_position - h >= self.heads_every;
        let checkpoint = checkpoint
            && {
                let tail = self.lock_tail();
                match tail.readable(h, start) {
                    Ok(()) => {
                        self.write_heads(txn, &tail, window, &newer, last_position)?;
                        true
                    }
                    Err(Unreadable(position, reason)) => {
                        tracing::warn!(path = %self.env.path().display(), position, %reason, "a damaged record in the log's tail keeps the stream heads from being stored");
                        false
                    }
                }
            };
        if !wrote {
            return Ok(outcomes);
        }
        writer.commit()?;
        {
            let mut tail = self.lock_tail();
            for (write, outcome) in group.iter().zip(&outcomes) {
                match (write, outcome) {
                    (Write::Append(request), Outcome::Append(Ok(r))) => {
                        for i in 0..r.count {
                            tail.add(
                                r.first_position + i,
                                request.stream.as_str(),
                                r.first_version + i,
                            );
                        }
                    }
                    (Write::Import(import), Outcome::Import(Ok(r))) => {
                        for (e, p) in import.events.iter().zip(r.first_position..) {
                            tail.add(p, e.stream.as_str(), e.version);
                        }
                    }
                    _ => {}
                }
            }
            if checkpoint {
                tail.observe(last_position);
            }
        }
        if checkpoint {
            self.appended.store(false, Ordering::Relaxed);
        } else if appended {
            self.appended.store(true, Ordering::Relaxed);
        }
        self.watch.publish(last_position);
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventStore;
    use crate::store::lmdb::{LmdbOptions, LmdbStore};

    #[test]
    fn appends_in_one_group_see_each_other_in_order_and_fail_alone() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let b = StreamId::new("acc", 2).unwrap();
        let request = |stream: &StreamId, expected, n: usize| {
            let events = (0..n).map(|_| NewEvent::raw("E", vec![0xc0])).collect();
            Write::Append(Append::new(stream, expected, events).unwrap())
        };
        let group = [
            request(&a, ExpectedVersion::NoStream, 2),
            request(&a, ExpectedVersion::Exact(2), 1),
            request(&b, ExpectedVersion::Exists, 1),
            request(&a, ExpectedVersion::Exact(2), 1),
            request(&a, ExpectedVersion::Exact(3), 0),
            request(&b, ExpectedVersion::NoStream, 3),
            request(&a, ExpectedVersion::Any, 1),
        ];
        let outcomes = store.inner.commit_group(group.into());
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Append(Ok(r)) => Ok((r.first_version, r.first_position, r.count)),
                Outcome::Append(Err(AppendError::WrongExpectedVersion { actual, .. })) => {
                    Err(*actual)
                }
                Outcome::Append(Err(e)) => panic!("{e}"),
                _ => panic!("only appends in this group"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                Ok((1, 1, 2)),
                Ok((3, 3, 1)),
                Err(0),
                Err(3),
                Ok((4, 4, 0)),
                Ok((1, 4, 3)),
                Ok((4, 7, 1)),
            ]
        );
        let timestamps: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Append(Ok(r)) => Some(r.timestamp),
                _ => None,
            })
            .collect();
        assert!(timestamps.windows(2).all(|w| w[0] == w[1]), "one commit");
        assert_eq!(store.stream_version(&a).unwrap(), 4);
        assert_eq!(store.stream_version(&b).unwrap(), 3);
        assert_eq!(store.head_position().unwrap(), 7);
    }

    #[test]
    fn a_snapshot_rides_in_a_group_of_appends() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let events = vec![NewEvent::raw("E", vec![0xc0]); 3];
        let append = Write::Append(Append::new(&a, ExpectedVersion::NoStream, events).unwrap());
        let snapshot = |version: u64, payload: u8| {
            let (mut key, mut value) = (Vec::new(), Vec::new());
            record::stream_key(&mut key, a.as_str(), version);
            record::encode_snapshot(&mut value, &key, 1, &[payload]);
            Write::Snapshot(SnapshotWrite {
                stream: a.clone(),
                version,
                value,
                keep: 2,
            })
        };
        let wrong = Write::Append(
            Append::new(
                &a,
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("E", vec![0xc0])],
            )
            .unwrap(),
        );
        let group = [
            snapshot(1, 1),
            append,
            snapshot(2, 2),
            wrong,
            snapshot(3, 3),
        ];
        let outcomes = store.inner.commit_group(group.into());
        let ok = |o: &Outcome| matches!(o, Outcome::Append(Ok(_)) | Outcome::Snapshot(Ok(())));
        assert!(ok(&outcomes[0]) && ok(&outcomes[1]) && ok(&outcomes[2]));
        assert!(matches!(
            outcomes[3],
            Outcome::Append(Err(AppendError::WrongExpectedVersion { actual: 3, .. }))
        ));
        assert!(ok(&outcomes[4]));
        // Keep-last-2 applied inside the group; the appends are all there.
        let kept: Vec<u64> = store
            .snapshots(&a)
            .unwrap()
            .iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(kept, [2, 3]);
        assert_eq!(store.load_snapshot(&a).unwrap().unwrap().payload, [3]);
        assert_eq!(store.stream_version(&a).unwrap(), 3);
    }

    #[test]
    fn an_import_rides_in_a_group_between_appends_and_raises_their_stamp() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let b = StreamId::new("acc", 2).unwrap();
        let append = |expected, n: usize| {
            let events = (0..n).map(|_| NewEvent::raw("E", vec![0xc0])).collect();
            Write::Append(Append::new(&a, expected, events).unwrap())
        };
        // Far in the future: the append after it must not be stamped earlier.
        let later = Timestamp(u64::MAX / 2);
        let imported = |version, timestamp| RecordedEvent {
            stream: b.clone(),
            version,
            position: 0,
            event_type: "Imported".into(),
            event_version: 2,
            event_id: crate::event::new_event_id(),
            timestamp,
            metadata: crate::event::Metadata::default(),
            payload: vec![0xc0],
        };
        let import = |events| Write::Import(Import::new(events).unwrap().unwrap());
        let group = vec![
            append(ExpectedVersion::NoStream, 2),
            import(vec![imported(1, later), imported(2, later)]),
            import(vec![imported(2, later)]),
            append(ExpectedVersion::Exact(2), 1),
        ];
        let outcomes = store.inner.commit_group(group);
        let Outcome::Import(Ok(i)) = &outcomes[1] else {
            panic!("the import goes through")
        };
        assert_eq!((i.first_position, i.count), (3, 2));
        assert!(matches!(
            outcomes[2],
            Outcome::Import(Err(AppendError::WrongExpectedVersion { actual: 2, .. }))
        ));
        let Outcome::Append(Ok(r)) = &outcomes[3] else {
            panic!("the last append goes through")
        };
        assert_eq!((r.first_version, r.first_position), (3, 5));
        assert_eq!(r.timestamp, later);
        let log = store.read_all(1, usize::MAX).unwrap();
        let stamps: Vec<_> = log.iter().map(|e| e.timestamp).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
        assert_eq!(store.stream_version(&b).unwrap(), 2);
        assert_eq!(log[2].event_version, 2);
    }
}
