//! The host's routing, results, errors, metadata and passivation.

use crate::common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{Account, AccountCommand, AccountEvent, BankError, replay, stream_events};
use es_runtime::{
    EventStore, ExecuteError, Host, LoadError, MemoryStore, Metadata, StreamId, WithMetadata,
};

fn host() -> Host<Account, MemoryStore> {
    Host::new(MemoryStore::new())
}

fn execute_returns_the_recorded_events_and_version<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::new(store);
    let done = host.execute("a", AccountCommand::Deposit(10)).unwrap();
    assert_eq!(done.version, 1);
    assert_eq!(done.stream.as_str(), "account-a");
    assert_eq!(done.events.len(), 1);
    let e = &done.events[0];
    assert_eq!(e.payload, AccountEvent::Deposited { amount: 10 });
    assert_eq!(
        (e.version, e.stream.as_str(), &*e.event_type),
        (1, "account-a", "Deposited")
    );

    let done = host
        .execute("a", AccountCommand::DepositTwice(1, 2))
        .unwrap();
    assert_eq!(done.version, 3);
    let versions: Vec<u64> = done.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(done.events[1].position, done.events[0].position + 1);

    // The events returned are the events stored.
    let stored = host.store().read_stream(&done.stream, 2, 2).unwrap();
    assert_eq!(stored[0].event_id, done.events[0].event_id);
    assert_eq!(stored[1].timestamp, done.events[1].timestamp);
    assert_eq!(host.state("a").unwrap().balance, 13);
}

fn rejected_commands_store_nothing<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::new(store);
    host.execute("a", AccountCommand::Deposit(5)).unwrap();
    let err = host.execute("a", AccountCommand::Withdraw(6)).unwrap_err();
    assert_eq!(
        err.rejection(),
        Some(&BankError::InsufficientFunds {
            balance: 5,
            requested: 6
        })
    );
    assert!(err.to_string().contains("insufficient funds"), "{err}");
    assert_eq!(host.version("a").unwrap(), 1);
    assert_eq!(stream_events(host.store(), "a").len(), 1);
}

#[test]
fn a_command_emitting_nothing_keeps_the_version() {
    let host = host();
    host.execute("a", AccountCommand::Deposit(5)).unwrap();
    let done = host.execute("a", AccountCommand::Nothing).unwrap();
    assert_eq!((done.version, done.events.len()), (1, 0));
}

fn metadata_is_recorded_on_every_event<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::new(store);
    let correlation = uuid::Uuid::now_v7();
    let metadata = Metadata::default()
        .with_correlation_id(correlation)
        .with("user", "ada");
    let done = host
        .execute(
            "a",
            WithMetadata::new(AccountCommand::DepositTwice(1, 1), metadata.clone()),
        )
        .unwrap();
    assert!(done.events.iter().all(|e| e.metadata == metadata));
    let stored = host.store().read_stream(&done.stream, 1, 2).unwrap();
    assert!(stored.iter().all(|e| e.metadata == metadata));
}

#[test]
fn execute_and_read_sees_the_new_state() {
    let host = host();
    let (done, balance) = host
        .execute_and_read("a", AccountCommand::Deposit(7), |a| a.balance)
        .unwrap();
    assert_eq!((done.version, balance), (1, 7));
}

fn an_unknown_aggregate_reads_as_default<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::new(store);
    assert_eq!(host.state("nobody").unwrap(), Account::default());
    assert_eq!(host.version("nobody").unwrap(), 0);
    assert!(stream_events(host.store(), "nobody").is_empty());
}

#[test]
fn invalid_ids_are_typed_errors() {
    let host = host();
    let long = "x".repeat(StreamId::MAX_LEN);
    let err = host.execute(&long, AccountCommand::Deposit(1)).unwrap_err();
    assert!(
        matches!(err, ExecuteError::Load(LoadError::InvalidStreamId(_))),
        "{err:?}"
    );
    let err = host.execute("", AccountCommand::Deposit(1)).unwrap_err();
    assert!(
        matches!(err, ExecuteError::Load(LoadError::InvalidStreamId(_))),
        "{err:?}"
    );
    let err = host.state("bad\nid").unwrap_err();
    assert!(matches!(err, LoadError::InvalidStreamId(_)), "{err:?}");
    // Nothing was left behind for them.
    assert_eq!(host.metrics().live, 0);
}

