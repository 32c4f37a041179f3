//! [`MemoryStore`]: an ephemeral store for tests and examples.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::quality::RandomState;
use uuid::Uuid;

use crate::codec;
use crate::error::{AppendError, ReadError, WriteError};
use crate::event::{
    Clock, EventRef, ExpectedVersion, NewEvent, RecordedEvent, StreamId, SystemClock, Timestamp,
};
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::store::{AppendResult, EventStore, ImportResult, Snapshot, Visitor};
use crate::store::{ImportCheck, StreamHead, in_category, schemas};
use crate::watch::HeadWatch;

/// An event store in memory: fast, shared between threads, gone when dropped.
///
/// ```
/// use es_runtime::{EventStore, ExpectedVersion, MemoryStore, NewEvent, StreamId};
///
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", 1)?;
/// store.append(&stream, ExpectedVersion::NoStream, vec![NewEvent::raw("Incremented", vec![0x80])])?;
/// assert_eq!(store.stream_version(&stream)?, 1);
/// # Ok::<(), es_runtime::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    clock: Arc<dyn Clock>,
    watch: HeadWatch,
}

#[derive(Debug, Default)]
struct Inner {
    /// The global log; the event at position `p` is `log.get(p - 1)`.
    log: Log,
    /// Each stream's index in `streams`.
    index: HashMap<StreamId, u32, RandomState>,
    /// Per stream, its id and the positions of its events in version order.
    streams: Vec<Stream>,
    snapshots: HashMap<StreamId, Vec<Snapshot>, RandomState>,
    checkpoints: HashMap<String, u64>,
    /// Every recorded schema, in the order recorded.
    schemas: Vec<RecordedSchema>,
    last_timestamp: Timestamp,
}

#[derive(Debug)]
struct Stream {
    id: StreamId,
    positions: Vec<u64>,
}

/// Records in chunks of a fixed size: past its first chunk (which grows like a vector, so a
/// small store stays small) the log grows without moving what it holds, so an append never
/// copies the whole log under the lock.
#[derive(Debug, Default)]
struct Log {
    chunks: Vec<Vec<Record>>,
    len: usize,
}

impl Log {
    const CHUNK_BITS: u32 = 14;
    const CHUNK: usize = 1 << Self::CHUNK_BITS;

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, i: usize) -> &Record {
        &self.chunks[i >> Self::CHUNK_BITS][i & (Self::CHUNK - 1)]
    }

    fn push(&mut self, record: Record) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < Self::CHUNK => last.push(record),
            _ => {
                // The next chunks are allocated whole.
                let capacity = if self.chunks.is_empty() {
                    16
                } else {
                    Self::CHUNK
                };
                let mut chunk = Vec::with_capacity(capacity);
                chunk.push(record);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// The records from index `from` on, in order.
    fn iter_from(&self, from: usize) -> impl Iterator<Item = &Record> {
        let (first, rest) = match self.chunks.get(from >> Self::CHUNK_BITS..) {
            Some([first, rest @ ..]) => (first.get(from & (Self::CHUNK - 1)..), rest),
            _ => (None, &[][..]),
        };
        first.unwrap_or(&[]).iter().chain(rest.iter().flatten())
    }
}

/// One event as the log holds it. A replay reads one of these per event, one after another,
/// so its size is the replay's memory traffic besides the payload: 104 bytes (1.6 cache
/// lines), held there by the 32-bit stream index beside the 32-bit event version and the
/// metadata's boxed slice (a `Vec` would add its capacity).
#[derive(Debug)]
struct Record {
    /// The stream's index in `Inner::streams`.
    stream: u32,
    event_version: u32,
    version: u64,
    /// Borrowed for the usual `&'static` type names of generated events: no allocation.
    event_type: std::borrow::Cow<'static, str>,
    event_id: Uuid,
    timestamp: Timestamp,
    /// Empty, without an allocation, for events without metadata.
    metadata: Box<[u8]>,
    payload: Vec<u8>,
}

/// Most streams a memory store holds: their indexes in `Inner::streams` are 32-bit.
const MAX_STREAMS: usize = u32::MAX as usize;

