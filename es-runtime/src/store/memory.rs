//! [`MemoryStore`]: an ephemeral store for tests and examples.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::quality::RandomState;
use uuid::Uuid;

use crate::codec;
use crate::error::{AppendError, ReadError, WriteError};
use crate::event::{Clock, EventRef, ExpectedVersion, NewEvent, StreamId, SystemClock, Timestamp};
use crate::store::{AppendResult, EventStore, Snapshot, Visitor};
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
    /// The global log; the event at position `p` is `log[p - 1]`.
    log: Vec<Record>,
    /// Per stream, the positions of its events in version order.
    streams: HashMap<StreamId, Vec<u64>, RandomState>,
    snapshots: HashMap<StreamId, Vec<Snapshot>, RandomState>,
    checkpoints: HashMap<String, u64>,
    last_timestamp: Timestamp,
}

#[derive(Debug)]
struct Record {
    stream: StreamId,
    version: u64,
    /// Borrowed for the usual `&'static` type names of generated events: no allocation.
    event_type: std::borrow::Cow<'static, str>,
    event_id: Uuid,
    timestamp: Timestamp,
    metadata: Vec<u8>,
    payload: Vec<u8>,
}

impl Record {
    fn as_ref(&self, position: u64) -> EventRef<'_> {
        EventRef {
            stream: self.stream.as_str(),
            version: self.version,
            position,
            event_type: &self.event_type,
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
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let current = inner.streams.get(stream).map_or(0, |v| v.len() as u64);
        if !expected.matches(current) {
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.to_string(),
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
        inner.last_timestamp = timestamp;
        let positions = match inner.streams.get_mut(stream) {
            Some(positions) => positions,
            None => inner.streams.entry(stream.clone()).or_default(),
        };
        inner.log.reserve(events.len());
        for (i, e) in events.into_iter().enumerate() {
            let i = i as u64;
            positions.push(first_position + i);
            inner.log.push(Record {
                stream: stream.clone(),
                version: current + 1 + i,
                event_type: e.event_type,
                event_id: e.event_id,
                timestamp,
                metadata: codec::encode_metadata(&e.metadata),
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

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        Ok(self
            .read()
            .streams
            .get(stream)
            .map_or(0, |v| v.len() as u64))
    }

    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let inner = self.read();
        let Some(positions) = inner.streams.get(stream) else {
            return Ok(());
        };
        let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        for &p in positions.iter().skip(skip) {
            let record = &inner.log[(p - 1) as usize];
            if visitor(record.as_ref(p)).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        let inner = self.read();
        let skip = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        for (i, record) in inner.log.iter().enumerate().skip(skip) {
            if visitor(record.as_ref(i as u64 + 1)) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }

    fn head_position(&self) -> Result<u64, ReadError> {
        Ok(self.read().log.len() as u64)
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

    fn head_watch(&self) -> Option<&HeadWatch> {
        Some(&self.watch)
    }
}
