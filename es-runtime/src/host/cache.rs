//! The live instances: a sharded map from stream to instance slot, each shard with its own
//! least-recently-used list.
//!
//! # Invariants
//!
//! - Nothing waits for a slot lock while holding a shard lock. A command takes a shard lock
//!   only to find or insert its slot, before it locks the slot; domain code run under a slot
//!   lock (a `read` closure) may route another command, which takes a shard lock. Evictions
//!   and idle expiry, which hold the shard lock, only *try* the slot lock, so a busy instance
//!   is skipped; a passivation that waits for a busy instance clones its slot, releases the
//!   shard lock, and takes the shard lock again once it holds the slot's.
//! - A slot is passivated by marking it `retired` and dropping its state while holding its
//!   lock, then removing it from the map under the same shard lock. A command that found the
//!   slot before that and was waiting for its lock sees `retired` and looks the stream up again:
//!   it gets a fresh slot and rehydrates from the store, so it is neither lost nor run on stale
//!   state.
//! - Each shard holds at most `cap` slots, and the caps add up to the host's `max_live`. When a
//!   full shard cannot evict (every slot in it is running a command), it goes over by one until
//!   its next insert; with shards of more than a handful of slots this needs as many
//!   simultaneous commands in one shard.
//! - A passivated instance is moved out of its slot, not dropped there: it goes into a
//!   [`Retired`] guard, handed back once every lock is released, that the snapshot writer
//!   snapshots (if [worth it](Instance::worth_a_snapshot)) and that drops them, so no domain code (the state's `Serialize` or `Drop`)
//!   runs under a cache lock, and a panic in it cannot leave a retired slot in the map.
//! - Idle expiry reads the time of the last use stored in the list node, so there are no timers
//!   to go stale: an instance used again just before its deadline is simply not expired. With a
//!   sweeper, uses are stamped from a clock it advances at each round, so a stamp may be up to
//!   a round early; expiry allows for the longest round of the last timeout or two ([`Gaps`]),
//!   so an instance is never dropped before it has been idle for the whole timeout.

