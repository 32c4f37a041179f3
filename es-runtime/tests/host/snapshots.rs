//! The snapshot policy on the host: when snapshots are taken, how many are kept, which are
//! trusted, and that snapshot + tail always equals a full replay.

use crate::common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Account, AccountCommand, AccountEvent, replay, stream_events};
use es_runtime::store::Visitor;
use es_runtime::{
    Aggregate, AppendError, AppendResult, EventStore, ExpectedVersion, Host, MemoryStore, NewEvent,
    ReadError, Snapshot, StreamId, WriteError,
};
use proptest::prelude::*;

fn versions(store: &impl EventStore, id: &str) -> Vec<u64> {
    let stream = StreamId::new(Account::NAME, id).unwrap();
    store
        .snapshots(&stream)
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect()
}

fn inline<S: EventStore + 'static>(
    store: Arc<S>,
    every: u64,
    keep: usize,
) -> Host<Account, Arc<S>> {
    Host::builder(store)
        .snapshot_every(every)
        .snapshot_keep(keep)
        .background_snapshots(false)
        .build()
}

fn a_batch_crossing_a_multiple_is_snapshotted<S: EventStore + 'static>(store: Arc<S>) {
    let host = inline(store.clone(), 10, 10);
    for _ in 0..9 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(versions(&*store, "a").is_empty());
    host.execute("a", AccountCommand::DepositTwice(1, 1))
        .unwrap(); // 9 -> 11
    assert_eq!(versions(&*store, "a"), [11]);
    for _ in 0..4 {
        host.execute("a", AccountCommand::DepositTwice(1, 1))
            .unwrap(); // 13, 15, 17, 19
    }
    assert_eq!(versions(&*store, "a"), [11]);
    host.execute("a", AccountCommand::Deposit(1)).unwrap(); // 20, exactly on the multiple
    assert_eq!(versions(&*store, "a"), [11, 20]);
    assert_eq!(host.metrics().snapshots_written, 2);
}

fn only_the_last_k_are_kept<S: EventStore + 'static>(store: Arc<S>) {
    let host = inline(store.clone(), 2, 3);
    for _ in 0..20 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert_eq!(versions(&*store, "a"), [16, 18, 20]);
}

fn zero_takes_no_snapshots<S: EventStore + 'static>(store: Arc<S>) {
    let host = inline(store.clone(), 0, 3);
    for _ in 0..300 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(versions(&*store, "a").is_empty());
}

fn background_snapshots_are_written_and_flushed<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(5)
        .snapshot_keep(1)
        .build();
    for i in 0..100u64 {
        host.execute(i % 4, AccountCommand::Deposit(1)).unwrap();
    }
    host.flush_snapshots();
    for id in ["0", "1", "2", "3"] {
        assert_eq!(versions(&*store, id), [25]);
    }
    // Dropping the host writes what is still queued.
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(1)
        .build();
    host.execute("z", AccountCommand::Deposit(1)).unwrap();
    drop(host);
    assert_eq!(versions(&*store, "z"), [1]);
}

#[test]
fn the_aggregate_constants_set_the_default_policy() {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Tuned(u64);
    impl Aggregate for Tuned {
        const NAME: &'static str = "tuned";
        const STATE_VERSION: u32 = 4;
        const SNAPSHOT_EVERY: u64 = 3;
        const SNAPSHOT_KEEP: usize = 5;
        type Command = ();
        type Event = common::AccountEvent;
        type Error = std::convert::Infallible;
        type Services = ();
        fn handle(&self, (): ()) -> Result<Vec<common::AccountEvent>, Self::Error> {
            Ok(vec![])
        }
        fn apply(&mut self, _: common::AccountEvent) {}
    }
    let policy = Host::<Tuned, _>::new(MemoryStore::new()).snapshot_policy();
    assert_eq!((policy.every, policy.keep, policy.state_version), (3, 5, 4));
    let policy = Host::<Tuned, _>::builder(MemoryStore::new())
        .snapshot_every(7)
        .state_version(9)
        .build()
        .snapshot_policy();
    assert_eq!((policy.every, policy.keep, policy.state_version), (7, 5, 9));
    let policy = Host::<Account, _>::new(MemoryStore::new()).snapshot_policy();
    assert_eq!(
        (policy.every, policy.keep, policy.state_version),
        (100, 2, 1)
    );
}

