//! The bridge from async code to the blocking host: a pool of threads that run commands, and a
//! one-shot future that hands each result back.
//!
//! It depends on no async runtime. An async caller's task is suspended on the future while a
//! pool thread does the blocking work (the store's append and its fsync), so executor threads
//! never block. Threads are started on demand up to a bound and stop after a while unused; with
//! as many threads as concurrent commands, a group-committing store sees all their appends at
//! once.
//!
//! Jobs carry a key (the aggregate's stream), and a pool thread runs at most one job of a key
//! at a time, in the order they were spawned: the others wait in their key's line, not on the
//! aggregate's lock. So commands sent to one aggregate without waiting for each other run in
//! the order they were sent, and a burst of them never takes every thread of the pool away
//! from other aggregates.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A job and the key whose line it heads.
struct Task {
    key: Arc<str>,
    job: Job,
}

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
    /// Jobs ready to run: at most one per key.
    queue: VecDeque<Task>,
    /// The keys with a job queued or running, each with the jobs spawned after it, in order.
    lines: HashMap<Arc<str>, VecDeque<Job>>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState")
            .field("queued", &self.queue.len())
            .field("keys", &self.lines.len())
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
                    lines: HashMap::new(),
                    threads: 0,
                    idle: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Runs `f` on a pool thread, after the jobs of `key` spawned before it; the future
    /// resolves to its result.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        key: Arc<str>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Receiver<T> {
        let (tx, rx) = oneshot();
        let job: Job = Box::new(move || tx.send(f()));
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = state.lines.get_mut(&key) {
            line.push_back(job);
            return rx;
        }
        state.lines.insert(key.clone(), VecDeque::new());
        self.shared.ready(state, Task { key, job });
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
    /// Queues a task whose key has no other job queued or running, and wakes or starts a
    /// thread for it.
    fn ready(self: &Arc<Self>, mut state: MutexGuard<'_, PoolState>, task: Task) {
        state.queue.push_back(task);
        if state.idle >= state.queue.len() || state.threads >= self.max_threads {
            self.work.notify_one();
            return;
        }
        state.threads += 1;
        drop(state);
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("es-host-blocking".to_owned())
            .spawn(move || shared.run());
        if spawned.is_err() {
            // No thread now: the queued job waits for a running one.
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.threads -= 1;
            if state.threads == 0 {
                tracing::error!("could not start a thread for a blocking host command");
            }
        }
    }

    fn run(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(Task { key, job }) = state.queue.pop_front() {
                drop(state);
                // A panicking job drops its sender, which resolves its future to `None`; the
                // thread carries on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                // The key's next job, if any, goes to the back of the queue: other keys
                // queued before it run first. This thread takes the queue's next job at once,
                // so no other is woken for it.
                match state.lines.get_mut(&key).and_then(VecDeque::pop_front) {
                    Some(job) => state.queue.push_back(Task { key, job }),
                    None => {
                        state.lines.remove(&key);
                    }
                }
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
    inner: Arc<Mutex<Handoff<T>>>,
}

/// What a one-shot channel hands from its sender to its receiver.
struct Handoff<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// A future resolving to the value a pool thread sends.
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    inner: Arc<Mutex<Handoff<T>>>,
}

impl<T> std::fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("ready", &self.value.is_some())
            .finish()
    }
}

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Handoff {
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
        let rxs: Vec<_> = (0..100)
            .map(|i| pool.spawn(format!("k{}", i % 7).into(), move || i * 2))
            .collect();
        let sum: u64 = rxs.into_iter().map(|rx| block_on(rx).unwrap()).sum();
        assert_eq!(sum, (0..100u64).map(|i| i * 2).sum::<u64>());
        // Every key's line is gone once its jobs are done (a thread removes it just after
        // sending the last result).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !pool.shared.state.lock().unwrap().lines.is_empty() {
            assert!(std::time::Instant::now() < deadline, "lines left behind");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_panicking_job_resolves_to_none() {
        let pool = Pool::new(1);
        let key: Arc<str> = "k".into();
        let rx = pool.spawn(key.clone(), || -> u32 { panic!("boom") });
        let next = pool.spawn(key.clone(), || 7);
        assert_eq!(block_on(rx), None);
        // The pool, its thread and the key's line still work.
        assert_eq!(block_on(next), Some(7));
        assert_eq!(block_on(pool.spawn(key, || 8)), Some(8));
    }
}