#[test]
fn ids_of_any_display_type_route_to_the_same_stream() {
    let host = host();
    host.execute(42u64, AccountCommand::Deposit(1)).unwrap();
    host.execute("42", AccountCommand::Deposit(1)).unwrap();
    host.execute(String::from("42"), AccountCommand::Deposit(1))
        .unwrap();
    assert_eq!(host.state(42).unwrap().balance, 3);
    assert_eq!(host.metrics().rehydrations, 1);
}

fn a_passivated_instance_comes_back_identical<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::builder(store).snapshot_every(7).build();
    for i in 1..=50u64 {
        let cmd = if i % 3 == 0 {
            AccountCommand::Withdraw(i / 2)
        } else {
            AccountCommand::Deposit(i)
        };
        host.execute("a", cmd).unwrap();
    }
    let before = host.read("a", |a, v| (a.clone(), v)).unwrap();
    assert!(host.passivate("a"));
    assert!(!host.passivate("a"));
    let m = host.metrics();
    assert_eq!((m.live, m.passivations_manual, m.passivations()), (0, 1, 1));
    host.flush_snapshots();
    let after = host.read("a", |a, v| (a.clone(), v)).unwrap();
    assert_eq!(before, after);
    assert_eq!(host.metrics().snapshot_hits, 1);
    // And it carries on from there.
    assert_eq!(
        host.execute("a", AccountCommand::Deposit(1))
            .unwrap()
            .version,
        before.1 + 1
    );
}

#[test]
fn idle_instances_are_passivated() {
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .idle_timeout(Duration::from_millis(400))
        .sweep_interval(Duration::ZERO)
        .build();
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    host.execute("b", AccountCommand::Deposit(1)).unwrap();
    assert_eq!(host.passivate_idle(), 0);
    thread::sleep(Duration::from_millis(250));
    // Used again: its idle time starts over; `b` is not used.
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    thread::sleep(Duration::from_millis(250));
    assert_eq!(host.passivate_idle(), 1);
    let m = host.metrics();
    assert_eq!((m.live, m.passivations_idle), (1, 1));
    assert_eq!(host.state("b").unwrap().balance, 1);
}

