//! [`HeadWatch`]: how readers learn, without polling, that the global log has grown.
//!
//! A store publishes the new head position after each commit; subscriptions wait on the watch,
//! blocking a thread ([`HeadWatch::wait_beyond`]) or as a future ([`HeadWatch::changed`]).
//! Commits made by another process are not published here; subscriptions also re-read the
//! store after a bounded wait, so they see those too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The head position of a store's global log, with waiters woken when it moves.
///
/// Publishing costs two atomic operations when nobody waits, so stores can publish after every
/// commit.
#[derive(Debug, Default)]
pub struct HeadWatch {
    head: AtomicU64,
    /// Threads blocked in `wait_beyond` plus registered wakers. A publisher that reads zero
    /// here after storing the head skips the lock: any waiter that registers later reads the
    /// new head before sleeping (both sides use sequentially consistent operations).
    waiting: AtomicUsize,
    wakers: Mutex<Wakers>,
    moved: Condvar,
}

/// The wakers of pending [`Changed`] futures, each under the ticket its future holds, so a
/// future that is dropped before a publish takes its waker (and its count) back out.
#[derive(Debug, Default)]
struct Wakers {
    registered: HashMap<u64, Waker>,
    next_ticket: u64,
}

impl HeadWatch {
    /// A watch starting at `head`.
    pub fn new(head: u64) -> Self {
        HeadWatch {
            head: AtomicU64::new(head),
            ..HeadWatch::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Wakers> {
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last published head position.
    pub fn head(&self) -> u64 {
        self.head.load(SeqCst)
    }

    /// Publishes a new head position and wakes every waiter. Positions never go back: a
    /// smaller value is ignored.
    pub fn publish(&self, head: u64) {
        if self.head.fetch_max(head, SeqCst) >= head || self.waiting.load(SeqCst) == 0 {
            return;
        }
        let wakers = {
            let mut wakers = self.lock();
            self.waiting.fetch_sub(wakers.registered.len(), SeqCst);
            std::mem::take(&mut wakers.registered)
        };
        self.moved.notify_all();
        for w in wakers.into_values() {
            w.wake();
        }
    }

    /// Blocks until the head is beyond `position` or `timeout` passes; returns the head.
    pub fn wait_beyond(&self, position: u64, timeout: Duration) -> u64 {
        let guard = self.lock();
        self.waiting.fetch_add(1, SeqCst);
        let (guard, _) = self
            .moved
            .wait_timeout_while(guard, timeout, |_| self.head.load(SeqCst) <= position)
            .unwrap_or_else(|e| e.into_inner());
        self.waiting.fetch_sub(1, SeqCst);
        drop(guard);
        self.head()
    }

    /// A future that resolves to the head once it is beyond `position`.
    pub fn changed(&self, position: u64) -> Changed<'_> {
        Changed {
            watch: self,
            position,
            ticket: None,
        }
    }
}

/// The future of [`HeadWatch::changed`].
///
/// While pending it holds one registered waker, replaced when polled with another; dropping
/// it, or its completion, takes the waker back out.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a> {
    watch: &'a HeadWatch,
    position: u64,
    /// The ticket of the registered waker, if any (a publish may have taken it since).
    ticket: Option<u64>,
}

impl Changed<'_> {
    /// Registers the task's waker, or replaces the one registered before.
    fn register(&mut self, waker: &Waker) {
        let mut wakers = self.watch.lock();
        if let Some(ticket) = self.ticket
            && let Some(w) = wakers.registered.get_mut(&ticket)
        {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
            return;
        }
        let ticket = wakers.next_ticket;
        wakers.next_ticket += 1;
        wakers.registered.insert(ticket, waker.clone());
        self.watch.waiting.fetch_add(1, SeqCst);
        self.ticket = Some(ticket);
    }

    /// Takes the registered waker back out, unless a publish took it already.
    fn deregister(&mut self) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        let mut wakers = self.watch.lock();
        if wakers.registered.remove(&ticket).is_some() {
            self.watch.waiting.fetch_sub(1, SeqCst);
        }
    }
}

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let head = self.watch.head();
        if head > self.position {
            self.deregister();
            return Poll::Ready(head);
        }
        self.register(cx.waker());
        // A publish that read `waiting` before the waker was counted wakes nobody; its head is
        // visible now.
        let head = self.watch.head();
        if head > self.position {
            self.deregister();
            return Poll::Ready(head);
        }
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_blocked_reader_is_woken_by_a_publish() {
        let watch = Arc::new(HeadWatch::new(3));
        let w = watch.clone();
        let t = std::thread::spawn(move || w.wait_beyond(3, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        watch.publish(2);
        watch.publish(5);
        assert_eq!(t.join().unwrap(), 5);
        assert_eq!(watch.head(), 5);
    }

    #[test]
    fn waiting_beyond_an_old_position_returns_at_once() {
        let watch = HeadWatch::new(10);
        assert_eq!(watch.wait_beyond(4, Duration::from_secs(3600)), 10);
        assert_eq!(
            watch.wait_beyond(10, Duration::from_millis(1)),
            10,
            "timed out"
        );
    }

    /// Waiters racing a fast publisher never miss a wake-up: a lost one would leave a waiter
    /// asleep until its (long) timeout and return a head that is not beyond its position.
    #[test]
    fn no_wake_up_is_lost_under_a_racing_publisher() {
        const LAST: u64 = 20_000;
        let watch = Arc::new(HeadWatch::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let w = watch.clone();
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while seen < LAST {
                        let head = w.wait_beyond(seen, Duration::from_secs(20));
                        assert!(head > seen, "woken without progress: a wake-up was lost");
                        seen = head;
                    }
                })
            })
            .collect();
        for p in 1..=LAST {
            watch.publish(p);
            if p % 64 == 0 {
                std::thread::yield_now();
            }
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(watch.waiting.load(SeqCst), 0);
    }

    /// A future dropped while pending takes its waker and its count along: a reader that
    /// gives up (a timeout won the race) leaves nothing behind for the next publish.
    #[test]
    fn a_dropped_future_leaves_no_waker_behind() {
        let watch = HeadWatch::new(7);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            let mut changed = std::pin::pin!(watch.changed(7));
            assert!(changed.as_mut().poll(&mut cx).is_pending());
            assert!(changed.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(watch.waiting.load(SeqCst), 0);
        assert!(watch.lock().registered.is_empty());
        // Counted ones are still woken.
        let mut changed = Box::pin(watch.changed(7));
        assert!(changed.as_mut().poll(&mut cx).is_pending());
        assert_eq!(watch.waiting.load(SeqCst), 1);
        watch.publish(8);
        assert_eq!(changed.as_mut().poll(&mut cx), Poll::Ready(8));
        drop(changed);
        assert_eq!(watch.waiting.load(SeqCst), 0);
        assert!(watch.lock().registered.is_empty());
    }
}