use std::hash::{BuildHasher, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use crate::event::StreamId;
use crate::host::error::panic_message;
use crate::host::metrics::{Counters, bump};

/// One aggregate's place in the host: its stream, and behind a lock its loaded state.
#[derive(Debug)]
pub(crate) struct Entry<A> {
    pub(crate) stream: StreamId,
    pub(crate) inner: Mutex<EntryState<A>>,
}

#[derive(Debug)]
pub(crate) struct EntryState<A> {
    /// Passivated: the slot left the map, and whoever holds it must look the stream up again.
    pub(crate) retired: bool,
    /// The state, or `None` before the first load and after a panic.
    pub(crate) instance: Option<Instance<A>>,
}

/// A loaded aggregate: its state and the stream version it reflects.
#[derive(Debug)]
pub(crate) struct Instance<A> {
    pub(crate) state: A,
    pub(crate) version: u64,
    /// The version of the last snapshot this instance was loaded from or took (0: none).
    pub(crate) snapshotted: u64,
    /// The size of that snapshot's state, in bytes (0: none).
    pub(crate) snapshot_bytes: u32,
    /// The payload bytes of the events applied since (saturating).
    pub(crate) tail_bytes: u32,
}

impl<A> Instance<A> {
    /// A fresh instance at `version`, loaded from a snapshot of `snapshot_bytes` (or none).
    pub(crate) fn new(state: A, version: u64, snapshot_bytes: usize) -> Self {
        Instance {
            state,
            version,
            snapshotted: version,
            snapshot_bytes: saturate(snapshot_bytes),
            tail_bytes: 0,
        }
    }

    /// Counts events of `bytes` payload applied past the snapshot.
    pub(crate) fn grew(&mut self, bytes: usize) {
        self.tail_bytes = self.tail_bytes.saturating_add(saturate(bytes));
    }

    /// Records a snapshot of `bytes` taken at the current version.
    pub(crate) fn snapshot_taken(&mut self, bytes: usize) {
        self.snapshotted = self.version;
        self.snapshot_bytes = saturate(bytes);
        self.tail_bytes = 0;
    }

    /// Whether passivating this instance should take a snapshot: it is at least `min_tail`
    /// events past its last snapshot, or (unless it is evicted to make room, `crowded`) it has
    /// a snapshot and the events since hold more bytes than that snapshot.
    ///
    /// The second rule keeps the replay after a reload short where a snapshot is cheap (a
    /// small state, large events), and takes a snapshot only once more event bytes than the
    /// previous snapshot's have been written since. It is left out for evictions: under churn
    /// they come at the rate of commands, and a snapshot per eviction would be a store write
    /// per command; idle and requested passivations are bounded by time and by the caller.
    pub(crate) fn worth_a_snapshot(&self, min_tail: u64, crowded: bool) -> bool {
        let tail = self.version - self.snapshotted;
        min_tail > 0
            && tail > 0
            && (tail >= min_tail
                || (!crowded && self.snapshot_bytes > 0 && self.tail_bytes > self.snapshot_bytes))
    }
}

fn saturate(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The instances a passivation took out of the cache: a guard that drops them once the
/// cache's locks are released, each on its own (the state's `Drop` is domain code, and a panic
/// in it costs nothing but a log line and a count), after the snapshot writer took those
/// [worth a snapshot](Instance::worth_a_snapshot) from it
/// ([`SnapshotWriter::retire`](crate::host::snapshots::SnapshotWriter::retire)).
///
/// The cache hands it back from each call that passivates, once its locks are released, so no
/// domain code runs under them, and a panic in it cannot leave a retired slot in the map.
#[must_use = "hand the passivated instances to the snapshot writer"]
#[derive(Debug)]
pub(crate) struct Retired<'c, A> {
    counters: &'c Counters,
    min_tail: u64,
    /// How many slots were retired, with an instance or without.
    count: usize,
    /// The instances worth a snapshot; none when the host takes no snapshots.
    worth: Vec<(StreamId, Instance<A>)>,
    /// The others.
    rest: Vec<Instance<A>>,
}

impl<'c, A> Retired<'c, A> {
    fn new(counters: &'c Counters, min_tail: u64) -> Self {
        Retired {
            counters,
            min_tail,
            count: 0,
            worth: Vec::new(),
            rest: Vec::new(),
        }
    }

    /// Takes the instance of a slot being retired (if it holds one): to snapshot if it is
    /// [worth a snapshot](Instance::worth_a_snapshot), or only to drop.
    fn offer(&mut self, stream: &StreamId, instance: Option<Instance<A>>, crowded: bool) {
        self.count += 1;
        let Some(instance) = instance else { return };
        if instance.worth_a_snapshot(self.min_tail, crowded) {
            self.worth.push((stream.clone(), instance));
        } else {
            self.rest.push(instance);
        }
    }

    /// How many slots were retired.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The instances worth a snapshot, for the writer; it drops each through
    /// [`drop_instance`](Self::drop_instance).
    pub(crate) fn take_worth_a_snapshot(&mut self) -> Vec<(StreamId, Instance<A>)> {
        std::mem::take(&mut self.worth)
    }

    /// Drops a passivated instance, catching a panic in its state's `Drop`.
    pub(crate) fn drop_instance(&self, instance: Instance<A>) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| drop(instance))) {
            bump(&self.counters.panics);
            let message = panic_message(&*panic);
            tracing::error!(message, "dropping a passivated instance panicked");
        }
    }
}

impl<A> Drop for Retired<'_, A> {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut self.rest);
        let worth = std::mem::take(&mut self.worth);
        for instance in rest.into_iter().chain(worth.into_iter().map(|(_, i)| i)) {
            self.drop_instance(instance);
        }
    }
}

impl<A> Entry<A> {
    fn new(stream: StreamId) -> Self {
        Entry {
            stream,
            inner: Mutex::new(EntryState {
                retired: false,
                instance: None,
            }),
        }
    }

    /// Locks the slot. Panics in domain code are caught inside the lock, so poisoning only
    /// follows a panicking store, which leaves the instance as it was: the data stays usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, EntryState<A>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Retires the slot if nobody holds it.
    fn try_retire(&self, crowded: bool, retired: &mut Retired<'_, A>) -> bool {
        let mut guard = match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        self.retire(&mut guard, crowded, retired);
        true
    }

