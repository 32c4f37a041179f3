//! A panic in domain code fails one command, drops one instance, and nothing else.

mod common;

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
