//! The idle sweeper: a background thread that passivates the instances idle for longer than
//! the idle timeout, and advances the cache's coarse clock.
//!
//! It holds the cache and the snapshot writer weakly, and never the host, so that it never
//! outlives the host's instances or its store for long, and the host is always dropped on the
//! thread that drops its last handle. It stops at the first round after the host is gone, and
//! the host's drop wakes it for that round.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::host::cache::Cache;
use crate::host::error::panic_message;
use crate::host::metrics::Counters;
use crate::host::snapshots::SnapshotWriter;
use crate::store::EventStore;

/// The running sweeper's thread; dropping it wakes the thread for its last round.
#[derive(Debug)]
pub(crate) struct SweeperThread(Thread);

impl Drop for SweeperThread {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

/// The sweeper's share of the host.
struct Sweeper<A, S> {
    cache: Weak<Cache<A>>,
    counters: Arc<Counters>,
    snapshots: Weak<SnapshotWriter<S>>,
}

/// Starts a sweeper that runs a round `every` so often. `None` if the thread could not start:
/// idle instances are then dropped on access only.
pub(crate) fn start<A: Aggregate, S: EventStore + 'static>(
    every: Duration,
    cache: &Arc<Cache<A>>,
    counters: &Arc<Counters>,
    snapshots: &Arc<SnapshotWriter<S>>,
) -> Option<SweeperThread> {
    cache.tick();
    let sweeper = Sweeper {
        cache: Arc::downgrade(cache),
        counters: counters.clone(),
        snapshots: Arc::downgrade(snapshots),
    };
    match std::thread::Builder::new()
        .name(format!("es-host-sweep-{}", A::NAME))
        .spawn(move || sweeper.run(every))
    {
        Ok(handle) => Some(SweeperThread(handle.thread().clone())),
        Err(e) => {
            tracing::warn!(error = %e, "could not start the idle sweeper; idle instances are dropped on access only");
            None
        }
    }
}

impl<A: Aggregate, S: EventStore + 'static> Sweeper<A, S> {
    fn run(self, every: Duration) {
        loop {
            std::thread::park_timeout(every);
            let Some(cache) = self.cache.upgrade() else {
                return;
            };
            // Domain code runs in a round (the states' `Serialize` and `Drop`, each caught on
            // its own); should anything else panic, it costs the rest of that round, not the
            // sweeper.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.round(cache))) {
                let message = panic_message(&*panic);
                tracing::error!(message, "a round of the idle sweep panicked");
            }
        }
    }

    fn round(&self, cache: Arc<Cache<A>>) {
        cache.tick();
        let retired = cache.passivate_idle(&self.counters);
        drop(cache);
        self.counters
            .passivations_idle
            .fetch_add(retired.count() as u64, Ordering::Relaxed);
        // Without the writer, the host is gone: the instances are only dropped.
        if retired.count() == 0 {
            return;
        }
        if let Some(snapshots) = self.snapshots.upgrade() {
            snapshots.retire(retired);
        }
    }
}
