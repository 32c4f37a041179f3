//! Projections: read models folded from the global log, with durable checkpoints, live
//! following and rebuilds.
//!
//! A [`Projection`] names the events it reads through its event type (only stored type names
//! in [`DomainEvent::TYPES`] are decoded; others are skipped) and optionally restricts itself to
//! some stream categories. A [`ProjectionRunner`] feeds it from its checkpoint:
//!
//! - [`catch_up`](ProjectionRunner::catch_up) processes everything committed so far;
//! - [`follow`](ProjectionRunner::follow) then waits for new commits until told to stop;
//! - [`rebuild`](ProjectionRunner::rebuild) resets the read model and replays all history,
//!   reporting [`Progress`].
//!
//! The checkpoint (the last processed position) is saved in the store every
//! [`checkpoint_every`](ProjectionRunner::checkpoint_every) events and whenever the runner stops,
//! so a read model kept outside the store sees each event *at least once* across restarts; the
//! event's position ([`Envelope::position`]) lets it drop repeats. A projection that fails on an
//! event stops the runner with an error naming the event; the checkpoint stays before it.
//!
//! With the LMDB store, a read model can live inside the store instead and be updated
//! *exactly once*: see
#![cfg_attr(
    feature = "lmdb",
    doc = "[`TableProjection`](crate::store::lmdb::TableProjection) and [`TableRunner`](crate::store::lmdb::TableRunner)."
)]
#![cfg_attr(
    not(feature = "lmdb"),
    doc = "`TableProjection` and `TableRunner` in `store::lmdb` (feature `lmdb`)."
)]

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::DomainEvent;
use crate::error::{DecodeError, ReadError, WriteError};
use crate::event::Timestamp;
use crate::store::EventStore;
use crate::subscription::Until;

/// One event handed to a projection: the decoded event and where it was recorded.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a, E> {
    /// The stream (`category-id`).
    pub stream: &'a str,
    /// The event's version in its stream.
    pub version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's unique id.
    pub event_id: Uuid,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// The event.
    pub event: &'a E,
}

impl<E> Envelope<'_, E> {
    /// The aggregate id: the stream id after its category.
    pub fn aggregate_id(&self) -> &str {
        self.stream.split_once('-').map_or("", |(_, id)| id)
    }
}

/// A read model folded from events.
///
/// ```
/// use es_runtime::projection::{Envelope, Projection};
/// # use es_runtime::DomainEvent;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # enum PollEvent { Voted { voter: String, choice: String } }
/// # impl DomainEvent for PollEvent {
/// #     const TYPES: &'static [&'static str] = &["Voted"];
/// #     fn event_type(&self) -> &'static str { "Voted" }
/// # }
///
/// #[derive(Default)]
/// struct VoteCount { votes: u64 }
///
/// impl Projection for VoteCount {
///     type Event = PollEvent;
///     type Error = std::convert::Infallible;
///     fn name(&self) -> &str { "vote_count" }
///     fn apply(&mut self, _: Envelope<'_, PollEvent>) -> Result<(), Self::Error> {
///         self.votes += 1;
///         Ok(())
///     }
///     fn reset(&mut self) -> Result<(), Self::Error> {
///         self.votes = 0;
///         Ok(())
///     }
/// }
/// ```
pub trait Projection {
    /// The events it reads. Events whose stored type name is not in
    /// [`DomainEvent::TYPES`] are skipped without decoding.
    type Event: DomainEvent;

    /// Why applying an event can fail.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A unique name: the key of the projection's checkpoint.
    fn name(&self) -> &str;

    /// The stream categories it reads (an aggregate's `NAME`); empty: all.
    fn categories(&self) -> &[&str] {
        &[]
    }

    /// Folds one event into the read model.
    fn apply(&mut self, event: Envelope<'_, Self::Event>) -> Result<(), Self::Error>;

    /// Forgets everything, before a rebuild.
    fn reset(&mut self) -> Result<(), Self::Error>;
}

/// Why a projection stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError<E: std::error::Error + 'static> {
    /// The projection refused an event.
    #[error(
        "projection {projection:?} failed on event {version} of stream {stream:?} (position {position}, type {event_type:?}): {source}"
    )]
    Apply {
        /// The projection.
        projection: String,
        /// The event's stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// The event's global position.
        position: u64,
        /// The event's stored type name.
        event_type: String,
        /// The projection's error.
        #[source]
        source: E,
    },
    /// An event did not decode.
    #[error("projection {projection:?} at position {position}: {source}")]
    Decode {
        /// The projection.
        projection: String,
        /// The event's global position.
        position: u64,
        /// The decoding error (names the stream and version).
        #[source]
        source: DecodeError,
    },
    /// Resetting the read model failed.
    #[error("projection {projection:?} could not reset: {source}")]
    Reset {
        /// The projection.
        projection: String,
        /// The projection's error.
        #[source]
        source: E,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Saving the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] WriteError),
}

/// How far a rebuild or catch-up has come.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// The last position processed.
    pub position: u64,
    /// The head of the log when the run started.
    pub head: u64,
    /// Events applied so far in this run (matching the projection's filters).
    pub applied: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Progress {
    /// The fraction of the log processed, from 0 to 1.
    pub fn fraction(&self) -> f64 {
        if self.head == 0 {
            1.0
        } else {
            self.position as f64 / self.head as f64
        }
    }

    /// Log positions processed per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            0.0
        } else {
            self.position as f64 / secs
        }
    }
}

/// Feeds a [`Projection`] from the global log of a store, with a durable checkpoint.
#[derive(Debug)]
pub struct ProjectionRunner<S, P> {
    store: S,
    projection: P,
    checkpoint_every: u64,
    progress_every: u64,
}

