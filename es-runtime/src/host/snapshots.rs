//! The queue of snapshots waiting for the background writer.
//!
//! Commands only encode the state and queue it here; one writer thread per host saves them.
//! A newer snapshot of a stream replaces one still waiting, so a writer that falls behind
//! writes less, not later, and the queue holds at most one snapshot per stream.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

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
    writing: bool,
    closed: bool,
}

pub(crate) type Batch = Vec<(StreamId, Snapshot)>;

impl SnapshotQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a snapshot, replacing an older one of the same stream still waiting.
    pub(crate) fn push(&self, stream: StreamId, snapshot: Snapshot) {
        let mut state = self.lock();
        match state.pending.get(&stream) {
            Some(old) if old.version >= snapshot.version => {}
            _ => {
                state.pending.insert(stream, snapshot);
            }
        }
        drop(state);
        self.work.notify_one();
    }

    /// For the writer: waits for work and takes it; `None` once closed.
    pub(crate) fn next_batch(&self) -> Option<()> {
        let mut state = self.lock();
        while state.pending.is_empty() && !state.closed {
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed { None } else { Some(()) }
    }

    /// For the writer: takes what is pending and marks a write in progress.
    pub(crate) fn begin(&self) -> Batch {
        let mut state = self.lock();
        state.writing = true;
        state.pending.drain().collect()
    }

    /// For the writer: the batch taken by [`begin`](Self::begin) is written.
    pub(crate) fn end(&self) {
        self.lock().writing = false;
        self.idle.notify_all();
    }

    /// Takes what is pending, after waiting for a batch being written.
    pub(crate) fn drain(&self) -> Batch {
        let mut state = self.lock();
        while state.writing {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.pending.drain().collect()
    }

    /// Stops the writer and takes what is pending.
    pub(crate) fn close(&self) -> Batch {
        let mut state = self.lock();
        state.closed = true;
        let batch = state.pending.drain().collect();
        drop(state);
        self.work.notify_all();
        batch
    }
}