    /// Retires the slot, whose lock the caller holds.
    fn retire(&self, guard: &mut EntryState<A>, crowded: bool, retired: &mut Retired<'_, A>) {
        guard.retired = true;
        retired.offer(&self.stream, guard.instance.take(), crowded);
    }
}

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node<A> {
    slot: Option<Arc<Entry<A>>>,
    /// The stream's hash, which also chose the shard.
    hash: u64,
    /// Nanoseconds since the cache's epoch.
    last_used: u64,
    prev: u32,
    next: u32,
}

/// One shard: a hash table of indices into a slab of list nodes, most recently used at the
/// head. The table stores only the index; the key is the node's stream.
#[derive(Debug)]
struct Shard<A> {
    map: HashTable<u32>,
    nodes: Vec<Node<A>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    cap: usize,
    commands: u64,
}

impl<A> Shard<A> {
    fn new(cap: usize) -> Self {
        Shard {
            map: HashTable::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap,
            commands: 0,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        match old {
            NIL => self.tail = i,
            o => self.nodes[o as usize].prev = i,
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32, now: u64) {
        self.nodes[i as usize].last_used = now;
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    fn slot(&self, i: u32) -> &Arc<Entry<A>> {
        self.nodes[i as usize]
            .slot
            .as_ref()
            .expect("a linked node holds a slot")
    }

    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        self.map
            .find(hash, |&i| {
                self.nodes[i as usize]
                    .slot
                    .as_ref()
                    .is_some_and(|s| s.stream.as_str() == key)
            })
            .copied()
    }

    fn insert(&mut self, slot: Arc<Entry<A>>, hash: u64, now: u64) {
        let node = Node {
            slot: Some(slot),
            hash,
            last_used: now,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                u32::try_from(self.nodes.len() - 1).expect("fewer than 2^32 live instances")
            }
        };
        let nodes = &self.nodes;
        self.map.insert_unique(hash, i, |&j| nodes[j as usize].hash);
        self.push_front(i);
    }

    /// Removes node `i` if its slot can be retired now, without waiting.
    /// `crowded`: evicted to make room (see [`Instance::worth_a_snapshot`]).
    fn evict(&mut self, i: u32, crowded: bool, retired: &mut Retired<'_, A>) -> bool {
        if !self.slot(i).try_retire(crowded, retired) {
            return false;
        }
        self.remove(i);
        true
    }

    /// The node holding `slot` (found by its stream's `hash`).
    fn find_slot(&self, hash: u64, slot: &Arc<Entry<A>>) -> Option<u32> {
        self.map
            .find(hash, |&i| {
                self.nodes[i as usize]
                    .slot
                    .as_ref()
                    .is_some_and(|s| Arc::ptr_eq(s, slot))
            })
            .copied()
    }

    /// Unlinks node `i` and frees it; its slot must be retired.
    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let hash = self.nodes[i as usize].hash;
        if let Ok(entry) = self.map.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.nodes[i as usize].slot = None;
        self.free.push(i);
    }

    /// Evicts the least recently used slot that is not busy, looking at most `tries` slots.
    fn evict_lru(&mut self, tries: usize, retired: &mut Retired<'_, A>) -> bool {
        let mut i = self.tail;
        for _ in 0..tries {
            if i == NIL {
                break;
            }
            let prev = self.nodes[i as usize].prev;
            if self.evict(i, true, retired) {
                return true;
            }
            i = prev;
        }
        false
    }

    /// Evicts slots unused since `deadline`, oldest first, at most `limit` of them.
    fn expire(&mut self, deadline: u64, limit: usize, retired: &mut Retired<'_, A>) -> usize {
        let mut evicted = 0;
        let mut i = self.tail;
        let mut looked = 0;
        while i != NIL && evicted < limit && looked < limit.saturating_mul(2) {
            let node = &self.nodes[i as usize];
            if node.last_used > deadline {
                break;
            }
            let prev = node.prev;
            if self.evict(i, false, retired) {
                evicted += 1;
            }
            looked += 1;
            i = prev;
        }
        evicted
    }
}

/// The longest gaps between the sweeper's ticks, in two windows of at least an idle timeout
/// each: a stamp can only be late by the gap of a tick within the last idle timeout (an older
/// one was followed by a tick more than a timeout ago), so a long gap (a stalled machine)
/// delays expiry for two timeouts at most.
#[derive(Debug, Default)]
struct Gaps {
    /// When the current window started.
    since: u64,
    current: u64,
    previous: u64,
}

