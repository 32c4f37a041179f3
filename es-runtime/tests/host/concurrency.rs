//! Many threads on few aggregates, and two hosts on one store.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;

use common::{Account, AccountCommand, AccountEvent, BankError, Rng, replay, stream_events};
use es_runtime::{EventStore, ExecuteError, Host, Metadata, WithMetadata};

/// 8 threads × 10,000 random deposits and withdrawals over 10 shared accounts. The model is
/// built from what the host reported as accepted; at the end every balance matches it, every
/// stream's versions are exactly 1..=n with each version reported once, and replaying any
/// stream never overdraws.
fn eight_threads_ten_thousand_commands_ten_accounts<S: EventStore + 'static>(store: Arc<S>) {
    const THREADS: u64 = 8;
    const COMMANDS: u64 = 10_000;
    const ACCOUNTS: u64 = 10;

    let host = Host::<Account, _>::builder(store)
        .snapshot_every(50)
        .build();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let host = host.clone();
            let start = start.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                // Per account: (version, event) of every accepted command.
                let mut accepted: Vec<(u64, u64, AccountEvent)> = Vec::new();
                let mut rejected = 0u64;
                start.wait();
                for _ in 0..COMMANDS {
                    let account = rng.next() % ACCOUNTS;
                    let amount = rng.next() % 100 + 1;
                    let command = if rng.next().is_multiple_of(2) {
                        AccountCommand::Deposit(amount)
                    } else {
                        AccountCommand::Withdraw(amount)
                    };
                    match host.execute(account, command) {
                        Ok(done) => {
                            for e in done.events {
                                accepted.push((account, e.version, e.payload));
                            }
                        }
                        Err(ExecuteError::Rejected(BankError::InsufficientFunds { .. })) => {
                            rejected += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (accepted, rejected)
            })
        })
        .collect();

    let mut by_account: BTreeMap<u64, BTreeMap<u64, AccountEvent>> = BTreeMap::new();
    let mut rejected = 0;
    for w in workers {
        let (accepted, r) = w.join().unwrap();
        rejected += r;
        for (account, version, event) in accepted {
            let previous = by_account
                .entry(account)
                .or_default()
                .insert(version, event);
            assert!(
                previous.is_none(),
                "version {version} of account {account} reported twice"
            );
        }
    }
    assert!(rejected > 0, "the workload should hit some overdrafts");

    let mut total = 0;
    for account in 0..ACCOUNTS {
        let model = by_account.remove(&account).unwrap_or_default();
        total += model.len() as u64;
        let versions: Vec<u64> = model.keys().copied().collect();
        assert_eq!(
            versions,
            (1..=model.len() as u64).collect::<Vec<_>>(),
            "account {account}"
        );
        // Balance from the model, checking the order never overdraws.
        let expected = replay(model.into_values());
        let stored = stream_events(host.store(), &account.to_string());
        assert_eq!(
            stored.len() as u64,
            expected.deposits + expected.withdrawals
        );
        assert_eq!(replay(stored.into_iter().map(|(_, e)| e)), expected);
        assert_eq!(host.state(account).unwrap(), expected);
    }
    assert_eq!(total + rejected, THREADS * COMMANDS);
    let m = host.metrics();
    assert_eq!((m.conflicts, m.panics), (0, 0));
    assert_eq!(m.commands, THREADS * COMMANDS);
}

fn a_second_host_writing_the_stream_is_a_conflict_that_is_retried<S: EventStore + 'static>(
    store: Arc<S>,
) {
    let a = Host::<Account, _>::new(store.clone());
    let b = Host::<Account, _>::new(store.clone());
    a.execute("x", AccountCommand::Deposit(10)).unwrap();
    b.execute("x", AccountCommand::Withdraw(4)).unwrap(); // b loads version 1
    // `a` still believes the balance is 10 at version 1.
    let done = a.execute("x", AccountCommand::Withdraw(6)).unwrap();
    assert_eq!(done.version, 3);
    assert_eq!(a.state("x").unwrap().balance, 0);
    let m = a.metrics();
    assert_eq!((m.conflicts, m.retries), (1, 1));
    // Retried on the reloaded state: the domain decision sees the other host's write.
    let err = a.execute("x", AccountCommand::Withdraw(1)).unwrap_err();
    assert!(err.is_rejected());
}

