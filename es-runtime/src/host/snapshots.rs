//! The queue of snapshots waiting for the background writer.
//!
//! Commands only encode the state and queue it here; one writer thread per host saves them.
//! A newer snapshot of a stream replaces one still waiting, so a writer that falls behind
//! writes less, not later, and the queue holds at most one snapshot per stream.
//!
//! A snapshot stays in the queue until it is written, so that rehydration can find it there
//! ([`SnapshotQueue::pending`]): from the moment it is queued until the store has it, it is in
//! one place or the other.

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

    /// Queues a snapshot, replacing an older one of the same stream still waiting. Gives it
    /// back if the queue is closed (the host is being dropped).
    pub(crate) fn push(&self, stream: StreamId, snapshot: Snapshot) -> Result<(), Snapshot> {
        let mut state = self.lock();
        if state.closed {
            return Err(snapshot);
        }
        match state.pending.get(&stream) {
            Some(old) if old.version >= snapshot.version => {}
            _ => {
                state.pending.insert(stream, snapshot);
            }
        }
        drop(state);
        self.work.notify_one();
        Ok(())
    }

    /// A copy of the snapshot of `stream` waiting to be written, if any.
    pub(crate) fn pending(&self, stream: &StreamId) -> Option<Snapshot> {
        self.lock().pending.get(stream).cloned()
    }

    /// For the writer: waits for work and returns a copy of one pending snapshot, marking a
    /// write in progress; `None` once closed. The snapshot stays pending until
    /// [`written`](Self::written).
    pub(crate) fn next(&self) -> Option<(StreamId, Snapshot)> {
        let mut state = self.lock();
        while state.pending.is_empty() && !state.closed {
            state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            return None;
        }
        let (stream, snapshot) = state.pending.iter().next()?;
        let next = (stream.clone(), snapshot.clone());
        state.writing = true;
        Some(next)
    }

    /// For the writer: the snapshot of `stream` at `version` taken by [`next`](Self::next) is
    /// written (or failed); it leaves the queue unless a newer one replaced it meanwhile.
    pub(crate) fn written(&self, stream: &StreamId, version: u64) {
        let mut state = self.lock();
        if state
            .pending
            .get(stream)
            .is_some_and(|s| s.version == version)
        {
            state.pending.remove(stream);
        }
        state.writing = false;
        drop(state);
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

    /// Stops the writer and takes what is pending, after waiting for the snapshot being
    /// written.
    pub(crate) fn close(&self) -> Batch {
        let mut state = self.lock();
        state.closed = true;
        while state.writing {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let batch = state.pending.drain().collect();
        drop(state);
        self.work.notify_all();
        batch
    }
}