impl Gaps {
    /// Records the gap that ended with the tick at `now`; returns the longest of both windows.
    fn record(&mut self, now: u64, gap: u64, idle: u64) -> u64 {
        if now.saturating_sub(self.since) >= idle {
            self.previous = self.current;
            self.current = 0;
            self.since = now;
        }
        self.current = self.current.max(gap);
        self.current.max(self.previous)
    }
}

#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

/// The sharded map of live instances.
#[derive(Debug)]
pub(crate) struct Cache<A> {
    shards: Box<[Padded<Mutex<Shard<A>>>]>,
    /// SipHash with random keys: aggregate ids often come from clients, so the map must not
    /// be open to crafted collisions.
    hasher: RandomState,
    epoch: Instant,
    /// The idle timeout in nanoseconds (`u64::MAX`: never).
    idle: u64,
    /// Nanoseconds since `epoch` as of the sweeper's last tick. While a sweeper ticks, the
    /// hot path reads this rather than the system clock: idle times are only needed to about
    /// the sweep interval.
    coarse_now: AtomicU64,
    ticking: AtomicBool,
    /// The longest time between two ticks lately (at least the last idle timeout's worth of
    /// ticks), in nanoseconds: how far behind a use the coarse clock may have stamped it. Idle
    /// expiry waits this much longer, so that no instance goes before it has been idle for the
    /// whole timeout.
    slack: AtomicU64,
    /// The gaps between ticks that `slack` is the longest of.
    gaps: Mutex<Gaps>,
    /// Passivations hand back instances at least this many events past their last snapshot,
    /// or worth a snapshot by size ([`Instance::worth_a_snapshot`]); 0: none.
    min_tail: u64,
}

/// What an insert needs when the stream is not live: its validated id.
pub(crate) type MakeStream<'a> = &'a mut dyn FnMut() -> Result<StreamId, crate::InvalidStreamId>;