/// The sweeper stamps uses from a clock it advances once a round; still, no instance is
/// passivated before it has been idle for the whole timeout. Eight instances, used 20 ms apart
/// so that their uses fall at every point of a 150 ms round, are watched until all are gone.
#[test]
fn the_sweeper_never_passivates_an_instance_early() {
    let idle = Duration::from_millis(200);
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .idle_timeout(idle)
        .sweep_interval(Duration::from_millis(150))
        .build();
    let mut uses = Vec::new();
    for id in 0..8 {
        // Before the command: its use is no earlier.
        uses.push(std::time::Instant::now());
        host.execute(id, AccountCommand::Deposit(1)).unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let live = host.metrics().live;
        let now = std::time::Instant::now();
        // Idle for less than the timeout at `now`, so certainly when `live` was read.
        let must_live = uses.iter().filter(|&&used| now < used + idle).count() as u64;
        assert!(
            live >= must_live,
            "{live} live, but {must_live} were used less than {idle:?} ago"
        );
        if live == 0 {
            break;
        }
        assert!(now < deadline, "{:?}", host.metrics());
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(host.metrics().passivations_idle, 8);
}

#[test]
fn the_background_sweeper_passivates_idle_instances() {
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .idle_timeout(Duration::from_millis(50))
        .sweep_interval(Duration::from_millis(10))
        .build();
    for id in 0..10 {
        host.execute(id, AccountCommand::Deposit(1)).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while host.metrics().live > 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", host.metrics());
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(host.metrics().passivations_idle, 10);
}

#[test]
fn the_live_bound_evicts_the_least_recently_used() {
    // One shard, so the order is exact.
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .max_live(3)
        .shards(1)
        .build();
    for id in ["a", "b", "c"] {
        host.execute(id, AccountCommand::Deposit(1)).unwrap();
    }
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    host.execute("d", AccountCommand::Deposit(1)).unwrap(); // evicts b
    let m = host.metrics();
    assert_eq!((m.live, m.passivations_lru, m.rehydrations), (3, 1, 4));
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    host.execute("c", AccountCommand::Deposit(1)).unwrap();
    assert_eq!(host.metrics().rehydrations, 4);
    host.execute("b", AccountCommand::Deposit(1)).unwrap(); // back from the store; evicts d
    let m = host.metrics();
    assert_eq!((m.live, m.passivations_lru, m.rehydrations), (3, 2, 5));
    assert_eq!(host.state("b").unwrap().balance, 2);
}

/// A passivation waiting for a busy instance holds no lock that the busy command may need:
/// here the command (a `read` closure) routes a command to another aggregate of the same
/// shard while `passivate` and then `passivate_all` wait for it.
#[test]
fn passivation_waiting_for_a_busy_instance_lets_it_route_commands() {
    for all in [false, true] {
        let host = Host::<Account, _>::builder(MemoryStore::new())
            .shards(1)
            .build();
        host.execute("a", AccountCommand::Deposit(1)).unwrap();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let reader = {
            let host = host.clone();
            thread::spawn(move || {
                let r = host.read("a", |a, _| {
                    entered_tx.send(()).unwrap();
                    // Give the passivation time to start waiting for this instance.
                    thread::sleep(Duration::from_millis(100));
                    host.execute("b", AccountCommand::Deposit(2)).unwrap();
                    a.balance
                });
                done_tx.send(r.unwrap()).unwrap();
            })
        };
        entered.recv().unwrap();
        let passivator = {
            let host = host.clone();
            thread::spawn(move || {
                if all {
                    host.passivate_all()
                } else {
                    usize::from(host.passivate("a"))
                }
            })
        };
        // Threads that deadlock are left behind: the test fails instead of hanging.
        let balance = done
            .recv_timeout(Duration::from_secs(20))
            .expect("the read routed its command while the passivation waited");
        assert_eq!(balance, 1);
        reader.join().unwrap();
        let passivated = passivator.join().unwrap();
        assert!(passivated >= 1, "`a` was passivated once the read ended");
        assert_eq!(host.state("a").unwrap().balance, 1);
        assert_eq!(host.state("b").unwrap().balance, 2);
    }
}

/// Commands racing with passivation are neither lost nor run on stale state.
fn commands_racing_passivation_are_not_lost<S: EventStore + 'static>(store: Arc<S>) {
    let host = Host::<Account, _>::builder(store)
        .max_live(2)
        .shards(1)
        .build();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let passivator = {
        let host = host.clone();
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                host.passivate("shared");
                if n.is_multiple_of(8) {
                    host.passivate_all();
                }
                n += 1;
                thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let host = host.clone();
            thread::spawn(move || {
                let mut versions = Vec::new();
                for i in 0..500u64 {
                    let done = host.execute("shared", AccountCommand::Deposit(1)).unwrap();
                    versions.push(done.version);
                    // Other ids push `shared` out of the two live slots.
                    host.execute(format!("t{t}-{}", i % 3), AccountCommand::Deposit(1))
                        .unwrap();
                }
                versions
            })
        })
        .collect();
    let mut versions: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    passivator.join().unwrap();
    versions.sort_unstable();
    assert_eq!(versions, (1..=2000).collect::<Vec<_>>());
    let events = stream_events(host.store(), "shared");
    assert_eq!(replay(events.into_iter().map(|(_, e)| e)).balance, 2000);
    assert_eq!(host.state("shared").unwrap().balance, 2000);
    assert_eq!(
        host.metrics().conflicts,
        0,
        "one host never conflicts with itself"
    );
}

#[test]
fn metrics_count_commands() {
    let host = host();
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    host.execute("a", AccountCommand::Withdraw(9)).unwrap_err();
    let m = host.metrics();
    assert_eq!((m.commands, m.live, m.rehydrations), (2, 1, 1));
    assert!(format!("{host:?}").contains("account"));
}

/// An instance that is in use is never evicted to make room: the shard goes over its bound
/// until the next insert finds an idle one.
#[test]
fn a_busy_instance_is_not_evicted() {
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .max_live(1)
        .build();
    host.execute("a", AccountCommand::Deposit(1)).unwrap();
    let balance = host
        .read("a", |a, _| {
            // While `a` is locked here, another thread needs a slot.
            thread::scope(|s| {
                s.spawn(|| host.execute("b", AccountCommand::Deposit(1)).unwrap())
                    .join()
                    .unwrap();
            });
            assert_eq!(host.metrics().live, 2);
            a.balance
        })
        .unwrap();
    assert_eq!(balance, 1);
    host.execute("c", AccountCommand::Deposit(1)).unwrap();
    let m = host.metrics();
    assert_eq!((m.live, m.passivations_lru), (1, 2));
    assert_eq!(host.state("a").unwrap().balance, 1);
}

crate::backends::over_every_backend!(
    execute_returns_the_recorded_events_and_version,
    rejected_commands_store_nothing,
    metadata_is_recorded_on_every_event,
    an_unknown_aggregate_reads_as_default,
    a_passivated_instance_comes_back_identical,
    commands_racing_passivation_are_not_lost,
);
