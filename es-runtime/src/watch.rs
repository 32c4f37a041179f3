//! [`HeadWatch`]: how readers learn, without polling, that the global log has grown.
//!
//! A store publishes the new head position after each commit; subscriptions wait on the watch,
//! blocking a thread ([`HeadWatch::wait_beyond`]) or as a future ([`HeadWatch::changed`]).
//! Commits made by another process are not published here; subscriptions also re-read the
//! store after a bounded wait, so they see those too.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The head position of a store's global log, with waiters woken when it moves.
#[derive(Debug, Default)]
pub struct HeadWatch {
    state: Mutex<State>,
    moved: Condvar,
}

#[derive(Debug, Default)]
struct State {
    head: u64,
    wakers: Vec<Waker>,
}

impl HeadWatch {
    /// A watch starting at `head`.
    pub fn new(head: u64) -> Self {
        HeadWatch {
            state: Mutex::new(State {
                head,
                wakers: Vec::new(),
            }),
            moved: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last published head position.
    pub fn head(&self) -> u64 {
        self.lock().head
    }

    /// Publishes a new head position and wakes every waiter. Positions never go back: a
    /// smaller value is ignored.
    pub fn publish(&self, head: u64) {
        let wakers = {
            let mut state = self.lock();
            if head <= state.head {
                return;
            }
            state.head = head;
            std::mem::take(&mut state.wakers)
        };
        self.moved.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until the head is beyond `position` or `timeout` passes; returns the head.
    pub fn wait_beyond(&self, position: u64, timeout: Duration) -> u64 {
        let state = self.lock();
        let (state, _) = self
            .moved
            .wait_timeout_while(state, timeout, |s| s.head <= position)
            .unwrap_or_else(|e| e.into_inner());
        state.head
    }

    /// A future that resolves to the head once it is beyond `position`.
    pub fn changed(&self, position: u64) -> Changed<'_> {
        Changed {
            watch: self,
            position,
        }
    }
}

/// The future of [`HeadWatch::changed`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a> {
    watch: &'a HeadWatch,
    position: u64,
}

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = self.watch.lock();
        if state.head > self.position {
            return Poll::Ready(state.head);
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
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
}