#[test]
fn snapshots_of_another_state_version_are_ignored() {
    let store = Arc::new(MemoryStore::new());
    let v1 = inline(store.clone(), 10, 2);
    for _ in 0..25 {
        v1.execute("a", AccountCommand::Deposit(2)).unwrap();
    }
    assert_eq!(versions(&*store, "a"), [10, 20]);
    let v2 = Host::<Account, _>::builder(store.clone())
        .state_version(2)
        .snapshot_every(10)
        .background_snapshots(false)
        .build();
    assert_eq!(v2.state("a").unwrap().balance, 50);
    let m = v2.metrics();
    // Both kept snapshots (10 and 20) are of the old shape.
    assert_eq!((m.snapshot_hits, m.snapshots_outdated), (0, 2));
    // The rebuild replayed 25 events, so it saved a snapshot of the new shape.
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    let latest = store.load_snapshot(&stream).unwrap().unwrap();
    assert_eq!((latest.version, latest.state_version), (25, 2));
}

/// Collects the messages of `WARN` events.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut s = String::new();
            event.record(&mut Message(&mut s));
            self.0.lock().unwrap().push(s);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_corrupt_snapshot_is_ignored_with_a_warning_and_rebuilt() {
    let store = Arc::new(MemoryStore::new());
    let host = inline(store.clone(), 0, 1);
    for _ in 0..10 {
        host.execute("a", AccountCommand::Deposit(3)).unwrap();
    }
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    let garbage = Snapshot {
        version: 8,
        state_version: 1,
        payload: vec![0xc1, 0xff, 0x00, 0x13],
    };
    store.save_snapshot(&stream, garbage, 1).unwrap();

    let warnings = Arc::new(Warnings::default());
    let fresh = inline(store.clone(), 0, 1);
    let state = tracing::subscriber::with_default(warnings.clone(), || fresh.state("a").unwrap());
    assert_eq!(state.balance, 30);
    assert_eq!(
        state,
        replay(stream_events(&*store, "a").into_iter().map(|(_, e)| e))
    );
    let m = fresh.metrics();
    assert_eq!((m.snapshots_corrupt, m.snapshot_hits), (1, 0));
    let logged = warnings.0.lock().unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("does not decode"), "{logged:?}");
    assert!(logged[0].contains("account-a"), "{logged:?}");
}

/// Hosts of two state versions sharing a store: each loads from the newest snapshot of its
/// own version, even behind a newer one of the other.
fn the_newest_snapshot_of_the_hosts_state_version_is_used<S: EventStore + 'static>(store: Arc<S>) {
    let host = |state_version: u32| {
        Host::<Account, _>::builder(store.clone())
            .state_version(state_version)
            .snapshot_every(10)
            .snapshot_keep(3)
            .background_snapshots(false)
            .build()
    };
    let v1 = host(1);
    for _ in 0..25 {
        v1.execute("a", AccountCommand::Deposit(2)).unwrap();
    }
    let v2 = host(2);
    for _ in 0..10 {
        v2.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    let kept: Vec<(u64, u32)> = store
        .snapshots(&stream)
        .unwrap()
        .iter()
        .map(|s| (s.version, s.state_version))
        .collect();
    assert_eq!(kept, [(20, 1), (25, 2), (30, 2)]);

    let v1 = host(1);
    assert_eq!(v1.state("a").unwrap().balance, 60);
    let m = v1.metrics();
    assert_eq!(
        (m.snapshots_outdated, m.snapshot_hits, m.replayed_events),
        (2, 1, 15),
        "skipped 30 and 25, loaded 20, replayed 21 to 35"
    );
}

fn a_long_replay_saves_a_snapshot<S: EventStore + 'static>(store: Arc<S>) {
    let writer = inline(store.clone(), 0, 1);
    for _ in 0..250 {
        writer.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    let reader = inline(store.clone(), 100, 1);
    assert_eq!(reader.state("a").unwrap().balance, 250);
    assert_eq!(versions(&*store, "a"), [250]);
    let again = inline(store.clone(), 100, 1);
    assert_eq!(again.state("a").unwrap().balance, 250);
    assert_eq!(again.metrics().snapshot_hits, 1);
}

