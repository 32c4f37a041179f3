//! A panic in domain code fails one command, drops one instance, and nothing else.

use crate::common;

use std::thread;

use common::{Account, AccountCommand, PANIC_ON_DEPOSIT_OF, stream_events};
use es_runtime::{EventStore, ExecuteError, Host, LoadError, MemoryStore, Phase};

#[test]
fn a_panic_in_handle_fails_that_command_only() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    host.execute("a", AccountCommand::Deposit(5)).unwrap();
    host.execute("b", AccountCommand::Deposit(7)).unwrap();

    let err = host.execute("a", AccountCommand::Explode).unwrap_err();
    match &err {
        ExecuteError::Panicked {
            stream,
            phase,
            message,
        } => {
            assert_eq!((stream.as_str(), *phase), ("account-a", Phase::Handle));
            assert!(message.contains("exploded"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    let m = host.metrics();
    assert_eq!((m.panics, m.rehydrations), (1, 2));
    // The instance was dropped: the next command rebuilds it from the store.
    assert_eq!(
        host.execute("a", AccountCommand::Deposit(1))
            .unwrap()
            .version,
        2
    );
    assert_eq!(host.metrics().rehydrations, 3);
    assert_eq!(host.state("a").unwrap().balance, 6);
    // The other instance was never touched.
    assert_eq!(
        host.execute("b", AccountCommand::Deposit(1))
            .unwrap()
            .version,
        2
    );
    assert_eq!(host.metrics().rehydrations, 3);
}

#[test]
fn a_panic_in_apply_after_the_append_leaves_no_half_applied_instance() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    host.execute("a", AccountCommand::Deposit(5)).unwrap();
    // The first event of the batch applies, the second panics.
    PANIC_ON_DEPOSIT_OF.set(Some(13));
    let err = host
        .execute("a", AccountCommand::DepositTwice(11, 13))
        .unwrap_err();
    PANIC_ON_DEPOSIT_OF.set(None);
    assert!(
        matches!(
            err,
            ExecuteError::Panicked {
                phase: Phase::Apply,
                ..
            }
        ),
        "{err:?}"
    );
    // Both events were stored; the instance that saw only one of them is gone.
    assert_eq!(stream_events(host.store(), "a").len(), 3);
    let state = host.state("a").unwrap();
    assert_eq!((state.balance, state.deposits), (29, 3));
    assert_eq!(host.version("a").unwrap(), 3);
}

#[test]
fn a_panic_while_rehydrating_is_a_load_error() {
    // Without snapshots, so that the passivation takes none and the reload replays the event.
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .snapshot_every(0)
        .build();
    host.execute("a", AccountCommand::Deposit(13)).unwrap();
    host.passivate("a");
    PANIC_ON_DEPOSIT_OF.set(Some(13));
    let err = host.execute("a", AccountCommand::Deposit(1)).unwrap_err();
    PANIC_ON_DEPOSIT_OF.set(None);
    match err {
        ExecuteError::Load(LoadError::Panicked {
            stream, version, ..
        }) => {
            assert_eq!((stream.as_str(), version), ("account-a", 1));
        }
        other => panic!("expected a load panic, got {other:?}"),
    }
    assert_eq!(
        host.execute("a", AccountCommand::Deposit(1))
            .unwrap()
            .version,
        2
    );
}

/// Threads panicking on some aggregates while others work: every good command lands.
#[test]
fn the_host_carries_on_under_panics() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let host = host.clone();
            thread::spawn(move || {
                for i in 0..300u64 {
                    let id = (t + i) % 6;
                    if i % 10 == 0 {
                        let err = host.execute(id, AccountCommand::Explode).unwrap_err();
                        assert!(matches!(err, ExecuteError::Panicked { .. }));
                    } else {
                        host.execute(id, AccountCommand::Deposit(1)).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total: u64 = (0..6).map(|id| host.state(id).unwrap().balance).sum();
    assert_eq!(total, 4 * 270);
    assert_eq!(host.metrics().panics, 4 * 30);
}

/// An aggregate whose `handle_with` passes on events before it refuses or panics.
mod half_decided {
    use es_runtime::{Aggregate, DomainEvent};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub(crate) struct Tally(pub(crate) u64);

    #[derive(Debug, Clone)]
    pub(crate) enum Command {
        Add(u64),
        AddThenRefuse,
        AddThenPanic,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Added(pub(crate) u64);

    impl DomainEvent for Added {
        const TYPES: &'static [&'static str] = &["Added"];
        fn event_type(&self) -> &'static str {
            "Added"
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("refused after deciding")]
    pub(crate) struct Refused;

    impl Aggregate for Tally {
        const NAME: &'static str = "tally";
        type Command = Command;
        type Event = Added;
        type Error = Refused;
        type Services = ();
        fn handle(&self, command: Command) -> Result<Vec<Added>, Refused> {
            let mut events = Vec::new();
            self.handle_with(command, &mut |e| events.push(e))?;
            Ok(events)
        }
        fn handle_with(
            &self,
            command: Command,
            emit: &mut impl FnMut(Added),
        ) -> Result<(), Refused> {
            match command {
                Command::Add(n) => emit(Added(n)),
                Command::AddThenRefuse => {
                    emit(Added(1));
                    emit(Added(2));
                    return Err(Refused);
                }
                Command::AddThenPanic => {
                    emit(Added(1));
                    panic!("panicked after deciding");
                }
            }
            Ok(())
        }
        fn apply(&mut self, Added(n): Added) {
            self.0 += n;
        }
    }
}

/// Events passed on by `handle_with` before it refuses or panics are dropped: nothing is
/// stored, and the aggregate carries on from where it was.
#[test]
fn events_decided_before_a_refusal_or_a_panic_are_not_stored() {
    use half_decided::{Command, Tally};
    let host = Host::<Tally, _>::new(MemoryStore::new());
    host.execute("t", Command::Add(5)).unwrap();

    let err = host.execute("t", Command::AddThenRefuse).unwrap_err();
    assert!(err.is_rejected(), "{err:?}");
    let err = host.execute("t", Command::AddThenPanic).unwrap_err();
    assert!(
        matches!(
            err,
            ExecuteError::Panicked {
                phase: Phase::Handle,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(host.store().head_position().unwrap(), 1);
    let done = host.execute("t", Command::Add(2)).unwrap();
    assert_eq!((done.version, done.events.len()), (2, 1));
    assert_eq!(host.read("t", |tally, _| tally.0).unwrap(), 7);
    assert_eq!(host.metrics().panics, 1);
}

/// An aggregate whose serde code panics on request: its state refuses to be encoded while
/// `armed`, and to be decoded while `DECODE_PANICS` is set on the loading thread; an event
/// `Added(666)` refuses to be encoded. A `fused` state panics when dropped while
/// `DROP_PANICS_LEFT` is above zero (each such drop takes one), and the empty state refuses to
/// be made while `DEFAULT_PANICS` is set on the thread.
mod touchy {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};

    use es_runtime::{Aggregate, DomainEvent};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    thread_local! {
        pub(crate) static DECODE_PANICS: Cell<bool> = const { Cell::new(false) };
        pub(crate) static DEFAULT_PANICS: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) static DROP_PANICS_LEFT: AtomicU32 = AtomicU32::new(0);

    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Touchy {
        pub(crate) total: u64,
        pub(crate) armed: bool,
        pub(crate) fused: bool,
    }

    impl Default for Touchy {
        fn default() -> Self {
            assert!(!DEFAULT_PANICS.get(), "the empty state refuses to be made");
            Touchy {
                total: 0,
                armed: false,
                fused: false,
            }
        }
    }

    impl Drop for Touchy {
        fn drop(&mut self) {
            let take = |left: u32| left.checked_sub(1);
            if self.fused
                && DROP_PANICS_LEFT
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                    .is_ok()
            {
                panic!("a fused state blew up as it was dropped");
            }
        }
    }

    impl Serialize for Touchy {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            assert!(!self.armed, "an armed state refuses to be saved");
            (self.total, self.armed, self.fused).serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Touchy {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            assert!(!DECODE_PANICS.get(), "the state refuses to load");
            let (total, armed, fused) = <(u64, bool, bool)>::deserialize(d)?;
            Ok(Touchy {
                total,
                armed,
                fused,
            })
        }
    }

    #[derive(Debug, Clone)]
    pub(crate) enum TouchyCommand {
        Add(u64),
        Arm,
        Fuse,
    }

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub(crate) enum TouchyEvent {
        Added(u64),
        Armed,
        Fused,
    }

    impl Serialize for TouchyEvent {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                TouchyEvent::Added(666) => panic!("event 666 refuses to be encoded"),
                TouchyEvent::Added(n) => s.serialize_newtype_variant("TouchyEvent", 0, "Added", n),
                TouchyEvent::Armed => s.serialize_unit_variant("TouchyEvent", 1, "Armed"),
                TouchyEvent::Fused => s.serialize_unit_variant("TouchyEvent", 2, "Fused"),
            }
        }
    }

    impl DomainEvent for TouchyEvent {
        const TYPES: &'static [&'static str] = &["Added", "Armed", "Fused"];
        fn event_type(&self) -> &'static str {
            match self {
                TouchyEvent::Added(_) => "Added",
                TouchyEvent::Armed => "Armed",
                TouchyEvent::Fused => "Fused",
            }
        }
    }

    impl Aggregate for Touchy {
        const NAME: &'static str = "touchy";
        type Command = TouchyCommand;
        type Event = TouchyEvent;
        type Error = std::convert::Infallible;
        type Services = ();

        fn handle(&self, command: TouchyCommand) -> Result<Vec<TouchyEvent>, Self::Error> {
            Ok(vec![match command {
                TouchyCommand::Add(n) => TouchyEvent::Added(n),
                TouchyCommand::Arm => TouchyEvent::Armed,
                TouchyCommand::Fuse => TouchyEvent::Fused,
            }])
        }

        fn apply(&mut self, event: TouchyEvent) {
            match event {
                TouchyEvent::Added(n) => self.total += n,
                TouchyEvent::Armed => self.armed = true,
                TouchyEvent::Fused => self.fused = true,
            }
        }
    }
}

use std::sync::atomic::Ordering;
use std::time::Duration;

use touchy::{DECODE_PANICS, DEFAULT_PANICS, DROP_PANICS_LEFT, Touchy, TouchyCommand};

#[test]
fn a_panic_encoding_an_event_fails_that_command_and_stores_nothing() {
    let host = Host::<Touchy, _>::new(MemoryStore::new());
    host.execute("a", TouchyCommand::Add(1)).unwrap();
    let err = host.execute("a", TouchyCommand::Add(666)).unwrap_err();
    match &err {
        ExecuteError::Panicked { phase, message, .. } => {
            assert_eq!(*phase, Phase::Encode);
            assert!(message.contains("666"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("encoding the command's events"),
        "{err}"
    );
    assert_eq!(host.metrics().panics, 1);
    assert_eq!(host.version("a").unwrap(), 1, "nothing was stored");
    assert_eq!(host.execute("a", TouchyCommand::Add(2)).unwrap().version, 2);
    assert_eq!(host.state("a").unwrap().total, 3);
}

/// The state's `Serialize` panicking costs the snapshot only, on whichever thread takes it:
/// the command that reaches the interval, a command on another aggregate that evicts this
/// one, and the idle sweeper, which goes on sweeping.
#[test]
fn a_panic_encoding_a_snapshot_costs_that_snapshot_only() {
    // Due at every event: the command's own snapshot.
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(1)
        .build();
    let done = host.execute("a", TouchyCommand::Arm).unwrap();
    assert_eq!(done.version, 1);
    assert_eq!(host.metrics().snapshot_failures, 1);
    assert!(host.state("a").unwrap().armed);

    // Evicted by a command on another aggregate, with one live instance.
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(1000)
        .max_live(1)
        .shards(1)
        .build();
    for _ in 0..200 {
        host.execute("a", TouchyCommand::Add(1)).unwrap();
    }
    host.execute("a", TouchyCommand::Arm).unwrap();
    host.execute("b", TouchyCommand::Add(5)).unwrap();
    let m = host.metrics();
    assert_eq!(
        (m.passivations_lru, m.snapshot_failures, m.panics),
        (1, 1, 0)
    );
    assert_eq!(host.state("a").unwrap().total, 200);

    // Passivated by the idle sweeper, twice: the second round still runs.
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(1000)
        .idle_timeout(Duration::from_millis(20))
        .sweep_interval(Duration::from_millis(5))
        .build();
    for _ in 0..200 {
        host.execute("a", TouchyCommand::Add(1)).unwrap();
    }
    host.execute("a", TouchyCommand::Arm).unwrap();
    wait_for("the sweeper to fail a snapshot of `a`", || {
        host.metrics().snapshot_failures == 1
    });
    host.execute("b", TouchyCommand::Add(1)).unwrap();
    wait_for("the sweeper to passivate `b`", || {
        host.metrics().passivations_idle == 2
    });
    assert_eq!(host.state("a").unwrap().total, 200);
}

/// Polls `done` until it holds, failing after 20 seconds.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `f` on another thread and returns its result, failing if it takes 20 seconds: a
/// command that spins forever fails the test instead of hanging it.
fn within_time<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("finished in time")
}

/// A state whose `Drop` panics as it is passivated, evicted by another aggregate's command or
/// dropped by the idle sweeper: the other command succeeds, the sweeper goes on, and the
/// aggregate is reloaded on its next command (its slot left the cache before the drop).
#[test]
fn a_panic_dropping_a_passivated_state_costs_nothing_else() {
    // Evicted to make room for `b`.
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(0)
        .max_live(1)
        .shards(1)
        .build();
    host.execute("a", TouchyCommand::Add(1)).unwrap();
    host.execute("a", TouchyCommand::Fuse).unwrap();
    DROP_PANICS_LEFT.store(1, Ordering::SeqCst);
    host.execute("b", TouchyCommand::Add(5)).unwrap();
    assert_eq!(
        DROP_PANICS_LEFT.load(Ordering::SeqCst),
        0,
        "the drop panicked"
    );
    let m = host.metrics();
    assert_eq!((m.passivations_lru, m.panics, m.live), (1, 1, 1));
    let again = host.clone();
    let done = within_time(move || again.execute("a", TouchyCommand::Add(1)).unwrap());
    assert_eq!(done.version, 3);
    assert_eq!(host.metrics().rehydrations, 3);

    // Dropped by the idle sweeper.
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(0)
        .idle_timeout(Duration::from_millis(20))
        .sweep_interval(Duration::from_millis(5))
        .build();
    host.execute("c", TouchyCommand::Fuse).unwrap();
    DROP_PANICS_LEFT.store(1, Ordering::SeqCst);
    wait_for("the sweeper to drop `c`", || {
        DROP_PANICS_LEFT.load(Ordering::SeqCst) == 0 && host.metrics().live == 0
    });
    host.execute("d", TouchyCommand::Add(1)).unwrap();
    wait_for("the sweeper to passivate `d`", || {
        host.metrics().passivations_idle == 2
    });
    let again = host.clone();
    let done = within_time(move || again.execute("c", TouchyCommand::Add(1)).unwrap());
    assert_eq!(done.version, 2);
    assert_eq!(host.metrics().panics, 1);
}

/// The empty state's `Default` panicking fails the load, as a `LoadError` at version 0.
#[test]
fn a_panic_making_the_empty_state_is_a_load_error() {
    let host = Host::<Touchy, _>::new(MemoryStore::new());
    DEFAULT_PANICS.set(true);
    let err = host.execute("a", TouchyCommand::Add(1)).unwrap_err();
    DEFAULT_PANICS.set(false);
    match err {
        ExecuteError::Load(LoadError::Panicked {
            stream,
            version,
            message,
        }) => {
            assert_eq!((stream.as_str(), version), ("touchy-a", 0));
            assert!(message.contains("empty state"), "{message}");
        }
        other => panic!("expected a load panic, got {other:?}"),
    }
    assert_eq!(host.metrics().panics, 1);
    assert_eq!(host.execute("a", TouchyCommand::Add(1)).unwrap().version, 1);
}

/// A snapshot whose decoding panics is ignored like one that does not decode: the instance
/// is rebuilt from the events.
#[test]
fn a_panic_decoding_a_snapshot_falls_back_to_the_events() {
    let host = Host::<Touchy, _>::builder(MemoryStore::new())
        .snapshot_every(10)
        .background_snapshots(false)
        .build();
    for _ in 0..25 {
        host.execute("a", TouchyCommand::Add(2)).unwrap();
    }
    host.passivate("a");
    assert!(
        host.store()
            .load_snapshot(&es_runtime::StreamId::new("touchy", "a").unwrap())
            .unwrap()
            .is_some()
    );
    DECODE_PANICS.set(true);
    let state = host.state("a");
    DECODE_PANICS.set(false);
    assert_eq!(state.unwrap().total, 50);
    let m = host.metrics();
    // Both kept snapshots (20 and 25) were tried.
    assert_eq!(
        (m.snapshot_hits, m.snapshots_corrupt, m.replayed_events),
        (0, 2, 25)
    );
}
