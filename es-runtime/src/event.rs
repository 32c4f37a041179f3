//! The envelope of an event: stream ids, versions and positions, metadata, timestamps, and the
//! new and recorded forms of an event.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec;
use crate::error::{DecodeError, InvalidStreamId};

/// The name of one event stream: the aggregate's category and its id, written `category-id`.
///
/// A stream id is valid when it is non-empty, at most [`StreamId::MAX_LEN`] bytes, and has no
/// control characters. [`StreamId::new`] also requires the category to be non-empty and free
/// of `-`, so the category of any id is the part before its first `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// The longest stream id in bytes. It keeps every store key (stream id plus an 8-byte
    /// version) well under LMDB's 511-byte key limit.
    pub const MAX_LEN: usize = 400;

    /// The stream of aggregate `id` in `category` (an [`Aggregate::NAME`](crate::Aggregate::NAME)).
    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, InvalidStreamId> {
        if category.is_empty() || category.contains('-') {
            return Err(InvalidStreamId::new(
                category,
                "the category must be non-empty and contain no `-`",
            ));
        }
        let id = id.to_string();
        if id.is_empty() {
            return Err(InvalidStreamId::new(
                format!("{category}-"),
                "the aggregate id is empty",
            ));
        }
        Self::parse(format!("{category}-{id}"))
    }

    /// Validates a whole stream id.
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let s = s.into();
        if s.is_empty() {
            return Err(InvalidStreamId::new(s, "a stream id must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            let why = format!(
                "a stream id is at most {} bytes; this one has {}",
                Self::MAX_LEN,
                s.len()
            );
            return Err(InvalidStreamId::new(s, why));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidStreamId::new(
                s,
                "a stream id must not contain control characters",
            ));
        }
        Ok(StreamId(s.into()))
    }

    /// A stream id read back from a store: checked like [`StreamId::parse`] (a store written
    /// by other code, or damaged, may hold anything), with one allocation.
    pub(crate) fn from_stored(s: &str, version: u64) -> Result<Self, DecodeError> {
        let why = if s.is_empty() {
            "it is empty"
        } else if s.len() > Self::MAX_LEN {
            "it is longer than the longest stream id"
        } else if s.chars().any(char::is_control) {
            "it contains control characters"
        } else {
            return Ok(StreamId(s.into()));
        };
        Err(DecodeError::StreamId {
            stream: s.to_owned(),
            version,
            reason: why.to_owned(),
        })
    }

    /// The whole id, `category-id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the part before the first `-` (the whole id if there is none).
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(c, _)| c)
    }

    /// The aggregate id: the part after the first `-` (empty if there is none).
    pub fn id(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, id)| id)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StreamId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for StreamId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for StreamId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<StreamId> for String {
    fn eq(&self, other: &StreamId) -> bool {
        **self == *other.0
    }
}

impl PartialEq<StreamId> for str {
    fn eq(&self, other: &StreamId) -> bool {
        *self == *other.0
    }
}

impl PartialEq<StreamId> for &str {
    fn eq(&self, other: &StreamId) -> bool {
        **self == *other.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(s: String) -> Result<Self, InvalidStreamId> {
        StreamId::parse(s)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(s: &str) -> Result<Self, InvalidStreamId> {
        StreamId::parse(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0.to_string()
    }
}

/// What the writer expects a stream's version to be; the append fails otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet (same as `Exact(0)`).
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's version must be exactly this (`0`: the stream does not exist).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `current` (0: no stream) satisfies this expectation.
    pub fn matches(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exists => current > 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Context carried with an event: who caused it and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The id shared by everything done for one request or workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message (command or event) that caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Free-form pairs (user id, tenant, client address...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
}

impl Metadata {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.causation_id.is_none() && self.user.is_empty()
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Adds a user pair.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user.insert(key.into(), value.into());
        self
    }
}

/// A point in time: nanoseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Whole seconds and nanoseconds since the Unix epoch, kept apart: no 128-bit arithmetic
    /// on the append path. Saturates far in the future.
    fn from_unix(secs: u64, nanos: u64) -> Timestamp {
        let t = secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos));
        Timestamp(t.unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_unix(since.as_secs(), u64::from(since.subsec_nanos()))
    }
}

/// A fresh UUID v7: the Unix time in milliseconds, then a 42-bit counter, then 32 random bits.
///
/// On Linux the time comes from the coarse real-time clock, which costs a memory read instead
/// of a clock read but may be a scheduler tick (a few milliseconds) behind; RFC 9562 lets an
/// id's timestamp be approximate. Event timestamps are the store's, to the nanosecond.
///
/// Each thread keeps its own generator, so making an id takes no lock: the counter starts at a
/// random value each millisecond and counts up within it, so the ids one thread makes sort in
/// the order it made them (RFC 9562, method 1), and the random bits keep threads apart. If the
/// clock steps back, a thread keeps counting from where it was.
pub fn new_event_id() -> Uuid {
    /// A thread's generator; `rng == 0` until it is seeded.
    #[derive(Clone, Copy)]
    struct Generator {
        rng: u64,
        millis: u64,
        counter: u64,
    }
    thread_local!(static GENERATOR: Cell<Generator> = const {
        Cell::new(Generator { rng: 0, millis: 0, counter: 0 })
    });
    const COUNTER_MAX: u64 = (1 << 42) - 1;

    let now = coarse_unix_millis();
    let mut g = GENERATOR.get();
    if g.rng == 0 {
        // Seeded once per thread: std's hasher keys come from the operating system's
        // randomness and differ for every `RandomState`.
        g.rng = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), now) | 1;
    }
    let random = wyrand(&mut g.rng);
    if now > g.millis {
        g.millis = now;
        // Start anywhere in the lower half (41 random bits), so the millisecond has room to
        // count.
        g.counter = random >> 23;
    } else if g.counter < COUNTER_MAX {
        g.counter += 1;
    } else {
        // More ids in one millisecond than the counter holds: borrow the next one.
        g.millis += 1;
        g.counter = 0;
    }
    GENERATOR.set(g);
    let c = g.counter;
    let r = random as u32;
    // The builder keeps the low 4 bits of byte 0 and the low 6 of byte 2 (the rest hold the
    // version and variant): 4 + 8 + 6 + 8 + 8 + 8 = 42 counter bits, then 32 random ones.
    let bytes = [
        (c >> 38) as u8,
        (c >> 30) as u8,
        (c >> 24) as u8,
        (c >> 16) as u8,
        (c >> 8) as u8,
        c as u8,
        (r >> 24) as u8,
        (r >> 16) as u8,
        (r >> 8) as u8,
        r as u8,
    ];
    uuid::Builder::from_unix_timestamp_millis(g.millis, &bytes).into_uuid()
}