impl<A> Cache<A> {
    /// `min_tail`: passivations hand back the instances at least this many events past their
    /// last snapshot, or worth a snapshot by size (0: none).
    pub(crate) fn new(max_live: usize, shards: usize, idle: Duration, min_tail: u64) -> Self {
        let max_live = max_live.max(1);
        let n = shards.clamp(1, max_live);
        let shards = (0..n)
            .map(|i| {
                let cap = max_live / n + usize::from(i < max_live % n);
                Padded(Mutex::new(Shard::new(cap)))
            })
            .collect();
        Cache {
            shards,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            idle: u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX),
            coarse_now: AtomicU64::new(0),
            ticking: AtomicBool::new(false),
            slack: AtomicU64::new(0),
            gaps: Mutex::new(Gaps::default()),
            min_tail,
        }
    }

    fn precise_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> u64 {
        if self.ticking.load(Ordering::Relaxed) {
            self.coarse_now.load(Ordering::Relaxed)
        } else {
            self.precise_now()
        }
    }

    /// Advances the coarse clock; called by the sweeper on each round.
    pub(crate) fn tick(&self) {
        let now = self.precise_now();
        let mut gaps = self.gaps.lock().unwrap_or_else(|e| e.into_inner());
        if self.ticking.load(Ordering::Acquire) {
            let gap = now.saturating_sub(self.coarse_now.load(Ordering::Acquire));
            let slack = gaps.record(now, gap, self.idle);
            self.slack.store(slack, Ordering::Release);
        } else {
            gaps.since = now;
        }
        // Published after the slack: whoever sees this tick sees the slack that goes with it.
        self.coarse_now.store(now, Ordering::Release);
        self.ticking.store(true, Ordering::Release);
    }

    /// The last use before which an instance is idle at `now` (from [`now`](Self::now) or
    /// [`precise_now`](Self::precise_now)). With the coarse clock, a use was stamped up to one
    /// interval between ticks early: the deadline moves back by the longest such interval, or
    /// by the time since the last tick if that is longer.
    fn idle_deadline(&self, now: u64) -> u64 {
        let deadline = now.saturating_sub(self.idle);
        if !self.ticking.load(Ordering::Relaxed) {
            return deadline;
        }
        let current = now.saturating_sub(self.coarse_now.load(Ordering::Acquire));
        deadline.saturating_sub(self.slack.load(Ordering::Acquire).max(current))
    }

    /// The key's hash, and its shard's lock.
    fn shard(&self, key: &str) -> (u64, MutexGuard<'_, Shard<A>>) {
        let hash = self.hasher.hash_one(key);
        (hash, self.shard_at(hash))
    }

    /// The lock of the shard of a key's hash.
    fn shard_at(&self, hash: u64) -> MutexGuard<'_, Shard<A>> {
        // Nothing panics while a shard lock is held but the table's allocations.
        self.shards[self.shard_of(hash)]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The shard of a key's hash.
    fn shard_of(&self, hash: u64) -> usize {
        // The table uses the low bits (bucket) and the top 7 (tag); pick the shard from the
        // 24 bits between, so keys of one shard still spread over its table. Scaling them to
        // the shard count (multiply, shift) spreads them as evenly as a remainder would,
        // without a division.
        ((((hash >> 32) & 0xff_ffff) * self.shards.len() as u64) >> 24) as usize
    }

    /// The slot of `key`, inserted (evicting the least recently used slot of a full shard)
    /// when the stream is not live, and the instances that idle expiry and evictions retired.
    pub(crate) fn get_or_insert<'c>(
        &self,
        key: &str,
        make: MakeStream<'_>,
        counters: &'c Counters,
        command: bool,
    ) -> (
        Result<Arc<Entry<A>>, crate::InvalidStreamId>,
        Retired<'c, A>,
    ) {
        let mut retired = Retired::new(counters, self.min_tail);
        let slot = self.get_or_insert_in(key, make, counters, command, &mut retired);
        (slot, retired)
    }

    fn get_or_insert_in(
        &self,
        key: &str,
        make: MakeStream<'_>,
        counters: &Counters,
        command: bool,
        retired: &mut Retired<'_, A>,
    ) -> Result<Arc<Entry<A>>, crate::InvalidStreamId> {
        let now = self.now();
        let (hash, mut shard) = self.shard(key);
        shard.commands += u64::from(command);
        if let Some(i) = shard.find(hash, key) {
            shard.touch(i, now);
            let slot = shard.slot(i).clone();
            // Lazy idle expiry: the list's tail is the oldest, so one look is enough.
            if self.idle != u64::MAX {
                let expired = shard.expire(self.idle_deadline(now), 2, retired);
                for _ in 0..expired {
                    bump(&counters.passivations_idle);
                }
            }
            return Ok(slot);
        }
        let stream = make()?;
        if self.idle != u64::MAX {
            let expired = shard.expire(self.idle_deadline(now), 4, retired);
            for _ in 0..expired {
                bump(&counters.passivations_idle);
            }
        }
        while shard.map.len() >= shard.cap {
            if !shard.evict_lru(8, retired) {
                break;
            }
            bump(&counters.passivations_lru);
        }
        let slot = Arc::new(Entry::new(stream));
        shard.insert(slot.clone(), hash, now);
        Ok(slot)
    }

    /// Passivates one stream, waiting for a command running on it to finish.
    pub(crate) fn passivate<'c>(&self, key: &str, counters: &'c Counters) -> Retired<'c, A> {
        let mut retired = Retired::new(counters, self.min_tail);
        let (hash, shard) = self.shard(key);
        if let Some(i) = shard.find(hash, key) {
            let slot = shard.slot(i).clone();
            drop(shard);
            self.passivate_slot(hash, &slot, &mut retired);
        }
        retired
    }

    /// Passivates `slot` (of a stream whose hash is `hash`), waiting for its lock with no
    /// shard lock held. False if it was passivated meanwhile.
    fn passivate_slot(
        &self,
        hash: u64,
        slot: &Arc<Entry<A>>,
        retired: &mut Retired<'_, A>,
    ) -> bool {
        let mut guard = slot.lock();
        if guard.retired {
            return false;
        }
        let mut shard = self.shard_at(hash);
        // A slot leaves the map only once retired, under its lock, which is held here.
        let Some(i) = shard.find_slot(hash, slot) else {
            return false;
        };
        slot.retire(&mut guard, false, retired);
        shard.remove(i);
        true
    }

    /// Passivates every instance idle for longer than the idle timeout (and not busy).
    pub(crate) fn passivate_idle<'c>(&self, counters: &'c Counters) -> Retired<'c, A> {
        let mut retired = Retired::new(counters, self.min_tail);
        if self.idle == u64::MAX {
            return retired;
        }
        let deadline = self.idle_deadline(self.precise_now());
        for s in self.shards.iter() {
            let mut shard = s.0.lock().unwrap_or_else(|e| e.into_inner());
            shard.expire(deadline, usize::MAX, &mut retired);
        }
        retired
    }

    /// Passivates every instance live when it is called, waiting for running commands.
    pub(crate) fn passivate_all<'c>(&self, counters: &'c Counters) -> Retired<'c, A> {
        let mut retired = Retired::new(counters, self.min_tail);
        let mut busy = Vec::new();
        for s in self.shards.iter() {
            let mut shard = s.0.lock().unwrap_or_else(|e| e.into_inner());
            let mut i = shard.tail;
            while i != NIL {
                let prev = shard.nodes[i as usize].prev;
                if !shard.evict(i, false, &mut retired) {
                    busy.push((shard.nodes[i as usize].hash, shard.slot(i).clone()));
                }
                i = prev;
            }
        }
        // The busy ones, waited for without a shard lock.
        for (hash, slot) in busy {
            self.passivate_slot(hash, &slot, &mut retired);
        }
        retired
    }

    /// How many slots are live, and how many commands were routed.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(live, commands), s| {
            let shard = s.0.lock().unwrap_or_else(|e| e.into_inner());
            (live + shard.map.len() as u64, commands + shard.commands)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_worth_a_snapshot_by_count_or_by_size() {
        // Loaded from a 40-byte snapshot at version 100; a tenth of the interval is 10.
        let mut i = Instance::new((), 100, 40);
        assert!(!i.worth_a_snapshot(10, false), "nothing since the snapshot");
        i.version += 1;
        i.grew(40);
        assert!(
            !i.worth_a_snapshot(10, false),
            "as many bytes as the snapshot: not more"
        );
        i.version += 1;
        i.grew(1);
        assert!(
            i.worth_a_snapshot(10, false),
            "more bytes than the snapshot"
        );
        assert!(
            !i.worth_a_snapshot(10, true),
            "an eviction goes by count only"
        );
        assert!(!i.worth_a_snapshot(0, false), "the host takes no snapshots");

        // A snapshot taken now resets the tail and remembers its own size.
        i.snapshot_taken(500);
        assert_eq!(
            (i.snapshotted, i.snapshot_bytes, i.tail_bytes),
            (102, 500, 0)
        );
        i.version += 9;
        i.grew(450);
        assert!(
            !i.worth_a_snapshot(10, false),
            "9 events, fewer bytes than 500"
        );
        i.version += 1;
        i.grew(10);
        assert!(
            i.worth_a_snapshot(10, true),
            "10 events: by count, even when evicted"
        );

        // Without a snapshot, only the count counts.
        let mut fresh = Instance::new((), 0, 0);
        fresh.version = 9;
        fresh.grew(10_000);
        assert!(!fresh.worth_a_snapshot(10, false));
        fresh.version = 10;
        assert!(fresh.worth_a_snapshot(10, false));
    }

    #[test]
    fn a_long_gap_between_ticks_is_forgotten_after_two_timeouts() {
        let mut gaps = Gaps::default();
        // Ticks every 10 with a 100 timeout, then one 70 late.
        assert_eq!(gaps.record(10, 10, 100), 10);
        assert_eq!(gaps.record(90, 80, 100), 80);
        // Kept while a use it made look older may still be within the timeout...
        for t in (100..=190).step_by(10) {
            assert_eq!(gaps.record(t, 10, 100), 80, "at {t}");
        }
        // ...and forgotten at the next window, at most two timeouts after it.
        assert_eq!(gaps.record(200, 10, 100), 10);
        assert_eq!(gaps.record(210, 10, 100), 10);
    }

    #[test]
    fn keys_spread_evenly_over_the_shards() {
        for shards in [1, 3, 7, 64, 1000] {
            let cache = Cache::<()>::new(usize::MAX, shards, Duration::MAX, 0);
            let mut counts = vec![0usize; shards];
            let keys = 200 * shards;
            for id in 0..keys {
                let hash = cache.hasher.hash_one(format!("account-{id}"));
                counts[cache.shard_of(hash)] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(*min >= 120 && *max <= 280, "{shards} shards: {min}..{max}");
        }
    }
}
