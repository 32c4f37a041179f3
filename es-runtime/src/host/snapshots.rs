//! The queue of snapshots waiting for the background writer.
//!
//! Commands only encode the state and queue it here; one writer thread per host saves them.
//! A newer snapshot of a stream replaces one still waiting, so a writer that falls behind
//! writes less, not later, and the queue holds at most one snapshot per stream.
//!
//! The writer takes everything pending at once, and the batch it is writing stays readable
//! until it is done, so that rehydration can find a snapshot there
//! ([`SnapshotQueue::pending`]): from the moment it is queued until the store has it, a
//! snapshot is in one place or the other.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::event::StreamId;
use crate::store::Snapshot;

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
    writing: Option<Arc<Pending>>,
    /// The writer waits for work: a push must wake it.
    waiting: bool,
    closed: bool,
}

pub(crate) type Pending = HashMap<StreamId, Snapshot>;

pub(crate) type Batch = Vec<(StreamId, Snapshot)>;

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
    pub(crate) fn begin(&self) -> Option<Arc<Pending>> {
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