/// Milliseconds since the Unix epoch from the cheapest clock that has them: on Linux the
/// coarse real-time clock (a memory read, updated every scheduler tick, so at most a few
/// milliseconds behind), elsewhere the system time.
fn coarse_unix_millis() -> u64 {
    #[cfg(target_os = "linux")]
    if let Some((secs, nanos)) = linux_clock(libc::CLOCK_REALTIME_COARSE) {
        return secs * 1000 + nanos / 1_000_000;
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() * 1000 + u64::from(since.subsec_millis())
}

/// Seconds and nanoseconds since the Unix epoch from one of Linux's real-time clocks, read
/// directly (through the vDSO: no system call), or `None` before 1970 or on error.
#[cfg(target_os = "linux")]
fn linux_clock(clock: libc::clockid_t) -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some((
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    ))
}

/// One step of wyrand: a small, fast generator with a 64-bit state.
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) ^ t) as u64
}

/// Where stores get the time they stamp on events. Inject a [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        #[cfg(target_os = "linux")]
        if let Some((secs, nanos)) = linux_clock(libc::CLOCK_REALTIME) {
            return Timestamp::from_unix(secs, nanos);
        }
        Timestamp::from(SystemTime::now())
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicU64::new(t.0))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// An event to append: its id, stored type name, encoded payload and metadata.
///
/// The store assigns the version, global position and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// A unique id (UUID v7 by default: ids carry their creation time in milliseconds, and
    /// ids made on one thread sort in the order they were made; order events by position).
    pub event_id: Uuid,
    /// The stored type name.
    pub event_type: Cow<'static, str>,
    /// The encoded payload (see [`codec`]).
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
}

impl NewEvent {
    /// Encodes a domain event, with a fresh UUID v7 and the given metadata.
    pub fn from_event<E: crate::DomainEvent>(
        event: &E,
        metadata: Metadata,
    ) -> Result<Self, crate::error::EncodeError> {
        Ok(NewEvent {
            event_id: new_event_id(),
            event_type: Cow::Borrowed(event.event_type()),
            payload: codec::encode(event)?,
            metadata,
        })
    }

    /// An event from raw parts, with a fresh UUID v7 and no metadata.
    pub fn raw(event_type: impl Into<Cow<'static, str>>, payload: Vec<u8>) -> Self {
        NewEvent {
            event_id: new_event_id(),
            event_type: event_type.into(),
            payload,
            metadata: Metadata::default(),
        }
    }
}

/// A stored event, borrowed from the store while it is being read.
///
/// Reading through [`EventStore::read_stream_with`](crate::EventStore::read_stream_with) hands
/// out these views so that the payload can be decoded straight from the store's memory.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The event's version in its stream (1-based).
    pub version: u64,
    /// The event's position in the global log (1-based, gap-free).
    pub position: u64,
    /// The stored type name.
    pub event_type: &'a str,
    /// The event's unique id.
    pub event_id: Uuid,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// The encoded metadata (empty when there is none).
    pub metadata: &'a [u8],
    /// The encoded payload.
    pub payload: &'a [u8],
}

