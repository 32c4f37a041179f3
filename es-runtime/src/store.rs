//! The [`EventStore`] trait, and one module per backend.

#[cfg(any(feature = "lmdb", feature = "postgres"))]
mod group;
mod import;
#[cfg(feature = "lmdb")]
pub mod lmdb;
pub mod memory;
#[cfg(any(feature = "lmdb", feature = "postgres"))]
mod names;
#[cfg(feature = "postgres")]
pub mod postgres;
pub(crate) mod schemas;

use std::ops::ControlFlow;

use crate::error::{AppendError, Location, ReadError, WriteError};
use crate::event::{EventRef, ExpectedVersion, NewEvent, RecordedEvent, StreamId, Timestamp};
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::watch::HeadWatch;

pub(crate) use self::import::ImportCheck;
pub use self::import::ImportResult;

#[cfg(any(feature = "lmdb", feature = "postgres"))]
pub(crate) use self::{
    group::{GroupQueue, Layout, Release},
    names::checkpoint_name,
};

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendResult {
    /// The version of the first appended event (the stream's version + 1 before the append).
    pub first_version: u64,
    /// The global position of the first appended event. The batch's positions are contiguous.
    pub first_position: u64,
    /// How many events were appended.
    pub count: u64,
    /// The timestamp stamped on every event of the batch.
    pub timestamp: Timestamp,
}

impl AppendResult {
    /// Builds a result; for backends.
    pub fn new(first_version: u64, first_position: u64, count: u64, timestamp: Timestamp) -> Self {
        AppendResult {
            first_version,
            first_position,
            count,
            timestamp,
        }
    }

    /// The stream's version after the append.
    pub fn stream_version(&self) -> u64 {
        self.first_version + self.count - 1
    }

    /// The global position of the last appended event (the one before `first_position` when
    /// the batch was empty).
    pub fn last_position(&self) -> u64 {
        self.first_position + self.count - 1
    }
}

/// A saved state of an aggregate at some version of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream version the state reflects (all events up to and including it applied).
    pub version: u64,
    /// The aggregate's [`STATE_VERSION`](crate::Aggregate::STATE_VERSION) when it was taken.
    pub state_version: u32,
    /// The encoded state.
    pub payload: Vec<u8>,
}

/// A stream and where it ends: one entry of [`EventStore::streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamHead {
    /// The stream.
    pub stream: StreamId,
    /// Its version: the version of its last event (at least 1).
    pub version: u64,
    /// The global position of its last event.
    pub position: u64,
}

impl StreamHead {
    /// A stream's head; for backends.
    pub fn new(stream: StreamId, version: u64, position: u64) -> Self {
        StreamHead {
            stream,
            version,
            position,
        }
    }
}

/// Whether `stream` is of `category` (`None`: of any), as [`StreamId::category`] splits it.
pub(crate) fn in_category(stream: &str, category: Option<&str>) -> bool {
    category.is_none_or(|c| crate::event::stream::split(stream).0 == c)
}

/// A visitor of events read from a store. Return [`ControlFlow::Break`] to stop reading.
pub type Visitor<'v> = dyn FnMut(EventRef<'_>) -> ControlFlow<()> + 'v;

/// An append-only store of event streams with a global log, snapshots and projection
/// checkpoints.
///
/// Versions are 1-based per stream (0 means the stream does not exist); global positions are
/// 1-based, and readers see them without gaps. Implementations are shared between threads and
/// every method blocks until done; the host moves blocking calls off async executors.
///
/// One conformance suite ([`testing::conformance`](crate::testing::conformance)) checks every
/// backend.
pub trait EventStore: Send + Sync {
    /// Appends a batch to a stream if its version matches `expected`: all events or none.
    ///
    /// An empty batch only checks the expectation. Returns where the events landed; once it
    /// returns, the events are as durable as the store promises.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError>;