/// How an instance leaves the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    Passivate,
    PassivateAll,
    PassivateIdle,
    Sweeper,
    Evicted,
}

const LEAVES: [Leave; 5] = [
    Leave::Passivate,
    Leave::PassivateAll,
    Leave::PassivateIdle,
    Leave::Sweeper,
    Leave::Evicted,
];

/// Takes `a` 5 events past its snapshot at 10, has it leave the cache by `leave`, and loads it
/// again: the load starts from a snapshot at 15 and replays nothing.
fn reload_after(leave: Leave, background: bool) {
    let store = Arc::new(MemoryStore::new());
    let mut builder = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .snapshot_keep(2)
        .background_snapshots(background)
        .max_live(1)
        .shards(1);
    builder = match leave {
        Leave::PassivateIdle => builder
            .idle_timeout(Duration::from_millis(30))
            .sweep_interval(Duration::ZERO),
        Leave::Sweeper => builder
            .idle_timeout(Duration::from_millis(30))
            .sweep_interval(Duration::from_millis(10)),
        _ => builder,
    };
    let host = builder.build();
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    match leave {
        Leave::Passivate => assert!(host.passivate("a")),
        Leave::PassivateAll => assert_eq!(host.passivate_all(), 1),
        Leave::PassivateIdle => {
            thread::sleep(Duration::from_millis(60));
            assert_eq!(host.passivate_idle(), 1);
        }
        Leave::Sweeper => {
            // The sweeper snapshots after it passivates: wait for the snapshot itself.
            let deadline = Instant::now() + Duration::from_secs(5);
            while versions(&*store, "a").last() != Some(&15) {
                assert!(Instant::now() < deadline, "{:?}", host.metrics());
                thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(host.metrics().passivations_idle, 1);
        }
        Leave::Evicted => {
            host.execute("b", AccountCommand::Deposit(1)).unwrap();
            assert_eq!(host.metrics().passivations_lru, 1);
        }
    }
    let before = host.metrics();
    assert_eq!(host.state("a").unwrap().balance, 15, "{leave:?}");
    let m = host.metrics();
    assert_eq!(m.rehydrations - before.rehydrations, 1, "{leave:?}");
    assert_eq!(m.snapshot_hits - before.snapshot_hits, 1, "{leave:?}");
    assert_eq!(m.replayed_events, before.replayed_events, "{leave:?}");
    host.flush_snapshots();
    if background {
        // The writer may have coalesced the snapshot at 10 into the one at 15.
        assert_eq!(versions(&*store, "a").last(), Some(&15), "{leave:?}");
    } else {
        assert_eq!(versions(&*store, "a"), [10, 15], "{leave:?}");
    }
}

#[test]
fn a_passivation_past_the_last_snapshot_leaves_nothing_to_replay_inline() {
    for leave in LEAVES {
        reload_after(leave, false);
    }
}

#[test]
fn a_passivation_past_the_last_snapshot_leaves_nothing_to_replay_in_background() {
    for leave in LEAVES {
        reload_after(leave, true);
    }
}

/// A memory store whose snapshot writes wait while the gate is shut (and panic while
/// `panics_left` is above zero, each taking one), and whose snapshots cannot be read while
/// `broken` is set.
#[derive(Debug, Default)]
struct GatedStore {
    inner: MemoryStore,
    shut: Mutex<bool>,
    opened: Condvar,
    broken: std::sync::atomic::AtomicBool,
    panics_left: std::sync::atomic::AtomicU32,
}

impl GatedStore {
    fn check_readable(&self) -> Result<(), ReadError> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ReadError::Corrupt {
                at: es_runtime::Location::Store,
                reason: "broken on purpose".to_owned(),
            });
        }
        Ok(())
    }
}

impl GatedStore {
    fn set_shut(&self, shut: bool) {
        *self.shut.lock().unwrap() = shut;
        self.opened.notify_all();
    }
}

