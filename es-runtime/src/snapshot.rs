//! The snapshot policy: when the host saves a snapshot, how many it keeps, and which it trusts.
//!
//! A snapshot is the encoded state of an aggregate at some version of its stream. Rehydrating
//! from the latest snapshot and then the events after it gives the same state as replaying the
//! whole stream, in a time that does not grow with the stream's length.
//!
//! The [`Host`](crate::Host) takes a snapshot when a command's batch of events reaches or
//! crosses a multiple of [`every`](SnapshotPolicy::every): with `every = 100`, a batch taking
//! a stream from version 98 to 103 is snapshotted at 103. It also takes one after rehydrating
//! an instance whose tail (the events after the snapshot it started from) was at least `every`
//! events long, so a long stream without a snapshot is replayed in full at most once, and
//! when it passivates an instance at least `every / 10` events (at least one) past its last
//! snapshot, so a reloaded instance replays at most a few events. An instance passivated for
//! idleness or on request that already has a snapshot is also snapshotted once the events
//! since hold more bytes than that snapshot (a small state behind large events).
//!
//! By default snapshots are written by a background thread, so the command that triggers one
//! does not wait for the store. Snapshots of one stream that are still waiting to be written
//! are coalesced: only the newest is written (with `every = 5`, a stream that runs from
//! version 4 to 11 faster than the writer may keep only the snapshot at 10). Turn this off
//! with [`HostBuilder::background_snapshots(false)`](crate::HostBuilder::background_snapshots)
//! to write each snapshot inline, or wait with [`Host::flush_snapshots`](crate::Host::flush_snapshots).
//! Rehydration uses a snapshot still waiting to be written when it is newer than the store's.
//!
//! Snapshots carry the [`state_version`](SnapshotPolicy::state_version) they were written
//! under; one written under another version is ignored, and the state is rebuilt from events.
//! Bump [`Aggregate::STATE_VERSION`] whenever the state type changes shape.

use crate::aggregate::Aggregate;
use crate::store::Snapshot;

/// When to take snapshots, how many to keep, and which state version to accept.
///
/// The effective policy of an aggregate on a host is, for each field: the host's explicit
/// setting if any ([`HostBuilder`](crate::HostBuilder)), else the aggregate's constant
/// ([`Aggregate::SNAPSHOT_EVERY`], [`Aggregate::SNAPSHOT_KEEP`],
/// [`Aggregate::STATE_VERSION`]) when non-zero, else the defaults below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take a snapshot every this many events; `0` never takes one.
    pub every: u64,
    /// How many snapshots to keep per stream (at least one is kept).
    pub keep: usize,
    /// The state version written into snapshots, and the only one accepted when loading.
    pub state_version: u32,
}

impl SnapshotPolicy {
    /// The default interval, in events.
    pub const DEFAULT_EVERY: u64 = 100;
    /// The default number of snapshots kept per stream.
    pub const DEFAULT_KEEP: usize = 2;

    /// The policy `A` asks for, with the defaults where it leaves the choice to the host.
    pub fn of<A: Aggregate>() -> Self {
        SnapshotPolicy {
            every: if A::SNAPSHOT_EVERY == 0 {
                Self::DEFAULT_EVERY
            } else {
                A::SNAPSHOT_EVERY
            },
            keep: if A::SNAPSHOT_KEEP == 0 {
                Self::DEFAULT_KEEP
            } else {
                A::SNAPSHOT_KEEP
            },
            state_version: A::STATE_VERSION,
        }
    }

    /// Whether a batch taking a stream from version `before` to `after` reaches or crosses a
    /// multiple of [`every`](Self::every).
    pub fn is_due(&self, before: u64, after: u64) -> bool {
        // The last multiple of `every` up to `after` comes after `before`: one division.
        self.every != 0 && after > before && after - after % self.every > before
    }

    /// Whether a rehydration that replayed `tail` events after its starting point should save
    /// a snapshot, so the next one is short.
    pub fn is_due_after_replay(&self, tail: u64) -> bool {
        self.every != 0 && tail >= self.every
    }

    /// Whether a stored snapshot was written under this policy's state version.
    pub fn accepts(&self, snapshot: &Snapshot) -> bool {
        snapshot.state_version == self.state_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(n: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            every: n,
            keep: 1,
            state_version: 1,
        }
    }

    #[test]
    fn a_batch_crossing_a_multiple_is_due() {
        let p = every(100);
        assert!(!p.is_due(0, 99));
        assert!(p.is_due(99, 100));
        assert!(p.is_due(98, 103));
        assert!(!p.is_due(100, 150));
        assert!(p.is_due(150, 450));
        assert!(!p.is_due(100, 100));
    }

    #[test]
    fn zero_never_snapshots() {
        let p = every(0);
        assert!(!p.is_due(0, u64::MAX));
        assert!(!p.is_due_after_replay(u64::MAX));
    }

    #[test]
    fn state_version_must_match() {
        let p = every(10);
        let snap = |state_version| Snapshot {
            version: 10,
            state_version,
            payload: vec![],
        };
        assert!(p.accepts(&snap(1)));
        assert!(!p.accepts(&snap(2)));
    }
}
