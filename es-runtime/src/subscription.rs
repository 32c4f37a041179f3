//! Subscriptions: read the global log from a position, then follow new events as they are
//! committed.
//!
//! ```
//! use std::time::Duration;
//! use es_runtime::{EventStore, ExpectedVersion, MemoryStore, NewEvent, StreamId};
//! use es_runtime::subscription::{Filter, Subscription};
//!
//! let store = std::sync::Arc::new(MemoryStore::new());
//! let poll = StreamId::new("poll", 1)?;
//! store.append(&poll, ExpectedVersion::Any, vec![NewEvent::raw("Voted", vec![0x80])])?;
//!
//! let mut votes = Subscription::new(store.clone(), Filter::all().category("poll"));
//! assert_eq!(votes.next_timeout(Duration::from_secs(1))?.unwrap().position, 1);
//! // Caught up: the next call waits for a commit (here, none comes).
//! assert!(votes.next_timeout(Duration::from_millis(10))?.is_none());
//! # Ok::<(), es_runtime::Error>(())
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::{Location, ReadError};
use crate::event::RecordedEvent;
use crate::store::EventStore;
use crate::timer::Sleep;

pub use crate::read::{Filter, Until};

/// How many events a subscription reads from the store at a time.
const BATCH: usize = 512;

/// How long a caught-up subscription waits before re-reading the store even without a
/// notification (commits by other processes are not notified).
const RECHECK: Duration = Duration::from_millis(250);

/// A reader of the global log that catches up from a position, then follows new events as
/// they are committed, in position order, each event once.
///
/// Blocking readers use [`next_blocking`](Subscription::next_blocking),
/// [`next_timeout`](Subscription::next_timeout) or iterate (the [`Iterator`] blocks too); async
/// readers await [`next_async`](Subscription::next_async). Waiting uses the store's
/// [`HeadWatch`](crate::watch::HeadWatch): no polling loop burns CPU.
#[derive(Debug)]
pub struct Subscription<S> {
    store: S,
    filter: Filter,
    /// The next position to read from the store.
    next_position: u64,
    /// The position of the last event handed out (0: none).
    position: u64,
    buffer: VecDeque<RecordedEvent>,
    delivered: u64,
    finished: bool,
}

impl<S: EventStore> Subscription<S> {
    /// A subscription over `store` (usually an `Arc` of a store).
    pub fn new(store: S, filter: Filter) -> Self {
        let next_position = filter.start();
        Subscription {
            store,
            filter,
            next_position,
            position: next_position - 1,
            buffer: VecDeque::new(),
            delivered: 0,
            finished: false,
        }
    }

    /// The position of the last event returned (or the one before the start).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether the `until` bound has been reached and every event before it returned.
    pub fn is_finished(&self) -> bool {
        self.finished && self.buffer.is_empty()
    }

    /// The next event if one is available now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        if self.buffer.is_empty() && !self.finished {
            self.fill()?;
        }
        Ok(self.pop())
    }

    /// The next event, waiting up to `timeout` for one to be committed. `None` when the
    /// time is up or the `until` bound is reached.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(Some(e));
            }
            if self.finished {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(RECHECK);
            match self.store.head_watch() {
                Some(watch) => {
                    watch.wait_beyond(self.next_position - 1, wait);
                }
                None => std::thread::sleep(wait.min(Duration::from_millis(10))),
            }
        }
    }

    /// The next event, waiting as long as it takes. `None` once the `until` bound is reached.
    pub fn next_blocking(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        loop {
            if let Some(e) = self.next_timeout(Duration::from_secs(3600))? {
                return Ok(Some(e));
            }
            if self.finished {
                return Ok(None);
            }
        }
    }

    /// The next event, as a future that waits for a commit without blocking the executor.
    /// `None` once the `until` bound is reached.
    ///
    /// Reading from the store happens on the polling thread; it does not wait on I/O for the
    /// in-memory and LMDB stores (LMDB reads are memory-mapped and never wait for writers).
    pub async fn next_async(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(Some(e));
            }
            if self.finished {
                return Ok(None);
            }
            let seen = self.next_position - 1;
            match self.store.head_watch() {
                Some(watch) => {
                    Either {
                        first: watch.changed(seen),
                        second: Sleep::new(RECHECK),
                    }
                    .await;
                }
                None => Sleep::new(Duration::from_millis(10)).await,
            }
        }
    }

    fn pop(&mut self) -> Option<RecordedEvent> {
        let e = self.buffer.pop_front()?;
        self.position = e.position;
        self.delivered += 1;
        Some(e)
    }

    fn fill(&mut self) -> Result<(), ReadError> {
        let filter = &self.filter;
        let buffer = &mut self.buffer;
        let mut scanned = self.next_position - 1;
        let mut finished = false;
        let mut failed = None;
        let mut wanted = match filter.end() {
            Some(Until::Count(n)) => n.saturating_sub(self.delivered + buffer.len() as u64),
            _ => u64::MAX,
        };
        if wanted == 0 {
            self.finished = true;
            return Ok(());
        }
        self.store.read_all_with(self.next_position, &mut |e| {
            if filter.is_past_end(&e) {
                finished = true;
                return ControlFlow::Break(());
            }
            scanned = e.position;
            if filter.matches(&e) {
                match e.to_recorded() {
                    Ok(owned) => buffer.push_back(owned),
                    Err(err) => {
                        failed = Some(err);
                        return ControlFlow::Break(());
                    }
                }
                wanted -= 1;
                if wanted == 0 {
                    finished = true;
                    return ControlFlow::Break(());
                }
                if buffer.len() >= BATCH {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(err) = failed {
            // `scanned` is the undecodable event. The events before it are handed out first;
            // the next read starts at it, and fails there.
            if !buffer.is_empty() {
                self.next_position = scanned;
                return Ok(());
            }
            return Err(ReadError::Corrupt {
                at: Location::Position(scanned),
                reason: err.to_string(),
            });
        }
        self.next_position = scanned + 1;
        if let Some(Until::Position(p)) = filter.end() {
            finished |= scanned >= p;
        }
        self.finished |= finished;
        Ok(())
    }
}

impl<S: EventStore> Iterator for Subscription<S> {
    type Item = Result<RecordedEvent, ReadError>;

    /// Blocks for the next event; ends at the `until` bound.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_blocking().transpose()
    }
}

/// Resolves when either future does.
struct Either<A, B> {
    first: A,
    second: B,
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Either<A, B> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Pin::new(&mut self.first).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if Pin::new(&mut self.second).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}
