//! Running a command: decide, encode, append, apply, driven by one retry loop.
//!
//! An attempt runs the command on the instance as the host holds it. When another writer
//! moved the stream under it (the append conflicts, or a refusal or an empty decision was made
//! on an instance that turns out to be behind), the instance catches up and the command runs
//! again, up to [`max_retries`](crate::HostBuilder::max_retries) times. Every attempt but the
//! last runs a copy of the command; the last runs the command itself.
//!
//! The events decided are held with their ids until the store has them; their envelopes are
//! made once, from where the append put them, and then applied. A panic in domain code (the
//! handler, an event's `Serialize`, `apply`) fails the command and drops the instance, as does
//! a failure that leaves it behind or part-way; every other failure keeps it.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::codec;
use crate::event::{ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamId, new_event_id};
use crate::host::cache::{EntryState, Instance};
use crate::host::error::{ExecuteError, LoadError, Phase, panic_message};
use crate::host::metrics::bump;
use crate::host::shared::Shared;
use crate::host::{ExecuteAndReadResult, Executed};
use crate::store::{AppendResult, EventStore};

impl<A: Aggregate, S: EventStore + 'static> Shared<A, S> {
    /// Runs `command` on the instance of `key`, then `after` on the new state.
    pub(super) fn execute<R>(
        &self,
        key: &str,
        command: A::Command,
        metadata: Metadata,
        after: impl FnOnce(&A) -> R,
    ) -> ExecuteAndReadResult<A, R>
    where
        A::Command: Clone,
    {
        let span = tracing::info_span!("es.execute", stream = key);
        let _entered = span.enter();
        self.locked(key, true, |stream, slot| {
            self.run(stream, slot, command, metadata, after)
        })
    }

    /// The retry loop, on the locked slot of `stream`.
    fn run<R>(
        &self,
        stream: &StreamId,
        slot: &mut EntryState<A>,
        command: A::Command,
        mut metadata: Metadata,
        after: impl FnOnce(&A) -> R,
    ) -> ExecuteAndReadResult<A, R>
    where
        A::Command: Clone,
    {
        let attempts = self.options.max_retries.saturating_add(1);
        for attempt in 1..attempts {
            let instance = self.loaded(stream, slot)?;
            match self.attempt(stream, instance, command.clone(), metadata, attempt, true) {
                Ok(done) => return Ok((done, after(&instance.state))),
                Err(Failure::Stale(cause, unused)) => {
                    metadata = unused;
                    bump(&self.counters.retries);
                    if cause == Stale::Conflict {
                        // Another writer won: come back at a random later time, so that
                        // writers that met do not meet again at once.
                        backoff(&self.options, attempt);
                    }
                    if let Err(e) = self.catch_up(stream, instance) {
                        slot.instance = None;
                        return Err(e.into());
                    }
                }
                Err(Failure::Kept(e)) => return Err(e),
                Err(Failure::Lost(e)) => {
                    slot.instance = None;
                    return Err(e);
                }
            }
        }
        let instance = self.loaded(stream, slot)?;
        match self.attempt(stream, instance, command, metadata, attempts, false) {
            Ok(done) => Ok((done, after(&instance.state))),
            Err(Failure::Stale(..)) => {
                // The instance is known to be behind: the next command reloads it.
                slot.instance = None;
                Err(ExecuteError::Conflict {
                    stream: stream.clone(),
                    attempts,
                })
            }
            Err(Failure::Kept(e)) => Err(e),
            Err(Failure::Lost(e)) => {
                slot.instance = None;
                Err(e)
            }
        }
    }

    /// One attempt: decide, encode, append, apply. `may_retry`: a stale instance is worth
    /// checking for when the command did not reach the store.
    ///
    /// The caller's metadata ends in the last recorded event, or comes back with a stale
    /// instance for the next attempt: it is moved, never copied and dropped, as most commands
    /// carry none and an empty map still costs its drop.
    fn attempt(
        &self,
        stream: &StreamId,
        instance: &mut Instance<A>,
        command: A::Command,
        metadata: Metadata,
        attempt: u32,
        may_retry: bool,
    ) -> Result<Executed<A::Event>, Failure<A::Error>> {
        let decision = self.decide(stream, &instance.state, command)?;
        let before = instance.version;
        // An append proves the instance was current; a refusal or an empty result proves
        // nothing, so check the stream did not move under it (another writer) before
        // answering. Alone on a stream, this costs one version read per refusal.
        let undecided = !matches!(&decision, Ok(decided) if !decided.is_empty());
        if undecided && may_retry && self.moved(stream, before)? {
            return Err(Failure::Stale(Stale::Moved, metadata));
        }
        let decided = decision.map_err(|e| Failure::Kept(ExecuteError::Rejected(e)))?;
        if decided.is_empty() {
            return Ok(Executed {
                stream: stream.clone(),
                version: before,
                events: Vec::new(),
            });
        }
        let (batch, bytes) = self.encode(stream, &decided, &metadata)?;
        let written = match self.append(stream, before, batch, attempt) {
            Ok(written) => written,
            Err(Failure::Stale(cause, ())) => return Err(Failure::Stale(cause, metadata)),
            Err(Failure::Kept(e)) => return Err(Failure::Kept(e)),
            Err(Failure::Lost(e)) => return Err(Failure::Lost(e)),
        };

        // Stored: now the instance must reflect every event, or be dropped.
        let events = record(stream, decided, &written, metadata);
        self.apply(stream, &mut instance.state, &events)?;
        instance.version = written.stream_version();
        instance.grew(bytes);
        if self.policy.is_due(before, instance.version) {
            self.snapshots.snapshot(stream, instance);
        }
        Ok(Executed {
            stream: stream.clone(),
            version: instance.version,
            events,
        })
    }

    /// Runs the handler: the events it decides, each given its id, or its refusal.
    fn decide(
        &self,
        stream: &StreamId,
        state: &A,
        command: A::Command,
    ) -> Result<Decision<A>, Failure<A::Error>> {
        let mut decided = Decided::None;
        let handled = catch_unwind(AssertUnwindSafe(|| {
            state.handle_with_services(command, &self.services, &mut |event| decided.push(event))
        }));
        match handled {
            Ok(handled) => Ok(handled.map(|()| decided)),
            Err(panic) => Err(Failure::Lost(self.panicked(stream, Phase::Handle, &*panic))),
        }
    }

    /// Whether the stream moved past `version`.
    fn moved(&self, stream: &StreamId, version: u64) -> Result<bool, Failure<A::Error>> {
        match self.store.stream_version(stream) {
            Ok(current) => Ok(current != version),
            Err(source) => Err(Failure::Kept(
                LoadError::Read {
                    stream: stream.clone(),
                    source,
                }
                .into(),
            )),
        }
    }

    /// The decided events as the store takes them, each with the caller's metadata, and the
    /// bytes of their payloads.
    fn encode(
        &self,
        stream: &StreamId,
        decided: &Decided<A::Event>,
        metadata: &Metadata,
    ) -> Result<(Batch, usize), Failure<A::Error>> {
        let new = |(id, event): &(Uuid, A::Event)| {
            Ok::<_, crate::error::EncodeError>(NewEvent {
                event_id: *id,
                event_type: Cow::Borrowed(event.event_type()),
                event_version: event.event_version(),
                payload: codec::encode(event)?,
                metadata: metadata.clone(),
            })
        };
        // An event's `Serialize` is domain code too: a panic there fails the command.
        let encoded = catch_unwind(AssertUnwindSafe(|| match decided {
            Decided::None => Ok(Batch::Many(Vec::new())),
            Decided::One(event) => new(event).map(Batch::One),
            Decided::Many(events) => events
                .iter()
                .map(new)
                .collect::<Result<_, _>>()
                .map(Batch::Many),
        }));
        match encoded {
            Ok(Ok(batch)) => {
                let bytes = batch.bytes();
                Ok((batch, bytes))
            }
            Ok(Err(source)) => Err(Failure::Kept(ExecuteError::Encode {
                stream: stream.clone(),
                source,
            })),
            Err(panic) => Err(Failure::Lost(self.panicked(stream, Phase::Encode, &*panic))),
        }
    }

    /// Appends the batch with the instance's version as the expected one.
    fn append(
        &self,
        stream: &StreamId,
        before: u64,
        batch: Batch,
        attempt: u32,
    ) -> Result<AppendResult, Failure<A::Error, ()>> {
        let expected = ExpectedVersion::Exact(before);
        let appended = match batch {
            Batch::One(event) => self.store.append_one(stream, expected, event),
            Batch::Many(events) => self.store.append(stream, expected, events),
        };
        match appended {
            Ok(written) => Ok(written),
            Err(refused) => match refused.into_failure() {
                Ok(failure) => Err(Failure::Kept(ExecuteError::Append(failure))),
                Err(actual) => {
                    bump(&self.counters.conflicts);
                    tracing::debug!(
                        expected = before,
                        actual,
                        attempts = attempt,
                        "version conflict"
                    );
                    Err(Failure::Stale(Stale::Conflict, ()))
                }
            },
        }
    }

    /// Applies the recorded events to the state.
    fn apply(
        &self,
        stream: &StreamId,
        state: &mut A,
        events: &[RecordedEvent<A::Event>],
    ) -> Result<(), Failure<A::Error>> {
        catch_unwind(AssertUnwindSafe(|| {
            for event in events {
                state.apply_ref(&event.payload);
            }
        }))
        .map_err(|panic| Failure::Lost(self.panicked(stream, Phase::Apply, &*panic)))
    }

    fn panicked<E>(
        &self,
        stream: &StreamId,
        phase: Phase,
        panic: &(dyn std::any::Any + Send),
    ) -> ExecuteError<E> {
        bump(&self.counters.panics);
        let message = panic_message(panic);
        tracing::error!(%stream, %phase, message, "domain code panicked; the instance was dropped");
        ExecuteError::Panicked {
            stream: stream.clone(),
            phase,
            message,
        }
    }
}

