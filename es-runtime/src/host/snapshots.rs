//! The snapshot writer: snapshots are encoded on the thread that takes them and saved by one
//! background thread per host, so no command waits for a snapshot write.
//!
//! Commands only encode the state and queue it; the writer's thread saves them.
//! A newer snapshot of a stream replaces one still waiting, so a writer that falls behind
//! writes less, not later, and the queue holds at most one snapshot per stream.
//!
//! The writer takes everything pending at once, and the batch it is writing stays readable
//! until it is done, so that rehydration can find a snapshot there
//! ([`SnapshotQueue::pending`]): from the moment it is queued until the store has it, a
//! snapshot is in one place or the other.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::codec;
use crate::event::StreamId;
use crate::host::cache::{Instance, Retired};
use crate::host::error::panic_message;
use crate::host::metrics::{Counters, bump};
use crate::snapshot::SnapshotPolicy;
use crate::store::{EventStore, Snapshot};

/// How long the writer's thread waits after a batch before taking the next.
const WRITER_LINGER: Duration = Duration::from_millis(1);

/// A host's snapshot writer: encodes states and has them saved, by its thread through the
/// [`SnapshotQueue`], or at once without background snapshots.
///
/// The thread starts with the first snapshot queued, and shares the store and the queue, never
/// the writer: [`close`](Self::close), called as the host is dropped, writes what is left and
/// joins the thread, on the thread that drops the host.
#[derive(Debug)]
pub(crate) struct SnapshotWriter<S> {
    store: Arc<S>,
    queue: Arc<SnapshotQueue>,
    counters: Arc<Counters>,
    policy: SnapshotPolicy,
    background: bool,
    /// The aggregate's name, for the thread's.
    aggregate: &'static str,
    started: OnceLock<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: EventStore + 'static> SnapshotWriter<S> {
    pub(crate) fn new<A: Aggregate>(
        store: Arc<S>,
        counters: Arc<Counters>,
        policy: SnapshotPolicy,
        background: bool,
    ) -> Self {
        SnapshotWriter {
            store,
            queue: Arc::default(),
            counters,
            policy,
            background,
            aggregate: A::NAME,
            started: OnceLock::new(),
            thread: Mutex::new(None),
        }
    }

    /// Snapshots the instance at its version, without waiting for the store.
    pub(crate) fn snapshot<A: Aggregate>(&self, stream: &StreamId, instance: &mut Instance<A>) {
        let Some(snapshot) = encode(&self.counters, &self.policy, stream, instance) else {
            return;
        };
        instance.snapshot_taken(snapshot.payload.len());
        self.save(stream.clone(), snapshot);
    }

    /// Snapshots the passivated instances worth it and drops them all, with no lock held: both
    /// run domain code. Returns how many instances the passivation retired.
    pub(crate) fn retire<A: Aggregate>(&self, mut retired: Retired<'_, A>) -> usize {
        for (stream, instance) in retired.take_worth_a_snapshot() {
            let snapshot = encode(&self.counters, &self.policy, &stream, &instance);
            retired.drop_instance(instance);
            if let Some(snapshot) = snapshot {
                self.save(stream, snapshot);
            }
        }
        retired.count()
    }

    /// A copy of the newest snapshot of `stream` not in the store yet, if any.
    pub(crate) fn pending(&self, stream: &StreamId) -> Option<Snapshot> {
        self.queue.pending(stream)
    }

    /// Writes what is waiting, after waiting for the batch being written.
    pub(crate) fn flush(&self) {
        for (stream, snapshot) in self.queue.drain() {
            self.write_now(&stream, snapshot);
        }
    }