impl EventStore for GatedStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.inner.append(stream, expected, events)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.inner.stream_version(stream)
    }
    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        self.inner.read_stream_with(stream, from, visitor)
    }
    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        self.inner.read_all_with(from, visitor)
    }
    fn head_position(&self) -> Result<u64, ReadError> {
        self.inner.head_position()
    }
    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        let mut shut = self.shut.lock().unwrap();
        while *shut {
            shut = self.opened.wait(shut).unwrap();
        }
        drop(shut);
        let take = |left: u32| left.checked_sub(1);
        let panics_left = &self.panics_left;
        if panics_left.fetch_update(SeqCst, SeqCst, take).is_ok() {
            panic!("the store panicked saving a snapshot");
        }
        self.inner.save_snapshot(stream, snapshot, keep)
    }
    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        self.check_readable()?;
        self.inner.load_snapshot(stream)
    }
    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        self.check_readable()?;
        self.inner.snapshots(stream)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        self.inner.save_checkpoint(name, position)
    }
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        self.inner.load_checkpoint(name)
    }
    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        self.inner.checkpoints()
    }
    fn import(
        &self,
        events: Vec<es_runtime::RecordedEvent>,
    ) -> Result<es_runtime::ImportResult, es_runtime::AppendError> {
        self.inner.import(events)
    }
    // The schema methods forward, so that hosts over this store record their schemas.
    fn save_schema(
        &self,
        schema: &es_runtime::OwnedSchema,
    ) -> Result<Option<es_runtime::RecordedSchema>, es_runtime::WriteError> {
        self.inner.save_schema(schema)
    }
    fn schemas(&self) -> Result<Vec<es_runtime::RecordedSchema>, es_runtime::ReadError> {
        self.inner.schemas()
    }
    fn import_schemas(
        &self,
        records: Vec<es_runtime::RecordedSchema>,
    ) -> Result<u64, es_runtime::WriteError> {
        self.inner.import_schemas(records)
    }
}

/// Opens a gated store's gate when dropped.
struct Open(Arc<GatedStore>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.set_shut(false);
    }
}

