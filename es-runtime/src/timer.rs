//! [`Sleep`]: a runtime-agnostic timer future. Every sleeping future of the process is woken
//! by ONE timer thread, started on first use; a sleep costs an entry in its queue, not a
//! thread.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A future that resolves once `duration` has passed since it was made.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct Sleep {
    deadline: Instant,
    /// The key of this future's entry in the timer's queue, once polled.
    entry: Option<(Instant, u64)>,
}

impl Sleep {
    pub(crate) fn new(duration: Duration) -> Self {
        Sleep {
            deadline: Instant::now() + duration,
            entry: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.entry.take() {
                timer().cancel(key);
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let key = timer().schedule(deadline, self.entry, cx.waker());
        self.entry = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.entry.take() {
            timer().cancel(key);
        }
    }
}

/// The process's timer: the wakers of pending sleeps by deadline, and the thread that wakes
/// them.
struct Timer {
    queue: Mutex<Queue>,
    /// Signalled when an earlier deadline than the thread waits for is queued.
    earlier: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Keyed by deadline, then by a ticket that tells equal deadlines apart.
    wakers: BTreeMap<(Instant, u64), Waker>,
    next_ticket: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(Queue::default()),
            earlier: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("es-timer".into())
            .spawn(move || timer.run())
            .expect("the timer thread starts");
        timer
    })
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues (or re-queues, under `entry`) `waker` to be woken at `deadline`; returns the key.
    fn schedule(
        &self,
        deadline: Instant,
        entry: Option<(Instant, u64)>,
        waker: &Waker,
    ) -> (Instant, u64) {
        let mut queue = self.lock();
        if let Some(key) = entry
            && let Some(w) = queue.wakers.get_mut(&key)
        {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
            return key;
        }
        let key = (deadline, queue.next_ticket);
        queue.next_ticket += 1;
        queue.wakers.insert(key, waker.clone());
        if queue
            .wakers
            .first_key_value()
            .is_some_and(|(first, _)| *first == key)
        {
            self.earlier.notify_one();
        }
        key
    }

    fn cancel(&self, key: (Instant, u64)) {
        self.lock().wakers.remove(&key);
    }

    /// Wakes each queued waker at its deadline, forever.
    fn run(&self) {
        let mut queue = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = queue.wakers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(queue);
                for w in due {
                    w.wake();
                }
                queue = self.lock();
                continue;
            }
            queue = match queue.wakers.first_key_value() {
                Some(((deadline, _), _)) => {
                    let wait = deadline.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.earlier.wait(queue).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn sleeps_are_woken_at_their_deadlines_and_dropped_ones_never() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut short: Vec<_> = (0..100)
            .map(|_| Box::pin(Sleep::new(Duration::from_millis(20))))
            .collect();
        for s in &mut short {
            assert!(s.as_mut().poll(&mut cx).is_pending());
        }
        let mut long = Box::pin(Sleep::new(Duration::from_secs(3600)));
        assert!(long.as_mut().poll(&mut cx).is_pending());
        let long_key = long.entry.expect("queued");
        drop(long);
        assert!(!timer().lock().wakers.contains_key(&long_key));
        let started = Instant::now();
        while count.0.load(Ordering::SeqCst) < 100 {
            assert!(started.elapsed() < Duration::from_secs(10), "not woken");
            std::thread::sleep(Duration::from_millis(5));
        }
        for s in &mut short {
            assert!(s.as_mut().poll(&mut cx).is_ready());
            assert_eq!(s.entry, None);
        }
    }
}