    /// Appends one event: [`append`](Self::append) of a batch of one, which a backend may do
    /// without the batch's allocation. The host appends through it when a command decides one
    /// event, as most do.
    fn append_one(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        event: NewEvent,
    ) -> Result<AppendResult, AppendError> {
        self.append(stream, expected, vec![event])
    }

    /// The stream's current version (0: no events).
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError>;

    /// Visits the events of a stream from version `from` (inclusive) in version order, until
    /// the visitor breaks or the stream ends.
    ///
    /// The visitor must not write to the same store.
    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError>;

    /// Visits the global log from position `from` (inclusive) in position order, until the
    /// visitor breaks or the log ends.
    ///
    /// The visitor must not write to the same store.
    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError>;

    /// The position of the last event in the global log (0: empty).
    fn head_position(&self) -> Result<u64, ReadError>;

    /// Saves a snapshot of a stream, then drops all but the newest `keep` (at least one is
    /// kept).
    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError>;

    /// The snapshot with the highest version, if any.
    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError>;

    /// Every snapshot of a stream, oldest first (for inspection and tests).
    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError>;

    /// The newest snapshot of a stream with a version below `below`, if any: what a host
    /// falls back to when the newer ones are of another state version or do not decode.
    ///
    /// A store that can tell a damaged snapshot from a missing one should skip the damaged
    /// ones (`LmdbStore` does), so that `load_snapshot_before(stream, u64::MAX)` finds the
    /// newest readable snapshot when [`load_snapshot`](Self::load_snapshot) fails. By default
    /// this filters [`snapshots`](Self::snapshots), which fails if any of them is damaged.
    fn load_snapshot_before(
        &self,
        stream: &StreamId,
        below: u64,
    ) -> Result<Option<Snapshot>, ReadError> {
        let mut snapshots = self.snapshots(stream)?;
        snapshots.retain(|s| s.version < below);
        Ok(snapshots.pop())
    }

    /// Stores a projection's checkpoint (the last position it processed).
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError>;

    /// A projection's checkpoint, if it has one.
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError>;

    /// Every projection checkpoint with its position, sorted by name.
    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError>;

    /// Takes in events recorded elsewhere (another store, an export), keeping each one's id,
    /// timestamp, metadata, type, version of shape, payload and stream version: all of the
    /// batch in one transaction, or none of it.
    ///
    /// Global positions are the store's: the events take the next ones, in the order given
    /// (their `position` fields are not read). Each event must be the next of its stream
    /// (version 1 of a new stream, or the stream's version + 1, counting the events before it
    /// in the batch): any other is [`AppendError::WrongExpectedVersion`], with the version the
    /// event follows as `expected` and the stream's as `actual`. An event stamped earlier
    /// than the one before it in the log is [`AppendError::InvalidInput`]: timestamps never
    /// go back along the log. Either refuses the whole batch. An empty batch writes nothing.
    ///
    /// This is how [`migrate`](crate::migrate) copies a store; appends going on meanwhile
    /// are ordered with the batch as any other commit.
    fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError>;

    /// The watch this store publishes its head position on after each commit, if it has one.
    ///
    /// Subscriptions wait on it instead of polling; without one they re-read periodically.
    fn head_watch(&self) -> Option<&HeadWatch> {
        None
    }

    /// Records `schema` as the newest in the history of its aggregate (`schema.name`), unless
    /// the newest recorded there is the same schema; returns the new record, or `None` when
    /// the schema was unchanged.
    ///
    /// The schema is recorded as its JSON ([`OwnedSchema::to_json`]), stamped with the store's
    /// clock, with the next revision of its aggregate; older revisions are kept. The check and
    /// the write are one transaction, so processes recording the same schema at once record it
    /// once. A [`Host`](crate::Host) calls it when built.
    ///
    /// The durable stores and [`MemoryStore`](memory::MemoryStore) record schemas; by default
    /// a store does not, and refuses with [`WriteError::InvalidInput`]. A store open read-only
    /// refuses a changed schema with [`WriteError::ReadOnly`] (and may answer `None` for an
    /// unchanged one).
    fn save_schema(&self, schema: &OwnedSchema) -> Result<Option<RecordedSchema>, WriteError> {
        Err(WriteError::InvalidInput {
            at: Location::Schema(schema.name.clone()),
            reason: "this store does not record schemas".to_owned(),
        })
    }