impl EventRef<'_> {
    /// The stream's category: the part before the first `-` (the whole id if there is none).
    pub fn category(&self) -> &str {
        self.stream.split_once('-').map_or(self.stream, |(c, _)| c)
    }

    /// Decodes the payload as `E`, checking its type name first.
    pub fn decode<E: crate::DomainEvent>(&self) -> Result<E, DecodeError> {
        codec::decode_event(self.stream, self.version, self.event_type, self.payload)
    }

    /// Decodes the metadata.
    pub fn metadata(&self) -> Result<Metadata, DecodeError> {
        codec::decode_metadata(self.metadata).map_err(|reason| DecodeError::Metadata {
            stream: self.stream.to_owned(),
            version: self.version,
            reason,
        })
    }

    /// Copies the event out of the store.
    pub fn to_owned(&self) -> Result<RecordedEvent, DecodeError> {
        Ok(RecordedEvent {
            stream: StreamId::from_stored(self.stream, self.version)?,
            version: self.version,
            position: self.position,
            event_type: Cow::Owned(self.event_type.to_owned()),
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: self.metadata()?,
            payload: self.payload.to_vec(),
        })
    }
}

/// A stored event with its envelope: where it is, when and why it was recorded, and its payload
/// (`Vec<u8>` as stored, or a decoded event after [`RecordedEvent::decode`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent<P = Vec<u8>> {
    /// The stream (`category-id`).
    pub stream: StreamId,
    /// The event's version in its stream (1-based).
    pub version: u64,
    /// The event's position in the global log (1-based, gap-free).
    pub position: u64,
    /// The stored type name (borrowed when it is a generated event's static name).
    pub event_type: Cow<'static, str>,
    /// The event's unique id (UUID v7).
    pub event_id: Uuid,
    /// When it was recorded, from the store's clock.
    pub timestamp: Timestamp,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// The payload.
    pub payload: P,
}

impl RecordedEvent {
    /// Decodes the payload as `E`.
    pub fn decode<E: crate::DomainEvent>(self) -> Result<RecordedEvent<E>, DecodeError> {
        let payload = codec::decode_event(
            self.stream.as_str(),
            self.version,
            &self.event_type,
            &self.payload,
        )?;
        Ok(self.with_payload(payload))
    }

    /// The payload as JSON, without knowing its Rust type.
    pub fn payload_json(&self) -> Result<serde_json::Value, DecodeError> {
        codec::to_json(&self.payload).map_err(|reason| DecodeError::Payload {
            stream: self.stream.to_string(),
            version: self.version,
            event_type: self.event_type.to_string(),
            reason,
        })
    }
}

impl<P> RecordedEvent<P> {
    /// The same envelope around another payload.
    pub fn with_payload<Q>(self, payload: Q) -> RecordedEvent<Q> {
        RecordedEvent {
            stream: self.stream,
            version: self.version,
            position: self.position,
            event_type: self.event_type,
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: self.metadata,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn event_ids_from_one_thread_sort_in_creation_order() {
        // The ids' clock is coarse: it may be a scheduler tick (up to 10 ms) behind.
        let before = Timestamp::from(SystemTime::now()).as_millis() - 10;
        let ids: Vec<Uuid> = (0..100_000).map(|_| new_event_id()).collect();
        let after = Timestamp::from(SystemTime::now()).as_millis();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in [ids[0], ids[ids.len() - 1]] {
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
            let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..=after).contains(&millis),
                "{before} <= {millis} <= {after}"
            );
        }
    }

    #[test]
    fn event_ids_from_many_threads_never_collide() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..50_000).map(|_| new_event_id()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().expect("no panic") {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 200_000);
    }

    #[test]
    fn a_stored_event_with_an_invalid_stream_id_is_a_decode_error() {
        let long = "x".repeat(StreamId::MAX_LEN + 1);
        for bad in ["", "account-\n1", long.as_str()] {
            let event = EventRef {
                stream: bad,
                version: 3,
                position: 7,
                event_type: "Opened",
                event_id: new_event_id(),
                timestamp: Timestamp(0),
                metadata: &[],
                payload: &[0x80],
            };
            match event.to_owned() {
                Err(DecodeError::StreamId {
                    stream, version, ..
                }) => {
                    assert_eq!((stream.as_str(), version), (bad, 3));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let good = EventRef {
            stream: "account-1",
            version: 1,
            position: 1,
            event_type: "Opened",
            event_id: new_event_id(),
            timestamp: Timestamp(0),
            metadata: &[],
            payload: &[0x80],
        };
        let owned = good.to_owned().expect("valid");
        assert_eq!(owned.stream, "account-1");
        assert_eq!(owned.stream, String::from("account-1"));
        assert_eq!(String::from("account-1"), owned.stream);
        assert_eq!(owned.stream.category(), "account");
    }

    #[test]
    fn timestamps_convert_without_losing_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(Timestamp::from(t).as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(Timestamp::from(t).to_system_time(), t);
        assert_eq!(
            Timestamp::from(UNIX_EPOCH - Duration::from_secs(1)).as_nanos(),
            0
        );
    }
}
