//! The part of a host its handles share: the store, the cache of instances, the snapshot
//! writer and the counters; and the routing of a key to its instance's locked slot.
//!
//! The background threads share some of these parts, never `Shared` itself, so the host is
//! dropped (and its pending snapshots written) on the thread that drops the last `Host`.

use std::cell::Cell;
use std::fmt::{self, Display, Write as _};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use crate::aggregate::Aggregate;
use crate::event::StreamId;
use crate::host::blocking::Pool;
use crate::host::cache::{Cache, EntryState};
use crate::host::metrics::Counters;
use crate::host::options::HostOptions;
use crate::host::snapshots::SnapshotWriter;
use crate::host::sweeper::{self, SweeperThread};
use crate::snapshot::SnapshotPolicy;
use crate::store::EventStore;

pub(super) struct Shared<A: Aggregate, S: EventStore + 'static> {
    pub(super) store: Arc<S>,
    pub(super) cache: Arc<Cache<A>>,
    pub(super) counters: Arc<Counters>,
    pub(super) snapshots: Arc<SnapshotWriter<S>>,
    pub(super) options: HostOptions,
    pub(super) policy: SnapshotPolicy,
    /// What every command of this host consults; the same for every retry.
    pub(super) services: A::Services,
    pub(super) pool: OnceLock<Pool>,
    /// Held for its drop, which wakes the sweeper to stop.
    pub(super) _sweeper: Option<SweeperThread>,
}

impl<A: Aggregate, S: EventStore + 'static> Shared<A, S> {
    pub(super) fn new(store: S, options: HostOptions, services: A::Services) -> Self {
        let policy = options.policy::<A>();
        let store = Arc::new(store);
        let counters = Arc::<Counters>::default();
        let cache = Arc::new(Cache::new(
            options.max_live,
            options.shards,
            options.idle_timeout,
            passivation_tail(policy.every),
        ));
        let snapshots = Arc::new(SnapshotWriter::new::<A>(
            store.clone(),
            counters.clone(),
            policy,
            options.background_snapshots,
        ));
        let sweeper = options.sweep_every().and_then(|every| {
            let sweeper = sweeper::start(every, &cache, &counters, &snapshots)?;
            // A snapshot queued by the sweeper as the host is dropped would start the writer
            // after it was stopped: start it with the sweeper.
            snapshots.start_early();
            Some(sweeper)
        });
        Shared {
            store,
            cache,
            counters,
            snapshots,
            options,
            policy,
            services,
            pool: OnceLock::new(),
            _sweeper: sweeper,
        }
    }

    pub(super) fn passivate_idle(&self) -> usize {
        let n = self
            .snapshots
            .retire(self.cache.passivate_idle(&self.counters));
        self.counters
            .passivations_idle
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Runs `f` on the live slot of `key` (inserted if absent), locked. `command` counts the
    /// use as a command in the cache's statistics.
    pub(super) fn locked<R, E: From<crate::InvalidStreamId>>(
        &self,
        key: &str,
        command: bool,
        f: impl FnOnce(&StreamId, &mut EntryState<A>) -> Result<R, E>,
    ) -> Result<R, E> {
        loop {
            let (slot, retired) =
                self.cache
                    .get_or_insert(key, &mut || stream_of::<A>(key), &self.counters, command);
            self.snapshots.retire(retired);
            let slot = slot?;
            let mut guard = slot.lock();
            if guard.retired {
                // Passivated between the lookup and the lock: look it up again.
                continue;
            }
            return f(&slot.stream, &mut guard);
        }
    }
}

impl<A: Aggregate, S: EventStore + 'static> Drop for Shared<A, S> {
    fn drop(&mut self) {
        // Here, not in the writer's own drop: the sweeper may hold the writer for a moment.
        self.snapshots.close();
    }
}

// `Shared` is only reached through `Host`, whose `Debug` shows what matters.
impl<A: Aggregate, S: EventStore + 'static> fmt::Debug for Shared<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// How far past its last snapshot an instance must be for its passivation to take one: a
/// tenth of the snapshot interval (at least one event; 0 when the host takes no snapshots).
/// Shorter tails replay in well under a microsecond per event; snapshotting every evicted
/// one-event instance would cost a store write per eviction. (An instance whose tail holds
/// more bytes than its snapshot is snapshotted sooner: see `Instance::worth_a_snapshot`.)
fn passivation_tail(every: u64) -> u64 {
    if every == 0 { 0 } else { (every / 10).max(1) }
}

/// Formats `NAME-id` into a reused buffer: routing a command to a live instance allocates
/// nothing.
pub(super) fn with_key<A: Aggregate, R>(id: impl Display, f: impl FnOnce(&str) -> R) -> R {
    thread_local!(static KEY: Cell<String> = const { Cell::new(String::new()) });
    let mut key = KEY.take();
    key.clear();
    key.push_str(A::NAME);
    key.push('-');
    // Writing to a String cannot fail.
    let _ = write!(key, "{id}");
    let r = f(&key);
    if key.capacity() <= 1024 {
        KEY.set(key);
    }
    r
}

pub(super) fn stream_of<A: Aggregate>(key: &str) -> Result<StreamId, crate::InvalidStreamId> {
    StreamId::new(A::NAME, key.get(A::NAME.len() + 1..).unwrap_or(""))
}