    /// Every recorded schema, ordered by aggregate name, then oldest first (by revision).
    ///
    /// By default (a store that does not record schemas) there are none.
    fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        Ok(Vec::new())
    }

    /// Up to `limit` streams with their heads, in the byte order of their ids: the streams
    /// of `category` (all of them with `None`) whose ids sort after `after` (from the first
    /// with `None`). A listing continues with the last id of the page before as `after`.
    ///
    /// By default this reads the whole log; the stores of this crate read their heads.
    fn streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, ReadError> {
        streams_from_log(self, category, after, limit)
    }

    /// Takes in schema records recorded elsewhere (another store's
    /// [`schemas`](Self::schemas)), keeping each one's name, revision, time recorded and
    /// text: all of them in one transaction, or none. Returns how many were recorded.
    ///
    /// An aggregate's history only grows: a record must come after the newest of its name
    /// held here (a higher revision; the records given are taken in revision order, in any
    /// order given). A record held here already, the same in every field, is passed over, so
    /// that taking in one history twice records it once. Anything else is
    /// [`WriteError::InvalidInput`] and refuses the whole batch: a revision held here as
    /// another record, one at or below the newest held, revision 0, a name of no 1 to 500
    /// bytes. A store open read-only refuses with [`WriteError::ReadOnly`]. An empty batch
    /// writes nothing.
    ///
    /// This is how [`migrate`](crate::migrate) carries the schema history. By default (a
    /// store that does not record schemas) a batch that is not empty is refused with
    /// [`WriteError::InvalidInput`].
    fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
        match records.first() {
            None => Ok(0),
            Some(first) => Err(WriteError::InvalidInput {
                at: Location::Schema(first.name.clone()),
                reason: "this store does not record schemas".to_owned(),
            }),
        }
    }

    /// Copies up to `limit` events of a stream from version `from` (inclusive) out of the
    /// store, in version order.
    ///
    /// Bounded as [`read_all`](Self::read_all) is, by a start and a count: versions
    /// `from..from + limit` (those that exist; version 0 reads as 1). The whole stream is
    /// `read_stream(stream, 1, usize::MAX)`.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut out = Vec::new();
        let mut failed = None;
        if limit == 0 {
            return Ok(out);
        }
        self.read_stream_with(stream, from, &mut |e| {
            match e.to_recorded() {
                Ok(e) => out.push(e),
                Err(err) => {
                    failed = Some(err);
                    return ControlFlow::Break(());
                }
            }
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        match failed {
            Some(err) => Err(corrupt_metadata(err)),
            None => Ok(out),
        }
    }

    /// Copies up to `limit` events of the global log from position `from` out of the store.
    fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut out = Vec::new();
        let mut failed = None;
        if limit == 0 {
            return Ok(out);
        }
        self.read_all_with(from, &mut |e| {
            match e.to_recorded() {
                Ok(e) => out.push(e),
                Err(err) => {
                    failed = Some(err);
                    return ControlFlow::Break(());
                }
            }
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        match failed {
            Some(err) => Err(corrupt_metadata(err)),
            None => Ok(out),
        }
    }
}

/// [`EventStore::streams`] by reading the whole log.
fn streams_from_log<S: EventStore + ?Sized>(
    store: &S,
    category: Option<&str>,
    after: Option<&StreamId>,
    limit: usize,
) -> Result<Vec<StreamHead>, ReadError> {
    let mut heads = std::collections::BTreeMap::<String, (u64, u64)>::new();
    let after = after.map(StreamId::as_str);
    store.read_all_with(1, &mut |e| {
        if in_category(e.stream, category) && after.is_none_or(|a| e.stream > a) {
            heads.insert(e.stream.to_owned(), (e.version, e.position));
        }
        ControlFlow::Continue(())
    })?;
    heads
        .into_iter()
        .take(limit)
        .map(|(stream, (version, position))| {
            let stream = StreamId::parse(stream).map_err(|e| ReadError::Corrupt {
                at: Location::Position(position),
                reason: e.to_string(),
            })?;
            Ok(StreamHead::new(stream, version, position))
        })
        .collect()
}

/// A stored event that does not copy out: its metadata does not decode, or its stream id is not
/// one (then the store as a whole is the place, the event having no valid stream to name).
fn corrupt_metadata(err: crate::error::DecodeError) -> ReadError {
    ReadError::Corrupt {
        at: err.location().unwrap_or(Location::Store),
        reason: err.to_string(),
    }
}

/// Implements [`EventStore`] for a pointer type by forwarding every method, the provided
/// ones included (a backend may override those).
macro_rules! forward_event_store {
    ($($pointer:ty),*) => {$(
        impl<S: EventStore + ?Sized> EventStore for $pointer {
            fn append(
                &self,
                stream: &StreamId,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> Result<AppendResult, AppendError> {
                (**self).append(stream, expected, events)
            }
            fn append_one(
                &self,
                stream: &StreamId,
                expected: ExpectedVersion,
                event: NewEvent,
            ) -> Result<AppendResult, AppendError> {
                (**self).append_one(stream, expected, event)
            }
            fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
                (**self).stream_version(stream)
            }
            fn read_stream_with(
                &self,
                stream: &StreamId,
                from: u64,
                visitor: &mut Visitor<'_>,
            ) -> Result<(), ReadError> {
                (**self).read_stream_with(stream, from, visitor)
            }
            fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
                (**self).read_all_with(from, visitor)
            }
            fn head_position(&self) -> Result<u64, ReadError> {
                (**self).head_position()
            }
            fn save_snapshot(
                &self,
                stream: &StreamId,
                snapshot: Snapshot,
                keep: usize,
            ) -> Result<(), WriteError> {
                (**self).save_snapshot(stream, snapshot, keep)
            }
            fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
                (**self).load_snapshot(stream)
            }
            fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
                (**self).snapshots(stream)
            }
            fn load_snapshot_before(
                &self,
                stream: &StreamId,
                below: u64,
            ) -> Result<Option<Snapshot>, ReadError> {
                (**self).load_snapshot_before(stream, below)
            }
            fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
                (**self).save_checkpoint(name, position)
            }
            fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
                (**self).load_checkpoint(name)
            }
            fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
                (**self).checkpoints()
            }
            fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
                (**self).import(events)
            }
            fn head_watch(&self) -> Option<&HeadWatch> {
                (**self).head_watch()
            }
            fn streams(
                &self,
                category: Option<&str>,
                after: Option<&StreamId>,
                limit: usize,
            ) -> Result<Vec<StreamHead>, ReadError> {
                (**self).streams(category, after, limit)
            }
            fn read_stream(
                &self,
                stream: &StreamId,
                from: u64,
                limit: usize,
            ) -> Result<Vec<RecordedEvent>, ReadError> {
                (**self).read_stream(stream, from, limit)
            }
            fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, ReadError> {
                (**self).read_all(from, limit)
            }
            fn save_schema(
                &self,
                schema: &OwnedSchema,
            ) -> Result<Option<RecordedSchema>, WriteError> {
                (**self).save_schema(schema)
            }
            fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
                (**self).schemas()
            }
            fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
                (**self).import_schemas(records)
            }
        }
    )*};
}

forward_event_store!(std::sync::Arc<S>, &S);
