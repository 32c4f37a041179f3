//! Commits: the writes of a group in one transaction, appends checked in arrival order.
//!
//! A group (see `store::group`) holds appends and snapshots; each gets its own outcome, so one
//! failing expectation or one unknown stream head fails its own write only. The next
//! position and the timestamp come from the committed log inside the transaction, so
//! processes sharing the directory never collide. Every `heads_every` positions the commit
//! also writes the stream heads of the tail (see `heads`).

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
use crate::event::{ExpectedVersion, NewEvent, StreamId, Timestamp};
use crate::store::{AppendResult, Layout};

/// One write waiting for the group commit.
pub(super) enum Write {
    /// Events for one stream, checked against their expected version in the transaction.
    Append(Append),
    /// A snapshot, riding with the appends so that it shares their transaction and fsync.
    Snapshot(SnapshotWrite),
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
            Outcome::Snapshot(_) => unreachable!("an append is answered as an append"),
        }
    }

    /// The outcome of a snapshot (the group answers each write with its own kind).
    pub(super) fn into_snapshot(self) -> Result<(), WriteError> {
        match self {
            Outcome::Snapshot(outcome) => outcome,
            Outcome::Append(_) => unreachable!("a snapshot is answered as a snapshot"),
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
        let invalid = |reason: String| AppendError::InvalidInput {
            stream: stream.clone(),
            reason,
        };
        let mut metadata = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            if e.event_type.len() > usize::from(u16::MAX) {
                return Err(invalid(format!(
                    "event {} of the batch has a type name of {} bytes; the limit is {}",
                    i + 1,
                    e.event_type.len(),
                    u16::MAX
                )));
            }
            let m = codec::encode_metadata(&e.metadata);
            if u32::try_from(m.len()).is_err() {
                return Err(invalid(format!(
                    "event {} of the batch has more than 4 GiB of metadata",
                    i + 1
                )));
            }
            metadata.push(m);
        }
        Ok(Append {
            stream: stream.clone(),
            expected,
            events,
            metadata,
        })
    }
}

impl Inner {
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
        let h = self.heads_at(txn, start)?;
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
        let mut newer: HashMap<&str, (u64, u64)> = HashMap::new();
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
            };
            let stream = request.stream.as_str();
            let found = match newer.get(stream) {
                Some(&head) => Ok(Some(head)),
                None if h == start => Ok(None),
                None => self.lock_tail().latest(stream, h, start),
            };
            let (current, mut previous) = match found {
                Ok(Some(head)) => head,
                Ok(None) => self.stored_head(txn, &request.stream)?,
                // This stream's version is unknown; the rest of the group carries on.
                Err(e) => {
                    outcomes.push(Outcome::Append(Err(AppendError::Storage {
                        stream: request.stream.clone(),
                        source: unreadable(e).to_box(),
                    })));
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
                record::encode_event(
                    &mut buf,
                    position,
                    &record::EventParts {
                        stream,
                        version,
                        previous,
                        timestamp,
                        event_id: event.event_id,
                        event_type: &event.event_type,
                        event_version: event.event_version,
                        metadata,
                        payload: &event.payload,
                    },
                )
                .map_err(|reason| Fail::Other(heed::Error::Io(io::Error::other(reason))))?;
                self.log
                    .put_with_flags(txn, PutFlags::APPEND, &position, &buf)?;
                if version.is_multiple_of(BLOCK) {
                    record::stream_key(&mut key, stream, version);
                    self.index
                        .put(txn, &key, &record::position_value(position))?;
                }
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
                if let (Write::Append(request), Outcome::Append(Ok(r))) = (write, outcome) {
                    for i in 0..r.count {
                        tail.add(
                            r.first_position + i,
                            request.stream.as_str(),
                            r.first_version + i,
                        );
                    }
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
                Outcome::Snapshot(_) => panic!("no snapshot in this group"),
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
}
