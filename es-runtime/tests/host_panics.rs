//! A panic in domain code fails one command, drops one instance, and nothing else.

mod common;

use std::thread;

use common::{Account, AccountCommand, PANIC_ON_DEPOSIT_OF, stream_events};
use es_runtime::{ExecuteError, Host, LoadError, MemoryStore, Phase};

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