/// A store that panics as the idle sweeper writes a passivated instance's snapshot costs
/// that round of the sweep only: the next rounds passivate as before.
#[test]
fn a_store_panicking_under_the_sweeper_costs_one_round() {
    let store = Arc::new(GatedStore::default());
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .background_snapshots(false)
        .idle_timeout(Duration::from_millis(20))
        .sweep_interval(Duration::from_millis(5))
        .build();
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    // The sweeper passivates `a`, 5 events past its snapshot, and writes one at 15 itself.
    store.panics_left.store(1, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.panics_left.load(SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "the sweeper wrote a snapshot of `a`"
        );
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(host.metrics().passivations_idle, 1);
    host.execute("b", AccountCommand::Deposit(1)).unwrap();
    while host.metrics().passivations_idle < 2 {
        assert!(
            Instant::now() < deadline,
            "the sweeper passivated `b` after the panic"
        );
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        versions(&*store, "a"),
        [10],
        "the snapshot at 15 was lost with the round"
    );
    assert_eq!(host.state("a").unwrap().balance, 15);
}

/// Snapshots that cannot be read (the default `load_snapshot_before` fails like
/// `load_snapshot`) are counted once per load, and the instance is rebuilt from its events.
#[test]
fn unreadable_snapshots_are_counted_once_and_replayed_past() {
    let store = Arc::new(GatedStore::default());
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .background_snapshots(false)
        .build();
    for _ in 0..25 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    store
        .broken
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(host.state("a").unwrap().balance, 25);
    let m = host.metrics();
    assert_eq!(
        (m.snapshots_corrupt, m.snapshot_hits, m.replayed_events),
        (1, 0, 25)
    );
}

/// A snapshot still waiting for the writer stands in for a newer stored one of another state
/// version, rather than an older stored one or none.
#[test]
fn a_pending_snapshot_stands_in_for_a_newer_one_of_another_state_version() {
    let store = Arc::new(GatedStore::default());
    store.set_shut(true);
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .build();
    // Opens the gate before the host is dropped (it waits for its writer), even on failure.
    let _open = Open(store.clone());
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    // A host of state version 2 saved a snapshot at 15, past the writer queue; the one at 15
    // of version 1 is still waiting.
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    let other_shape = Snapshot {
        version: 15,
        state_version: 2,
        payload: vec![0xc0],
    };
    store.inner.save_snapshot(&stream, other_shape, 2).unwrap();
    let newer = Snapshot {
        version: 16,
        ..store.inner.load_snapshot(&stream).unwrap().unwrap()
    };
    store
        .inner
        .append(
            &stream,
            ExpectedVersion::Exact(15),
            vec![
                NewEvent::from_event(&AccountEvent::Deposited { amount: 1 }, Default::default())
                    .unwrap(),
            ],
        )
        .unwrap();
    store.inner.save_snapshot(&stream, newer, 2).unwrap();
    assert_eq!(host.state("a").unwrap().balance, 16);
    let m = host.metrics();
    assert_eq!(
        (m.snapshots_outdated, m.snapshot_hits, m.replayed_events),
        (1, 1, 1),
        "skipped 16 of version 2, loaded the pending 15 (as new as the stored one), replayed 16"
    );
}

#[test]
fn rehydration_uses_a_snapshot_still_waiting_for_the_writer() {
    let store = Arc::new(GatedStore::default());
    store.set_shut(true);
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .snapshot_keep(2)
        .build();
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    // The writer is stuck on the snapshot at 10; the one at 15 waits behind it.
    assert!(versions(&*store, "a").is_empty());
    let done = host.execute("a", AccountCommand::Deposit(1)).unwrap();
    assert_eq!(done.version, 16);
    let m = host.metrics();
    assert_eq!(
        (m.rehydrations, m.snapshot_hits, m.replayed_events),
        (2, 1, 0)
    );
    assert_eq!(host.state("a").unwrap().balance, 16);
    store.set_shut(false);
    host.flush_snapshots();
    assert_eq!(versions(&*store, "a").last(), Some(&15));
}

#[test]
fn a_stored_snapshot_newer_than_the_pending_one_wins() {
    let store = Arc::new(GatedStore::default());
    store.set_shut(true);
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(10)
        .build();
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    // Another writer went further, and saved a newer snapshot, past the writer queue.
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    for _ in 0..10 {
        store
            .inner
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![
                    NewEvent::from_event(
                        &common::AccountEvent::Deposited { amount: 1 },
                        Default::default(),
                    )
                    .unwrap(),
                ],
            )
            .unwrap();
    }
    let newer = Account {
        balance: 25,
        deposits: 25,
        withdrawals: 0,
    };
    store
        .inner
        .save_snapshot(
            &stream,
            Snapshot {
                version: 25,
                state_version: 1,
                payload: es_runtime::codec::encode(&newer).unwrap(),
            },
            2,
        )
        .unwrap();
    assert!(host.passivate("a"));
    assert_eq!(host.state("a").unwrap(), newer);
    assert_eq!(host.metrics().replayed_events, 0);
    store.set_shut(false);
}

#[test]
fn a_passivation_at_the_snapshot_version_or_without_snapshots_takes_none() {
    // At the snapshot version: the command at 10 took it, nothing happened since.
    let store = Arc::new(MemoryStore::new());
    let host = inline(store.clone(), 10, 5);
    for _ in 0..10 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    assert_eq!(host.metrics().snapshots_written, 1);
    // Loaded from that snapshot and only read.
    assert_eq!(host.state("a").unwrap().balance, 10);
    assert_eq!(host.passivate_all(), 1);
    // An empty stream, only read.
    assert_eq!(host.state("e").unwrap().balance, 0);
    assert!(host.passivate("e"));
    assert_eq!(host.metrics().snapshots_written, 1);
    assert_eq!(versions(&*store, "a"), [10]);
    assert!(versions(&*store, "e").is_empty());

    // No snapshots at all.
    let store = Arc::new(MemoryStore::new());
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(0)
        .max_live(1)
        .shards(1)
        .build();
    for _ in 0..15 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    host.execute("b", AccountCommand::Deposit(1)).unwrap(); // evicts a
    assert_eq!(host.passivate_all(), 1);
    host.flush_snapshots();
    assert_eq!(host.metrics().snapshots_written, 0);
    assert!(versions(&*store, "a").is_empty());
    assert!(versions(&*store, "b").is_empty());
    assert_eq!(host.state("a").unwrap().balance, 16);
    assert_eq!(host.metrics().replayed_events, 15 + 16);
}

