//! The bridge from async code to the blocking host: a pool of threads that run commands, and a
//! one-shot future that hands each result back.
//!
//! It depends on no async runtime. An async caller's task is suspended on the future while a
//! pool thread does the blocking work (the store's append and its fsync), so executor threads
//! never block. Threads are started on demand up to a bound and stop after a while unused; with
//! as many threads as concurrent commands, a group-committing store sees all their appends at
//! once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a pool thread waits for work before it stops.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<PoolShared>,
}

#[derive(Debug)]
struct PoolShared {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("queued", &self.queue.len())
            .field("threads", &self.threads)
            .field("idle", &self.idle)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(max_threads: usize) -> Self {
        Pool {
            shared: Arc::new(PoolShared {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Runs `f` on a pool thread; the future resolves to its result.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (tx, rx) = oneshot();
        let job: Job = Box::new(move || tx.send(f()));
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.push_back(job);
        if state.idle >= state.queue.len() {
            self.shared.work.notify_one();
        } else if state.threads < self.shared.max_threads {
            state.threads += 1;
            drop(state);
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("es-host-blocking".to_owned())
                .spawn(move || shared.run());
            if spawned.is_err() {
                // No thread now: the queued job waits for a running one.
                let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
                state.threads -= 1;
                if state.threads == 0 {
                    tracing::error!("could not start a thread for a blocking host command");
                }
            }
        } else {
            self.shared.work.notify_one();
        }
        rx
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.shutdown = true;
        drop(state);
        self.shared.work.notify_all();
    }
}

impl PoolShared {
    fn run(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                // A panicking job drops its sender, which resolves its future to `None`; the
                // thread carries on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let (s, timeout) = self
                .work
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(|e| e.into_inner());
            state = s;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }
}

/// The sending half of a one-shot channel.
struct Sender<T> {
    inner: Arc<Mutex<Slot<T>>>,
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// A future resolving to the value a pool thread sends.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    inner: Arc<Mutex<Slot<T>>>,
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("ready", &self.value.is_some())
            .finish()
    }
}

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    fn send(self, value: T) {
        let waker = {
            let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            slot.sender_gone = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    /// `None` when the job was dropped without a result (the pool shut down, or the job
    /// panicked).
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.sender_gone {
            return Poll::Ready(None);
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn runs_jobs_and_returns_results() {
        let pool = Pool::new(4);
        let rxs: Vec<_> = (0..100).map(|i| pool.spawn(move || i * 2)).collect();
        let sum: u64 = rxs.into_iter().map(|rx| block_on(rx).unwrap()).sum();
        assert_eq!(sum, (0..100u64).map(|i| i * 2).sum::<u64>());
    }

    #[test]
    fn a_panicking_job_resolves_to_none() {
        let pool = Pool::new(1);
        let rx = pool.spawn(|| -> u32 { panic!("boom") });
        assert_eq!(block_on(rx), None);
        // The pool and its thread still work.
        assert_eq!(block_on(pool.spawn(|| 7)), Some(7));
    }
}