    /// Writes what is waiting and stops the thread, which finishes the batch it took, if any.
    /// Snapshots saved after this are written at once.
    pub(crate) fn close(&self) {
        for (stream, snapshot) in self.queue.close() {
            self.write_now(&stream, snapshot);
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Starts the thread now if snapshots are taken in the background, rather than with the
    /// first one queued.
    pub(crate) fn start_early(&self) {
        if self.policy.every > 0 && self.background {
            self.start();
        }
    }

    /// Queues a snapshot for the thread, or writes it now without background snapshots or
    /// once closed.
    fn save(&self, stream: StreamId, snapshot: Snapshot) {
        let (stream, snapshot) = if self.background {
            match self.queue.push(stream, snapshot) {
                Ok(()) => {
                    self.start();
                    return;
                }
                // The host is being dropped: nothing will write the queue any more.
                Err(closed) => closed,
            }
        } else {
            (stream, snapshot)
        };
        self.write_now(&stream, snapshot);
    }

    /// Writes a snapshot to the store now, on this thread.
    fn write_now(&self, stream: &StreamId, snapshot: Snapshot) {
        write(
            &*self.store,
            &self.counters,
            self.policy.keep,
            stream,
            snapshot,
        );
    }

    /// Starts the thread, once.
    fn start(&self) {
        self.started.get_or_init(|| {
            let (store, queue, counters) = (
                self.store.clone(),
                self.queue.clone(),
                self.counters.clone(),
            );
            let keep = self.policy.keep;
            let started = std::thread::Builder::new()
                .name(format!("es-host-snapshots-{}", self.aggregate))
                .spawn(move || write_queued(&*store, &queue, &counters, keep));
            match started {
                Ok(handle) => {
                    *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
                }
                Err(error) => tracing::warn!(
                    %error,
                    "could not start the snapshot writer; snapshots are written when flushed"
                ),
            }
        });
    }
}

/// The writer's thread: writes the queue's batches until it is closed.
fn write_queued<S: EventStore>(store: &S, queue: &SnapshotQueue, counters: &Counters, keep: usize) {
    while let Some(batch) = queue.begin() {
        for (stream, snapshot) in batch.iter() {
            write(store, counters, keep, stream, snapshot.clone());
        }
        drop(batch);
        queue.end();
        // Let the next batch gather: a burst of snapshots (a sweep, evictions under churn)
        // then wakes the writer once, not once per snapshot, and the commands queuing them
        // skip the wake-up call.
        std::thread::sleep(WRITER_LINGER);
    }
}

/// Encodes the instance's state as a snapshot under `policy`.
fn encode<A: Aggregate>(
    counters: &Counters,
    policy: &SnapshotPolicy,
    stream: &StreamId,
    instance: &Instance<A>,
) -> Option<Snapshot> {
    // The state's `Serialize` is domain code, run here for commands, passivations (of other
    // aggregates' commands too) and the idle sweeper: a panic in it costs the snapshot only.
    match catch_unwind(AssertUnwindSafe(|| codec::encode(&instance.state))) {
        Ok(Ok(payload)) => Some(Snapshot {
            version: instance.version,
            state_version: policy.state_version,
            payload,
        }),
        Ok(Err(error)) => {
            bump(&counters.snapshot_failures);
            tracing::warn!(%stream, %error, "could not encode the state for a snapshot");
            None
        }
        Err(panic) => {
            bump(&counters.snapshot_failures);
            let message = panic_message(&*panic);
            tracing::warn!(%stream, message, "encoding the state for a snapshot panicked");
            None
        }
    }
}

fn write<S: EventStore>(
    store: &S,
    counters: &Counters,
    keep: usize,
    stream: &StreamId,
    snapshot: Snapshot,
) {
    let version = snapshot.version;
    match store.save_snapshot(stream, snapshot, keep) {
        Ok(()) => bump(&counters.snapshots_written),
        Err(error) => {
            bump(&counters.snapshot_failures);
            tracing::warn!(%stream, version, %error, "could not save a snapshot");
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct SnapshotQueue {
    state: Mutex<QueueState>,
    work: Condvar,
    idle: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    pending: HashMap<StreamId, Snapshot>,
    /// The batch being written, if any.
    writing: Option<Arc<Queued>>,
    /// The writer waits for work: a push must wake it.
    waiting: bool,
    closed: bool,
}

/// The snapshots waiting, one per stream.
type Queued = HashMap<StreamId, Snapshot>;

/// Snapshots taken from the queue to write.
type Batch = Vec<(StreamId, Snapshot)>;

impl SnapshotQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a snapshot, replacing an older one of the same stream still waiting. Gives it
    /// back if the queue is closed (the host is being dropped).
    pub(crate) fn push(
        &self,
        stream: StreamId,
        snapshot: Snapshot,
    ) -> Result<(), (StreamId, Snapshot)> {
        let mut state = self.lock();
        if state.closed {
            return Err((stream, snapshot));
        }
        match state.pending.get(&stream) {
            Some(old) if old.version >= snapshot.version => {}
            _ => {
                state.pending.insert(stream, snapshot);
            }
        }
        // A busy writer looks again when it is done: wake it only when it sleeps.
        let wake = std::mem::take(&mut state.waiting);
        drop(state);
        if wake {
            self.work.notify_one();
        }
        Ok(())
    }

    /// A copy of the newest snapshot of `stream` waiting or being written, if any.
    pub(crate) fn pending(&self, stream: &StreamId) -> Option<Snapshot> {
        let state = self.lock();
        let queued = state.pending.get(stream);
        let writing = state.writing.as_ref().and_then(|w| w.get(stream));
        match (queued, writing) {
            (Some(q), Some(w)) if w.version > q.version => Some(w.clone()),
            (Some(q), _) => Some(q.clone()),
            (None, w) => w.cloned(),
        }
    }

    /// For the writer: waits for work and takes all of it, marking a write in progress; `None`
    /// once closed. The batch stays readable until [`end`](Self::end).
    pub(crate) fn begin(&self) -> Option<Arc<Queued>> {
        let mut state = self.lock();
        while state.pending.is_empty() && !state.closed {
            state.waiting = true;
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.waiting = false;
        if state.closed {
            return None;
        }
        let batch = Arc::new(std::mem::take(&mut state.pending));
        state.writing = Some(batch.clone());
        Some(batch)
    }

    /// For the writer: the batch taken by [`begin`](Self::begin) is written (or failed).
    pub(crate) fn end(&self) {
        self.lock().writing = None;
        self.idle.notify_all();
    }

    /// Takes what is pending, after waiting for a batch being written.
    pub(crate) fn drain(&self) -> Batch {
        let mut state = self.lock();
        while state.writing.is_some() {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.pending.drain().collect()
    }

    /// Stops the writer and takes what is pending, after waiting for a batch being written.
    pub(crate) fn close(&self) -> Batch {
        let mut state = self.lock();
        state.closed = true;
        while state.writing.is_some() {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let batch = state.pending.drain().collect();
        drop(state);
        self.work.notify_all();
        batch
    }
}