/// Without a snapshot to compare sizes with, a passivation snapshots an instance only when its
/// tail is at least a tenth of the interval: passivating instances a few events past their
/// start costs no store write.
#[test]
fn a_short_tail_is_replayed_rather_than_snapshotted() {
    let store = Arc::new(MemoryStore::new());
    let host = inline(store.clone(), 100, 5);
    for _ in 0..9 {
        host.execute("short", AccountCommand::Deposit(1)).unwrap();
    }
    for _ in 0..10 {
        host.execute("long", AccountCommand::Deposit(1)).unwrap();
    }
    assert_eq!(host.passivate_all(), 2);
    assert!(
        versions(&*store, "short").is_empty(),
        "9 events: no snapshot"
    );
    assert_eq!(versions(&*store, "long"), [10], "10 events: a snapshot");
    assert_eq!(host.state("short").unwrap().balance, 9);
    assert_eq!(host.state("long").unwrap().balance, 10);
    // The short one replays its 9 events; the long one loads from its snapshot.
    assert_eq!(host.metrics().replayed_events, 9);
}

/// An instance that has a snapshot is snapshotted at passivation as soon as the events since
/// hold more bytes than the snapshot, however few they are: a small state is reloaded from a
/// snapshot rather than by replaying larger events.
#[test]
fn a_tail_larger_than_the_snapshot_is_snapshotted_at_passivation() {
    let store = Arc::new(MemoryStore::new());
    let host = inline(store.clone(), 100, 5);
    for _ in 0..100 {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert_eq!(versions(&*store, "a"), [100]);
    let stream = StreamId::new(Account::NAME, "a").unwrap();
    let snapshot_bytes = store.snapshots(&stream).unwrap()[0].payload.len();
    let event_bytes = es_runtime::codec::encode(&AccountEvent::Deposited { amount: 1 })
        .unwrap()
        .len();
    // The fewest events holding more bytes than the snapshot: fewer than a tenth of 100.
    let k = (snapshot_bytes / event_bytes + 1) as u64;
    assert!((2..10).contains(&k), "{snapshot_bytes} / {event_bytes}");

    for _ in 1..k {
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
    }
    assert!(host.passivate("a"));
    assert_eq!(
        versions(&*store, "a"),
        [100],
        "{} events: no snapshot",
        k - 1
    );
    // Reloaded, it replays those events (and counts their bytes again); one more tips it.
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    assert_eq!(host.metrics().replayed_events, k - 1);
    assert!(host.passivate("a"));
    assert_eq!(
        versions(&*store, "a"),
        [100, 100 + k],
        "{k} events: a snapshot"
    );
    assert_eq!(host.state("a").unwrap().balance, 100 + k);
    assert_eq!(
        host.metrics().replayed_events,
        k - 1,
        "nothing left to replay"
    );
}

/// An instance evicted to make room goes by the count alone (under churn, evictions come at
/// the rate of commands); the same tail passivated on request is snapshotted by size.
#[test]
fn an_eviction_does_not_snapshot_by_size() {
    let store = Arc::new(MemoryStore::new());
    let host = Host::<Account, _>::builder(store.clone())
        .snapshot_every(100)
        .snapshot_keep(5)
        .background_snapshots(false)
        .max_live(1)
        .shards(1)
        .build();
    for id in ["a", "b"] {
        for _ in 0..105 {
            host.execute(id, AccountCommand::Deposit(1)).unwrap();
        }
        assert_eq!(versions(&*store, id), [100]);
    }
    // "b" evicted "a" (5 events, more bytes than its snapshot) to make room: no snapshot.
    assert_eq!(host.metrics().passivations_lru, 1);
    assert_eq!(versions(&*store, "a"), [100]);
    assert!(host.passivate("b"));
    assert_eq!(versions(&*store, "b"), [100, 105]);
}

fn command() -> impl Strategy<Value = AccountCommand> {
    prop_oneof![
        (1..100u64).prop_map(AccountCommand::Deposit),
        (1..150u64).prop_map(AccountCommand::Withdraw),
        (1..50u64, 1..50u64).prop_map(|(a, b)| AccountCommand::DepositTwice(a, b)),
        Just(AccountCommand::Nothing),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any command sequence and interval, rehydrating from the latest snapshot plus the
    /// tail gives the state a full replay gives, and the state the live instance has.
    #[test]
    fn snapshot_plus_tail_equals_full_replay(
        commands in prop::collection::vec(command(), 0..80),
        every in 1..20u64,
        keep in 1..4usize,
        passivate_at in 0..80usize,
    ) {
        let store = Arc::new(MemoryStore::new());
        let host = inline(store.clone(), every, keep);
        for (i, c) in commands.into_iter().enumerate() {
            if i == passivate_at {
                host.passivate("p");
            }
            let _ = host.execute("p", c);
        }
        let live = host.read("p", |a, v| (a.clone(), v)).unwrap();
        let events = stream_events(&*store, "p");
        let full = replay(events.iter().map(|(_, e)| e.clone()));
        prop_assert_eq!(&live.0, &full);
        prop_assert_eq!(live.1, events.len() as u64);

        let fresh = inline(store.clone(), every, keep);
        let rebuilt = fresh.read("p", |a, v| (a.clone(), v)).unwrap();
        prop_assert_eq!(&rebuilt, &live);
        let stream = StreamId::new(Account::NAME, "p").unwrap();
        let snapshots = store.snapshots(&stream).unwrap();
        prop_assert!(snapshots.len() <= keep);
        prop_assert_eq!(fresh.metrics().snapshot_hits, u64::from(!snapshots.is_empty()));
        // Every kept snapshot, taken as the starting point, gives the same state.
        for s in snapshots {
            let mut state: Account = es_runtime::codec::decode(&s.payload).unwrap();
            for (_, e) in events.iter().filter(|(v, _)| *v > s.version) {
                state.apply(e.clone());
            }
            prop_assert_eq!(&state, &full);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With instances coming and going (a small live bound, explicit passivations), every
    /// state the host shows equals a full replay of its stream, and so does a fresh host's.
    #[test]
    fn passivations_and_evictions_keep_states_equal_to_a_full_replay(
        commands in prop::collection::vec((0..4u8, command()), 0..120),
        every in 1..20u64,
        max_live in 1..3usize,
        background in any::<bool>(),
        passivate_every in 1..10usize,
    ) {
        let store = Arc::new(MemoryStore::new());
        let host = Host::<Account, _>::builder(store.clone())
            .snapshot_every(every)
            .snapshot_keep(2)
            .background_snapshots(background)
            .max_live(max_live)
            .shards(1)
            .build();
        for (i, (id, c)) in commands.into_iter().enumerate() {
            if i % passivate_every == 0 {
                host.passivate(id);
            }
            let _ = host.execute(id, c);
        }
        let ids = ["0", "1", "2", "3"];
        let full = |id| replay(stream_events(&*store, id).into_iter().map(|(_, e)| e));
        for id in ids {
            prop_assert_eq!(host.state(id).unwrap(), full(id));
        }
        host.passivate_all();
        for id in ids {
            prop_assert_eq!(host.state(id).unwrap(), full(id));
        }
        host.flush_snapshots();
        let fresh = inline(store.clone(), every, 2);
        for id in ids {
            prop_assert_eq!(fresh.state(id).unwrap(), full(id));
        }
        // Every instance was passivated at its latest version, so nothing is left to replay.
        prop_assert_eq!(fresh.metrics().replayed_events, 0);
    }
}

crate::backends::over_every_backend!(
    a_batch_crossing_a_multiple_is_snapshotted,
    only_the_last_k_are_kept,
    zero_takes_no_snapshots,
    background_snapshots_are_written_and_flushed,
    the_newest_snapshot_of_the_hosts_state_version_is_used,
    a_long_replay_saves_a_snapshot,
);
