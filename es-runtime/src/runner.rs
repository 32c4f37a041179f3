//! The one driver of every projection runner: a [`Runner`] moves a projection forward from its
//! checkpoint, chunk by chunk, and each chunk is applied and its checkpoint persisted by the
//! backend's [`Feed`] before the next one is read.
//!
//! [`ProjectionRunner`](crate::projection::ProjectionRunner) is a runner over any
//! [`EventStore`], saving the checkpoint after each chunk;
#![cfg_attr(
    feature = "lmdb",
    doc = "[`TableRunner`](crate::store::lmdb::TableRunner) is one over the LMDB store, writing a chunk's table updates and its checkpoint in one transaction."
)]
#![cfg_attr(
    not(feature = "lmdb"),
    doc = "`TableRunner` (feature `lmdb`) is one over the LMDB store, writing a chunk's table updates and its checkpoint in one transaction."
)]
//!
//! A chunk ends after [`checkpoint_every`](Runner::checkpoint_every) positions or at the next
//! multiple of [`progress_every`](Runner::progress_every), whichever comes first: every
//! [`Progress`] reported is a checkpoint persisted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{DecodeError, ReadError, WriteError};
use crate::event::EventRef;
use crate::read::Until;
use crate::store::EventStore;
use crate::watch::HeadWatch;

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
    /// The projection panicked applying an event. Nothing of that event is kept: a table's
    /// chunk is rolled back to the event before, a store's checkpoint is left at the event
    /// before, so the runner resumes at this event once the projection no longer panics. A
    /// projection holding its read model in memory may have been left half-way through the
    /// event.
    #[error(
        "projection {projection:?} panicked on event {version} of stream {stream:?} (position {position}): {message}"
    )]
    Panicked {
        /// The projection.
        projection: String,
        /// The event's stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// The event's global position.
        position: u64,
        /// The panic's message.
        message: String,
    },
    /// The projection panicked resetting its read model, before a rebuild; its checkpoint
    /// is left as it was.
    #[error("projection {projection:?} panicked resetting: {message}")]
    ResetPanicked {
        /// The projection.
        projection: String,
        /// The panic's message.
        message: String,
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

pub(crate) mod sealed {
    /// Only this crate's backends feed a [`Runner`](super::Runner).
    pub trait Sealed {}
}

/// What a [`Runner`] needs of one backend: a projection with the store that holds its
/// checkpoint. Each backend of this crate has one; it cannot be implemented elsewhere.
pub trait Feed: sealed::Sealed {
    /// Why the projection can refuse an event.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The store whose log the projection reads and which keeps its checkpoint.
    fn store(&self) -> &dyn EventStore;

    /// The projection's name: the checkpoint's key.
    fn name(&self) -> &str;

    /// The last position applied, as stored (0: none).
    fn checkpoint(&self) -> Result<u64, ReadError> {
        Ok(self.store().load_checkpoint(self.name())?.unwrap_or(0))
    }

    /// The head of the store's global log.
    fn head(&self) -> Result<u64, ReadError> {
        self.store().head_position()
    }

    /// The store's head watch, if it has one.
    fn head_watch(&self) -> Option<&HeadWatch> {
        self.store().head_watch()
    }

    /// Forgets the read model and its checkpoint.
    fn reset(&mut self) -> Result<(), ProjectionError<Self::Error>>;

    /// Applies the chunk after the checkpoint that `chunk` bounds and persists the new
    /// checkpoint. On an error, the events before the failing one are applied and persisted
    /// with their checkpoint first.
    fn advance(&mut self, chunk: &Chunk) -> Result<Advanced, ProjectionError<Self::Error>>;
}

/// The bounds of one chunk, as a [`Runner`] hands it to its [`Feed`].
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    head: u64,
    until: Option<Until>,
    /// Events applied by the run before this chunk.
    counted: u64,
    size: u64,
    progress_every: u64,
}

impl Chunk {
    /// The last position of a chunk starting after `start`.
    pub(crate) fn end(&self, start: u64) -> u64 {
        let next_report = (start / self.progress_every)
            .saturating_add(1)
            .saturating_mul(self.progress_every);
        start.saturating_add(self.size).min(next_report)
    }

    /// The last position worth reading for a chunk ending at `end`: one more, to learn
    /// whether more follow, unless the run stops at the head it started with.
    pub(crate) fn read_limit(&self, end: u64) -> u64 {
        match self.until {
            Some(_) => end.saturating_add(1),
            None => end.saturating_add(1).min(self.head),
        }
    }

    /// Whether `event` lies beyond the run, `taken` events of this chunk having been
    /// applied: beyond its bound, or without one beyond the head the run started with (so a
    /// catch-up always ends).
    pub(crate) fn is_past_run(&self, event: &EventRef<'_>, taken: u64) -> bool {
        self.until.map_or(event.position > self.head, |u| {
            u.reached(event, self.counted + taken)
        })
    }
}