/// The envelopes of the stored events, from where the append put them. The caller's metadata
/// goes to the last one (moved, not copied).
fn record<E: DomainEvent>(
    stream: &StreamId,
    decided: Decided<E>,
    written: &AppendResult,
    metadata: Metadata,
) -> Vec<RecordedEvent<E>> {
    let envelope = |i: usize, event_id, payload: E, metadata| {
        let offset = i as u64;
        RecordedEvent {
            stream: stream.clone(),
            version: written.first_version + offset,
            position: written.first_position + offset,
            event_type: Cow::Borrowed(payload.event_type()),
            event_version: payload.event_version(),
            event_id,
            timestamp: written.timestamp,
            metadata,
            payload,
        }
    };
    match decided {
        Decided::None => Vec::new(),
        Decided::One((event_id, payload)) => vec![envelope(0, event_id, payload, metadata)],
        Decided::Many(decided) => {
            let last = decided.len() - 1;
            let mut events = Vec::with_capacity(decided.len());
            let mut metadata = Some(metadata);
            for (i, (event_id, payload)) in decided.into_iter().enumerate() {
                let metadata = match &metadata {
                    Some(shared) if i < last => shared.clone(),
                    _ => metadata.take().unwrap_or_default(),
                };
                events.push(envelope(i, event_id, payload, metadata));
            }
            events
        }
    }
}

