//! Rehydration: an instance starts from the newest usable snapshot, then applies the tail of
//! its stream.
//!
//! The newest usable snapshot is the newest of the host's state version that decodes. One
//! still waiting for the snapshot writer counts, and goes first when it is newer than the
//! store's; an older one stands in for newer ones of another state version, damaged, or that
//! do not decode (or panic decoding), which are skipped with a warning. Without one, the whole
//! stream is replayed.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use crate::aggregate::{Aggregate, Upcast};
use crate::codec;
use crate::event::StreamId;
use crate::host::cache::{EntryState, Instance};
use crate::host::error::{LoadError, panic_message};
use crate::host::metrics::bump;
use crate::host::shared::Shared;
use crate::store::{EventStore, Snapshot};

impl<A: Aggregate, S: EventStore + 'static> Shared<A, S> {
    /// The slot's instance, loaded if it has none.
    pub(super) fn loaded<'g>(
        &self,
        stream: &StreamId,
        slot: &'g mut EntryState<A>,
    ) -> Result<&'g mut Instance<A>, LoadError> {
        match slot.instance {
            Some(ref mut instance) => Ok(instance),
            None => Ok(slot.instance.insert(self.load(stream)?)),
        }
    }

    /// Rehydrates an instance: the newest usable snapshot, then the tail of the stream.
    fn load(&self, stream: &StreamId) -> Result<Instance<A>, LoadError> {
        bump(&self.counters.rehydrations);
        // The empty state comes first, snapshot or not: a `Default` that panics fails every
        // load alike.
        let empty = self.empty(stream)?;
        let mut instance = match self.start(stream) {
            Some((state, snapshot)) => {
                bump(&self.counters.snapshot_hits);
                Instance::new(state, snapshot.version, snapshot.payload.len())
            }
            None => Instance::new(empty, 0, 0),
        };
        let replayed = self.catch_up(stream, &mut instance)?;
        self.counters
            .replayed_events
            .fetch_add(replayed, Ordering::Relaxed);
        tracing::debug!(%stream, version = instance.version, replayed, "rehydrated");
        if self.policy.is_due_after_replay(replayed) {
            self.snapshots.snapshot(stream, &mut instance);
        }
        Ok(instance)
    }

    /// The state of an aggregate without events.
    fn empty(&self, stream: &StreamId) -> Result<A, LoadError> {
        catch_unwind(A::default).map_err(|panic| {
            bump(&self.counters.panics);
            LoadError::Panicked {
                stream: stream.clone(),
                version: 0,
                message: panic_message(&*panic),
            }
        })
    }

    /// The newest usable snapshot, decoded, if any. Older ones stand in for newer ones of
    /// another state version, or that do not decode or cannot be read. One still waiting for
    /// the writer (this host's state version) counts, unless a late one (from a passivation
    /// racing a reload) was queued after a newer one was written.
    fn start(&self, stream: &StreamId) -> Option<(A, Snapshot)> {
        let mut pending = self.snapshots.pending(stream);
        let mut candidate = self.store.load_snapshot(stream);
        let mut below = u64::MAX;
        let mut fell_back = false;
        loop {
            // The pending snapshot goes first when it is the newest of the two.
            if let Some(p) = pending.take_if(|p| {
                p.version < below
                    && !matches!(&candidate, Ok(Some(stored)) if stored.version > p.version)
            }) {
                candidate = Ok(Some(p));
            }
            let snapshot = match candidate {
                Ok(Some(snapshot)) if snapshot.version < below => snapshot,
                Ok(Some(snapshot)) => {
                    // A store must answer below the version asked for.
                    tracing::warn!(%stream, version = snapshot.version, below, "the store returned a snapshot out of order; replaying from an older one");
                    return None;
                }
                Ok(None) => return None,
                Err(error) if !fell_back => {
                    bump(&self.counters.snapshots_corrupt);
                    tracing::warn!(%stream, %error, "could not read the latest snapshot");
                    // The store skips the damaged ones when asked for older snapshots.
                    fell_back = true;
                    candidate = self.store.load_snapshot_before(stream, below);
                    continue;
                }
                Err(error) => {
                    // The store failed again (it was counted above, or it is not a damaged
                    // snapshot but the store): replay from what was found so far.
                    tracing::warn!(%stream, %error, "could not read the older snapshots");
                    return None;
                }
            };
            if let Some(state) = self.decode(stream, &snapshot) {
                return Some((state, snapshot));
            }
            below = snapshot.version;
            fell_back = true;
            candidate = self.store.load_snapshot_before(stream, below);
        }
    }

    /// The snapshot's state, if it is of the policy's state version and decodes.
    fn decode(&self, stream: &StreamId, snapshot: &Snapshot) -> Option<A> {
        if !self.policy.accepts(snapshot) {
            bump(&self.counters.snapshots_outdated);
            tracing::debug!(
                %stream,
                version = snapshot.version,
                found = snapshot.state_version,
                expected = self.policy.state_version,
                "ignoring a snapshot of another state version"
            );
            return None;
        }
        // The state's `Deserialize` may panic: that snapshot is then as good as undecodable.
        let decoded =
            catch_unwind(|| codec::decode::<A>(&snapshot.payload).map_err(|e| e.to_string()))
                .unwrap_or_else(|panic| {
                    Err(format!("decoding panicked: {}", panic_message(&*panic)))
                });
        match decoded {
            Ok(state) => Some(state),
            Err(reason) => {
                bump(&self.counters.snapshots_corrupt);
                tracing::warn!(
                    %stream,
                    version = snapshot.version,
                    reason,
                    "ignoring a snapshot that does not decode"
                );
                None
            }
        }
    }

    /// Applies the events after the instance's version. Returns how many there were. On error
    /// the instance is part-way and must be dropped.
    pub(super) fn catch_up(
        &self,
        stream: &StreamId,
        instance: &mut Instance<A>,
    ) -> Result<u64, LoadError> {
        let mut failed = None;
        let mut replayed = 0;
        self.store
            .read_stream_with(stream, instance.version + 1, &mut |e| {
                // Decoding runs the event's `Deserialize`, domain code that may panic too.
                let applied = catch_unwind(AssertUnwindSafe(|| {
                    e.decode_all::<A::Event>().map(|events| match events {
                        Upcast::One(event) => instance.state.apply(event),
                        Upcast::Many(events) => events
                            .into_iter()
                            .for_each(|event| instance.state.apply(event)),
                    })
                }));
                match applied {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        failed = Some(LoadError::Decode(err));
                        return ControlFlow::Break(());
                    }
                    Err(panic) => {
                        failed = Some(LoadError::Panicked {
                            stream: stream.clone(),
                            version: e.version,
                            message: panic_message(&*panic),
                        });
                        return ControlFlow::Break(());
                    }
                }
                instance.version = e.version;
                instance.grew(e.payload.len());
                replayed += 1;
                ControlFlow::Continue(())
            })
            .map_err(|source| LoadError::Read {
                stream: stream.clone(),
                source,
            })?;
        match failed {
            Some(e) => {
                if matches!(e, LoadError::Panicked { .. }) {
                    bump(&self.counters.panics);
                }
                tracing::error!(%stream, error = %e, "could not load the instance");
                Err(e)
            }
            None => Ok(replayed),
        }
    }
}