impl<S: EventStore, P: Projection> ProjectionRunner<S, P> {
    /// A runner feeding `projection` from `store` (usually an `Arc` of a store).
    pub fn new(store: S, projection: P) -> Self {
        ProjectionRunner {
            store,
            projection,
            checkpoint_every: 1000,
            progress_every: 10_000,
        }
    }

    /// Saves the checkpoint every `n` applied events (default 1000) besides when stopping.
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// Reports progress every `n` positions (default 10,000) besides at the end.
    pub fn progress_every(mut self, n: u64) -> Self {
        self.progress_every = n.max(1);
        self
    }

    /// The read model.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The read model, mutably.
    pub fn projection_mut(&mut self) -> &mut P {
        &mut self.projection
    }

    /// The read model, giving up the runner.
    pub fn into_projection(self) -> P {
        self.projection
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The last position processed, as stored (0: none).
    pub fn checkpoint(&self) -> Result<u64, ReadError> {
        Ok(self
            .store
            .load_checkpoint(self.projection.name())?
            .unwrap_or(0))
    }

    /// Processes every event committed so far after the checkpoint; returns the events
    /// applied.
    pub fn catch_up(&mut self) -> Result<u64, ProjectionError<P::Error>> {
        self.run(None, &mut |_| {})
    }

    /// Processes events after the checkpoint up to a bound (a position, a time, or a number of
    /// applied events); returns the events applied.
    pub fn run_until(&mut self, until: Until) -> Result<u64, ProjectionError<P::Error>> {
        self.run(Some(until), &mut |_| {})
    }

    /// Catches up, then waits for new commits and applies them until `stop` is set (checked
    /// at least every `tick`). Returns the events applied.
    pub fn follow(
        &mut self,
        stop: &AtomicBool,
        tick: Duration,
    ) -> Result<u64, ProjectionError<P::Error>> {
        let mut applied = 0;
        loop {
            applied += self.catch_up()?;
            if stop.load(Ordering::Acquire) {
                return Ok(applied);
            }
            // Everything up to the checkpoint is processed; anything beyond it wakes us.
            let seen = self.checkpoint()?;
            match self.store.head_watch() {
                Some(watch) => {
                    watch.wait_beyond(seen, tick);
                }
                None => std::thread::sleep(tick.min(Duration::from_millis(10))),
            }
        }
    }

    /// Resets the read model and its checkpoint, then replays all history, calling
    /// `progress` as it goes. Returns the events applied.
    pub fn rebuild(
        &mut self,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ProjectionError<P::Error>> {
        let name = self.projection.name().to_owned();
        self.projection
            .reset()
            .map_err(|source| ProjectionError::Reset {
                projection: name.clone(),
                source,
            })?;
        self.store.save_checkpoint(&name, 0)?;
        self.run(None, &mut progress)
    }

    fn run(
        &mut self,
        until: Option<Until>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, ProjectionError<P::Error>> {
        let name = self.projection.name().to_owned();
        let started = Instant::now();
        let head = self.store.head_position()?;
        let categories: Vec<String> = self
            .projection
            .categories()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let mut applied = 0u64;
        let mut last = self.checkpoint()?;
        // The log is read in chunks of `checkpoint_every` positions; the checkpoint is saved
        // between chunks, outside the read (a store may not allow writes inside a read).
        loop {
            let chunk_end = last.saturating_add(self.checkpoint_every);
            let mut at_end = true;
            let mut failure = None;
            let before = last;
            let projection = &mut self.projection;
            let progress_every = self.progress_every;
            let read = self.store.read_all_with(last + 1, &mut |e| {
                let past_end = match until {
                    Some(Until::Position(p)) => e.position > p,
                    Some(Until::Time(t)) => e.timestamp > t,
                    Some(Until::Count(n)) => applied >= n,
                    // Events committed after the run started wait for the next run, so a
                    // catch-up always ends.
                    None => e.position > head,
                };
                if past_end {
                    return ControlFlow::Break(());
                }
                if e.position > chunk_end {
                    at_end = false;
                    return ControlFlow::Break(());
                }
                let category = e.stream.split_once('-').map_or(e.stream, |(c, _)| c);
                let wanted = (categories.is_empty() || categories.iter().any(|c| c == category))
                    && P::Event::TYPES.contains(&e.event_type);
                if wanted {
                    let event = match e.decode::<P::Event>() {
                        Ok(event) => event,
                        Err(source) => {
                            failure = Some(ProjectionError::Decode {
                                projection: name.clone(),
                                position: e.position,
                                source,
                            });
                            return ControlFlow::Break(());
                        }
                    };
                    let envelope = Envelope {
                        stream: e.stream,
                        version: e.version,
                        position: e.position,
                        event_id: e.event_id,
                        timestamp: e.timestamp,
                        event: &event,
                    };
                    if let Err(source) = projection.apply(envelope) {
                        failure = Some(ProjectionError::Apply {
                            projection: name.clone(),
                            stream: e.stream.to_owned(),
                            version: e.version,
                            position: e.position,
                            event_type: e.event_type.to_owned(),
                            source,
                        });
                        return ControlFlow::Break(());
                    }
                    applied += 1;
                }
                last = e.position;
                if last % progress_every == 0 {
                    let elapsed = started.elapsed();
                    progress(Progress {
                        position: last,
                        head,
                        applied,
                        elapsed,
                    });
                }
                ControlFlow::Continue(())
            });
            // Whatever happened, record how far the read model got.
            if last != before {
                self.store.save_checkpoint(&name, last)?;
            }
            read?;
            if let Some(failure) = failure {
                return Err(failure);
            }
            if at_end {
                break;
            }
        }
        progress(Progress {
            position: last,
            head,
            applied,
            elapsed: started.elapsed(),
        });
        Ok(applied)
    }
}
