//! Counters of what a host did, read with [`Host::metrics`](crate::Host::metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// A reading of a host's counters. Every count is since the host was built, except
/// [`live`](Self::live).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Instances held in memory now (loaded, or about to be).
    pub live: u64,
    /// Commands routed to an instance (each counted once, whatever its outcome).
    pub commands: u64,
    /// Instances loaded from the store.
    pub rehydrations: u64,
    /// Rehydrations that started from a snapshot.
    pub snapshot_hits: u64,
    /// Events replayed by rehydrations: those after the snapshot each started from (all of
    /// the stream's without one). Catching up after a version conflict is not counted.
    pub replayed_events: u64,
    /// Snapshots passed over by rehydrations because their state version was another one
    /// (each one a rehydration looked at; it went on to an older one, or to the events).
    pub snapshots_outdated: u64,
    /// Snapshots passed over by rehydrations because they did not decode or could not be read
    /// (with a warning; the rehydration went on to an older one, or to the events).
    pub snapshots_corrupt: u64,
    /// Snapshots written.
    pub snapshots_written: u64,
    /// Snapshots that could not be written (logged; the next one is tried as usual).
    pub snapshot_failures: u64,
    /// Instances dropped after the idle timeout.
    pub passivations_idle: u64,
    /// Instances dropped to stay within the live-instance bound (least recently used first).
    pub passivations_lru: u64,
    /// Instances dropped on request ([`Host::passivate`](crate::Host::passivate),
    /// [`Host::passivate_all`](crate::Host::passivate_all)).
    pub passivations_manual: u64,
    /// Appends refused with a wrong expected version.
    pub conflicts: u64,
    /// Commands run again on a reloaded instance: after a conflict, or after a refusal (or an
    /// empty result) decided on an instance the stream had moved past.
    pub retries: u64,
    /// Panics caught in domain code.
    pub panics: u64,
}

impl Metrics {
    /// All passivations: idle, LRU and on request.
    pub fn passivations(&self) -> u64 {
        self.passivations_idle + self.passivations_lru + self.passivations_manual
    }
}

/// The shared counters. Only rare events are counted here; per-command counts live in the
/// shards, under the lock the command takes anyway, so no counter is contended.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rehydrations: AtomicU64,
    pub(crate) snapshot_hits: AtomicU64,
    pub(crate) replayed_events: AtomicU64,
    pub(crate) snapshots_outdated: AtomicU64,
    pub(crate) snapshots_corrupt: AtomicU64,
    pub(crate) snapshots_written: AtomicU64,
    pub(crate) snapshot_failures: AtomicU64,
    pub(crate) passivations_idle: AtomicU64,
    pub(crate) passivations_lru: AtomicU64,
    pub(crate) passivations_manual: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) panics: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn read(&self, live: u64, commands: u64) -> Metrics {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            live,
            commands,
            rehydrations: r(&self.rehydrations),
            snapshot_hits: r(&self.snapshot_hits),
            replayed_events: r(&self.replayed_events),
            snapshots_outdated: r(&self.snapshots_outdated),
            snapshots_corrupt: r(&self.snapshots_corrupt),
            snapshots_written: r(&self.snapshots_written),
            snapshot_failures: r(&self.snapshot_failures),
            passivations_idle: r(&self.passivations_idle),
            passivations_lru: r(&self.passivations_lru),
            passivations_manual: r(&self.passivations_manual),
            conflicts: r(&self.conflicts),
            retries: r(&self.retries),
            panics: r(&self.panics),
        }
    }
}