/// What a handler decided: its events, or its refusal.
type Decision<A> = Result<Decided<<A as Aggregate>::Event>, <A as Aggregate>::Error>;

/// Why an attempt did not finish the command.
enum Failure<E, M = Metadata> {
    /// Another writer moved the stream: the instance is behind. The caller's metadata comes
    /// back for the next attempt.
    Stale(Stale, M),
    /// The command failed; the instance is as it was.
    Kept(ExecuteError<E>),
    /// The command failed, and the instance cannot be trusted (domain code panicked in it):
    /// it is dropped, to be rebuilt from the store on its next use.
    Lost(ExecuteError<E>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// The append found another version.
    Conflict,
    /// A refusal or an empty decision was made on an instance behind the stream.
    Moved,
}

/// The events a handler decided, each with the id it is stored under, until the store has
/// them. Most commands decide one, held without an allocation.
enum Decided<E> {
    None,
    One((Uuid, E)),
    Many(Vec<(Uuid, E)>),
}

impl<E> Decided<E> {
    fn push(&mut self, event: E) {
        let event = (new_event_id(), event);
        *self = match std::mem::replace(self, Decided::None) {
            Decided::None => Decided::One(event),
            Decided::One(first) => Decided::Many(vec![first, event]),
            Decided::Many(mut events) => {
                events.push(event);
                Decided::Many(events)
            }
        };
    }

    fn is_empty(&self) -> bool {
        matches!(self, Decided::None)
    }
}

/// The encoded events for the store: one goes through [`EventStore::append_one`], without
/// the allocation of a batch.
enum Batch {
    One(NewEvent),
    Many(Vec<NewEvent>),
}

impl Batch {
    /// The bytes of the payloads.
    fn bytes(&self) -> usize {
        match self {
            Batch::One(event) => event.payload.len(),
            Batch::Many(events) => events.iter().map(|e| e.payload.len()).sum(),
        }
    }
}

/// Sleeps a random time up to `backoff × 2^(attempt - 1)`, at most `max_backoff`: the pause
/// after the `attempt`th attempt lost a conflict.
fn backoff(options: &super::options::HostOptions, attempt: u32) {
    let bound = options
        .backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(options.max_backoff);
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        std::thread::yield_now();
        return;
    }
    std::thread::sleep(std::time::Duration::from_nanos(jitter() % nanos));
}

/// A random number from a per-thread generator (xorshift64), seeded from the clock and the
/// thread: jitter only, nothing that needs to be unpredictable.
fn jitter() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            x = h.finish() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}