impl Record {
    fn as_ref<'a>(&'a self, stream: &'a str, position: u64) -> EventRef<'a> {
        EventRef {
            stream,
            version: self.version,
            position,
            event_type: &self.event_type,
            event_version: self.event_version,
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: &self.metadata,
            payload: &self.payload,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl Inner {
    /// The index of `stream` in `streams`, added if it has none. The caller checked there is
    /// room (see [`Inner::check_room`]).
    fn stream_index(&mut self, stream: &StreamId) -> u32 {
        if let Some(&i) = self.index.get(stream) {
            return i;
        }
        let i = u32::try_from(self.streams.len()).expect("room was checked");
        self.streams.push(Stream {
            id: stream.clone(),
            positions: Vec::new(),
        });
        self.index.insert(stream.clone(), i);
        i
    }

    /// Refuses a write that could add `new` streams past [`MAX_STREAMS`], before anything
    /// of it is written.
    fn check_room(&self, new: usize, stream: &StreamId) -> Result<(), AppendError> {
        if new > MAX_STREAMS.saturating_sub(self.streams.len()) {
            return Err(AppendError::Storage {
                stream: stream.clone(),
                source: format!("a memory store holds at most {MAX_STREAMS} streams").into(),
            });
        }
        Ok(())
    }

    /// [`EventStore::streams`], from the stream table.
    fn streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Vec<StreamHead> {
        let after = after.map(StreamId::as_str);
        let mut found: Vec<&Stream> = self
            .streams
            .iter()
            .filter(|s| in_category(s.id.as_str(), category))
            .filter(|s| after.is_none_or(|a| s.id.as_str() > a))
            .collect();
        found.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        found
            .into_iter()
            .filter_map(|s| {
                let position = *s.positions.last()?;
                Some(StreamHead::new(
                    s.id.clone(),
                    s.positions.len() as u64,
                    position,
                ))
            })
            .take(limit)
            .collect()
    }
}

impl MemoryStore {
    /// An empty store stamping events with the system clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(Arc::new(SystemClock))
    }

    /// An empty store stamping events with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            inner: RwLock::new(Inner::default()),
            clock,
            watch: HeadWatch::default(),
        }
    }

    // A panic while holding the lock cannot leave `Inner` half-written (every mutation is
    // prepared first), so a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn append_events(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: impl ExactSizeIterator<Item = NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let found = inner.index.get(stream).copied();
        let current = found.map_or(0, |i| inner.streams[i as usize].positions.len() as u64);
        if !expected.matches(current) {
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: current,
            });
        }
        let timestamp = self.clock.now().max(inner.last_timestamp);
        let first_position = inner.log.len() as u64 + 1;
        let count = events.len() as u64;
        if count == 0 {
            return Ok(AppendResult::new(current + 1, first_position, 0, timestamp));
        }
        if found.is_none() {
            inner.check_room(1, stream)?;
        }
        inner.last_timestamp = timestamp;
        let index = inner.stream_index(stream);
        let positions = &mut inner.streams[index as usize].positions;
        for (i, e) in events.enumerate() {
            let i = i as u64;
            positions.push(first_position + i);
            inner.log.push(Record {
                stream: index,
                version: current + 1 + i,
                event_type: e.event_type,
                event_version: e.event_version,
                event_id: e.event_id,
                timestamp,
                metadata: codec::encode_metadata(&e.metadata).into_boxed_slice(),
                payload: e.payload,
            });
        }
        let head = inner.log.len() as u64;
        drop(guard);
        self.watch.publish(head);
        Ok(AppendResult::new(
            current + 1,
            first_position,
            count,
            timestamp,
        ))
    }
}