/// The metadata given with a command is on every event it stores, also after a conflict made
/// the host run it again, for one event and for several.
fn metadata_survives_a_retry<S: EventStore + 'static>(store: Arc<S>) {
    let a = Host::<Account, _>::new(store.clone());
    let b = Host::<Account, _>::new(store.clone());
    let metadata = Metadata::default()
        .with_correlation_id(uuid::Uuid::now_v7())
        .with("user", "ada");
    a.execute("x", AccountCommand::Deposit(10)).unwrap();
    for (i, command) in [
        AccountCommand::Deposit(1),
        AccountCommand::DepositTwice(2, 3),
    ]
    .into_iter()
    .enumerate()
    {
        // `b` writes behind `a`'s back: `a`'s next command conflicts and is run again.
        b.execute("x", AccountCommand::Deposit(100)).unwrap();
        let done = a
            .execute("x", WithMetadata::new(command, metadata.clone()))
            .unwrap();
        assert_eq!(a.metrics().retries, i as u64 + 1);
        assert!(!done.events.is_empty());
        assert!(done.events.iter().all(|e| e.metadata == metadata));
        let stored = store
            .read_stream(
                &done.stream,
                done.events[0].version,
                (done.version + 1 - done.events[0].version) as usize,
            )
            .unwrap();
        assert_eq!(stored.len(), done.events.len());
        assert!(stored.iter().all(|e| e.metadata == metadata), "{stored:?}");
    }
}

/// A refusal or an empty result is only final if it was decided on the stream's latest state.
fn a_rejection_is_decided_on_the_latest_state<S: EventStore + 'static>(store: Arc<S>) {
    let a = Host::<Account, _>::new(store.clone());
    let b = Host::<Account, _>::new(store.clone());
    a.execute("x", AccountCommand::Deposit(1)).unwrap();
    b.execute("x", AccountCommand::Deposit(100)).unwrap();
    // `a` believes the balance is 1; the store says 101.
    let done = a.execute("x", AccountCommand::Withdraw(50)).unwrap();
    assert_eq!(done.version, 3);
    assert_eq!(a.metrics().retries, 1);
}

fn conflicts_past_the_retry_bound_fail_with_a_conflict_error<S: EventStore + 'static>(
    store: Arc<S>,
) {
    let a = Host::<Account, _>::builder(store.clone())
        .max_retries(0)
        .build();
    let b = Host::<Account, _>::new(store.clone());
    a.execute("x", AccountCommand::Deposit(10)).unwrap();
    b.execute("x", AccountCommand::Deposit(1)).unwrap();
    let err = a.execute("x", AccountCommand::Deposit(1)).unwrap_err();
    match &err {
        ExecuteError::Conflict { stream, attempts } => {
            assert_eq!((stream.as_str(), *attempts), ("account-x", 1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("account-x"), "{err}");
    // Nothing of the failed command was stored, and the host still works.
    assert_eq!(stream_events(&*store, "x").len(), 2);
    assert_eq!(
        a.execute("x", AccountCommand::Deposit(1)).unwrap().version,
        3
    );
    assert_eq!(a.state("x").unwrap().balance, 12);
}

/// Two hosts, two threads each, on the same accounts of one store (see `common`; the LMDB
/// store runs the same in `lmdb_concurrency`).
fn two_hosts_on_one_store_agree<S: EventStore + 'static>(store: Arc<S>) {
    common::two_hosts_on_one_store_agree(store);
}

crate::backends::over_every_backend!(
    eight_threads_ten_thousand_commands_ten_accounts,
    a_second_host_writing_the_stream_is_a_conflict_that_is_retried,
    metadata_survives_a_retry,
    a_rejection_is_decided_on_the_latest_state,
    conflicts_past_the_retry_bound_fail_with_a_conflict_error,
    two_hosts_on_one_store_agree,
);