/// What one chunk did.
#[derive(Debug, Clone, Copy)]
pub struct Advanced {
    /// The checkpoint before the chunk.
    pub(crate) from: u64,
    /// The checkpoint after it.
    pub(crate) to: u64,
    /// The events applied.
    pub(crate) applied: u64,
    /// Whether it stopped at its end with more events to come in this run.
    pub(crate) more: bool,
}

/// Feeds a projection from the global log of a store, with a durable checkpoint; the API of
/// every projection runner.
#[derive(Debug)]
pub struct Runner<F> {
    pub(crate) feed: F,
    checkpoint_every: u64,
    progress_every: u64,
}

impl<F: Feed> Runner<F> {
    /// A runner over `feed` persisting its checkpoint every `checkpoint_every` positions.
    pub(crate) fn with_feed(feed: F, checkpoint_every: u64) -> Self {
        Runner {
            feed,
            checkpoint_every,
            progress_every: 10_000,
        }
    }

    /// Persists the checkpoint every `n` log positions besides at each progress report and
    /// when stopping (by default 10,000 for a `ProjectionRunner`, 1000 for a `TableRunner`,
    /// whose chunk of `n` positions is one write transaction holding the table's updates and
    /// the checkpoint). With a durable store each save is a commit with its fsync: larger
    /// values amortize it, smaller ones replay less after a crash (and make appends wait
    /// less behind a table's chunk).
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// Reports progress every `n` positions (default 10,000) besides at the end.
    pub fn progress_every(mut self, n: u64) -> Self {
        self.progress_every = n.max(1);
        self
    }

    /// The last position applied, as stored (0: none).
    pub fn checkpoint(&self) -> Result<u64, ReadError> {
        self.feed.checkpoint()
    }

    /// Applies every event committed so far after the checkpoint; returns the events
    /// applied.
    pub fn catch_up(&mut self) -> Result<u64, ProjectionError<F::Error>> {
        self.run(None, &mut |_| {})
    }

    /// Applies events after the checkpoint up to a bound (a position, a time, or a number of
    /// applied events); returns the events applied.
    pub fn run_until(&mut self, until: Until) -> Result<u64, ProjectionError<F::Error>> {
        self.run(Some(until), &mut |_| {})
    }

    /// Catches up, then waits for new commits and applies them until `stop` is set (checked
    /// at least every `tick`). Returns the events applied.
    pub fn follow(
        &mut self,
        stop: &AtomicBool,
        tick: Duration,
    ) -> Result<u64, ProjectionError<F::Error>> {
        let mut applied = 0;
        loop {
            applied += self.catch_up()?;
            if stop.load(Ordering::Acquire) {
                return Ok(applied);
            }
            // Everything up to the checkpoint is applied; anything beyond it wakes us.
            wait_for_commits(self.feed.head_watch(), self.checkpoint()?, tick);
        }
    }

    /// Resets the read model and its checkpoint, then replays all history, calling
    /// `progress` as it goes. Returns the events applied.
    pub fn rebuild(
        &mut self,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64, ProjectionError<F::Error>> {
        self.feed.reset()?;
        self.run(None, &mut progress)
    }

    fn run(
        &mut self,
        until: Option<Until>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, ProjectionError<F::Error>> {
        let started = Instant::now();
        let head = self.feed.head()?;
        let mut applied = 0u64;
        // The checkpoint as the last chunk left it.
        let mut last = None;
        loop {
            if let Some(Until::Count(n)) = until
                && applied >= n
            {
                break;
            }
            let chunk = Chunk {
                head,
                until,
                counted: applied,
                size: self.checkpoint_every,
                progress_every: self.progress_every,
            };
            let done = self.feed.advance(&chunk)?;
            applied += done.applied;
            last = Some(done.to);
            if done.to / self.progress_every > done.from / self.progress_every {
                progress(Progress {
                    position: done.to,
                    head,
                    applied,
                    elapsed: started.elapsed(),
                });
            }
            if !done.more {
                break;
            }
        }
        let last = match last {
            Some(last) => last,
            None => self.checkpoint()?,
        };
        progress(Progress {
            position: last,
            head,
            applied,
            elapsed: started.elapsed(),
        });
        Ok(applied)
    }
}

/// Waits until the head moves beyond `seen` or `tick` passes; without a head watch, sleeps
/// 10 ms at most.
pub(crate) fn wait_for_commits(watch: Option<&HeadWatch>, seen: u64, tick: Duration) {
    match watch {
        Some(watch) => {
            watch.wait_beyond(seen, tick);
        }
        None => std::thread::sleep(tick.min(Duration::from_millis(10))),
    }
}