impl MemoryStore {
    /// Imports a batch under one lock: checked whole first, so that a refused batch leaves
    /// nothing behind.
    fn import_events(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let first_position = inner.log.len() as u64 + 1;
        let mut check = ImportCheck::new(inner.last_timestamp);
        for event in &events {
            let current = check.version(event.stream.as_str()).unwrap_or_else(|| {
                inner
                    .index
                    .get(&event.stream)
                    .map_or(0, |&i| inner.streams[i as usize].positions.len() as u64)
            });
            check.admit(event, current)?;
        }
        let count = events.len() as u64;
        let Some(first) = events.first() else {
            return Ok(ImportResult::new(first_position, 0));
        };
        // At most one new stream per event.
        inner.check_room(events.len(), &first.stream)?;
        inner.last_timestamp = check.last_timestamp();
        for (e, position) in events.into_iter().zip(first_position..) {
            let index = inner.stream_index(&e.stream);
            inner.streams[index as usize].positions.push(position);
            inner.log.push(Record {
                stream: index,
                version: e.version,
                event_type: e.event_type,
                event_version: e.event_version,
                event_id: e.event_id,
                timestamp: e.timestamp,
                metadata: codec::encode_metadata(&e.metadata).into_boxed_slice(),
                payload: e.payload,
            });
        }
        let head = inner.log.len() as u64;
        drop(guard);
        self.watch.publish(head);
        Ok(ImportResult::new(first_position, count))
    }
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.append_events(stream, expected, events.into_iter())
    }

    fn append_one(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        event: NewEvent,
    ) -> Result<AppendResult, AppendError> {
        self.append_events(stream, expected, std::iter::once(event))
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        let inner = self.read();
        Ok(inner
            .index
            .get(stream)
            .map_or(0, |&i| inner.streams[i as usize].positions.len() as u64))
    }

    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let inner = self.read();
        let Some(&i) = inner.index.get(stream) else {
            return Ok(());
        };
        let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        let positions = &inner.streams[i as usize].positions;
        for &p in positions.get(skip..).unwrap_or(&[]) {
            let record = inner.log.get((p - 1) as usize);
            if visitor(record.as_ref(stream.as_str(), p)).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        let inner = self.read();
        let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        for (record, p) in inner.log.iter_from(skip).zip(skip as u64 + 1..) {
            let stream = inner.streams[record.stream as usize].id.as_str();
            if visitor(record.as_ref(stream, p)) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }

    fn head_position(&self) -> Result<u64, ReadError> {
        Ok(self.read().log.len() as u64)
    }

    fn streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, ReadError> {
        Ok(self.read().streams(category, after, limit))
    }

    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        let mut inner = self.write();
        let list = inner.snapshots.entry(stream.clone()).or_default();
        match list.binary_search_by_key(&snapshot.version, |s| s.version) {
            Ok(i) => list[i] = snapshot,
            Err(i) => list.insert(i, snapshot),
        }
        let keep = keep.max(1);
        if list.len() > keep {
            let excess = list.len() - keep;
            list.drain(..excess);
        }
        Ok(())
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        Ok(self
            .read()
            .snapshots
            .get(stream)
            .and_then(|l| l.last().cloned()))
    }

    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        Ok(self
            .read()
            .snapshots
            .get(stream)
            .cloned()
            .unwrap_or_default())
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        self.write().checkpoints.insert(name.to_owned(), position);
        Ok(())
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        Ok(self.read().checkpoints.get(name).copied())
    }

    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        let mut all: Vec<(String, u64)> = self
            .read()
            .checkpoints
            .iter()
            .map(|(name, &p)| (name.clone(), p))
            .collect();
        all.sort_unstable();
        Ok(all)
    }

    fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
        self.import_events(events)
    }

    fn head_watch(&self) -> Option<&HeadWatch> {
        Some(&self.watch)
    }

    fn save_schema(&self, schema: &OwnedSchema) -> Result<Option<RecordedSchema>, WriteError> {
        let (name, json) = schemas::prepare(schema)?;
        let mut inner = self.write();
        let newest = inner
            .schemas
            .iter()
            .rfind(|r| r.name == name)
            .map(|r| (r.revision, r.json.as_str()));
        let Some(revision) = schemas::next_revision(newest, &json) else {
            return Ok(None);
        };
        let record = RecordedSchema::new(name.to_owned(), revision, self.clock.now(), json);
        inner.schemas.push(record.clone());
        Ok(Some(record))
    }

    fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        let mut records = self.read().schemas.clone();
        schemas::sort(&mut records);
        Ok(records)
    }

    fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
        let mut inner = self.write();
        let taken = schemas::to_import(&inner.schemas, records)?;
        let count = taken.len() as u64;
        inner.schemas.extend(taken);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay reads every record of its stream: the layout stays at 1.6 cache lines.
    #[test]
    fn a_record_takes_104_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 104);
    }

    /// Metadata round-trips through the boxed slice, and an event without any reads back empty.
    #[test]
    fn metadata_is_kept_through_the_boxed_slice() {
        use crate::event::Metadata;
        let store = MemoryStore::new();
        let stream = StreamId::new("counter", 1).unwrap();
        let mut with = NewEvent::raw("Incremented", vec![0x80]);
        with.metadata = Metadata::default().with("user", "ada");
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![with, NewEvent::raw("Incremented", vec![0x80])],
            )
            .unwrap();
        let inner = store.read();
        assert!(inner.log.get(1).metadata.is_empty());
        drop(inner);
        let read = store.read_stream(&stream, 1, 10).unwrap();
        assert_eq!(
            read[0].metadata.user.get("user").map(String::as_str),
            Some("ada")
        );
        assert!(read[1].metadata.is_empty());
    }

    /// The positions and (stream, version) pairs `read_all_with` visits from `from`.
    fn read_all_from(store: &MemoryStore, from: u64) -> Vec<(u64, String, u64)> {
        let mut seen = Vec::new();
        store
            .read_all_with(from, &mut |e| {
                seen.push((e.position, e.stream.to_owned(), e.version));
                ControlFlow::Continue(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn the_log_reads_across_chunk_boundaries() {
        let store = MemoryStore::new();
        let streams = [
            StreamId::new("a", 1).unwrap(),
            StreamId::new("b", 2).unwrap(),
            StreamId::new("c", 3).unwrap(),
        ];
        // Two whole chunks and a bit, in batches of 1 to 7 that straddle the boundaries.
        let total = 2 * Log::CHUNK + 5;
        let mut expected = Vec::new();
        let mut versions = [0u64; 3];
        let mut batch = 0;
        while expected.len() < total {
            let s = batch % 3;
            let n = (batch % 7 + 1).min(total - expected.len());
            let events = (0..n)
                .map(|_| NewEvent::raw("Ticked", vec![0x80]))
                .collect();
            store
                .append(&streams[s], ExpectedVersion::Exact(versions[s]), events)
                .unwrap();
            for _ in 0..n {
                versions[s] += 1;
                let p = expected.len() as u64 + 1;
                expected.push((p, streams[s].to_string(), versions[s]));
            }
            batch += 1;
        }
        assert_eq!(store.head_position().unwrap(), total as u64);
        let chunk = Log::CHUNK as u64;
        for from in [
            0,
            1,
            2,
            chunk - 1,
            chunk,
            chunk + 1,
            chunk + 2,
            2 * chunk + 1,
        ] {
            let skip = from.saturating_sub(1) as usize;
            assert_eq!(read_all_from(&store, from), expected[skip..], "from {from}");
        }
        for from in [total as u64 + 1, total as u64 + 2, u64::MAX] {
            assert!(read_all_from(&store, from).is_empty(), "from {from}");
        }
        for (s, stream) in streams.iter().enumerate() {
            let mine: Vec<_> = expected.iter().filter(|(_, id, _)| stream == id).collect();
            assert_eq!(mine.len() as u64, versions[s]);
            assert_eq!(store.stream_version(stream).unwrap(), versions[s]);
            let mut read = Vec::new();
            store
                .read_stream_with(stream, 5000, &mut |e| {
                    read.push((e.position, e.stream.to_owned(), e.version));
                    ControlFlow::Continue(())
                })
                .unwrap();
            let want: Vec<_> = mine[4999..].iter().map(|&e| e.clone()).collect();
            assert_eq!(read, want);
        }
    }
}
