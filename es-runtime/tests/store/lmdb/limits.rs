//! Limits reached under load: more readers at once than LMDB has reader slots.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use es_runtime::{EventStore, ExpectedVersion, Host, LmdbOptions, LmdbStore, NewEvent, StreamId};

use crate::common::{Account, AccountCommand};

#[test]
fn five_hundred_threads_reading_and_executing_at_once_all_succeed() {
    let store = Arc::new(LmdbStore::temporary(LmdbOptions::new()).unwrap());
    let seed = StreamId::new("log", 1).unwrap();
    store
        .append(
            &seed,
            ExpectedVersion::NoStream,
            (0..4)
                .map(|_| NewEvent::raw("Seeded", vec![0xc0]))
                .collect(),
        )
        .unwrap();
    let host = Host::<Account, _>::new(Arc::clone(&store));
    let failures = AtomicU64::new(0);
    let first_failure = std::sync::Mutex::new(None::<String>);
    let fail = |e: String| {
        failures.fetch_add(1, Ordering::Relaxed);
        first_failure.lock().unwrap().get_or_insert(e);
    };
    let barrier = std::sync::Barrier::new(500);
    std::thread::scope(|s| {
        for t in 0..500u64 {
            let (store, host, barrier, fail) = (&store, &host, &barrier, &fail);
            s.spawn(move || {
                barrier.wait();
                if t % 2 == 0 {
                    // Each read holds its transaction (and reader slot) for a while.
                    let read = store.read_all_with(0, &mut |_| {
                        std::thread::sleep(Duration::from_millis(1));
                        ControlFlow::Continue(())
                    });
                    if let Err(e) = read {
                        fail(format!("read: {e}"));
                    }
                } else if let Err(e) = host.execute(t % 50, AccountCommand::Deposit(1 + t)) {
                    fail(format!("execute: {e}"));
                }
            });
        }
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "first failure: {:?}",
        first_failure.lock().unwrap()
    );
}

#[test]
fn readers_beyond_the_slot_count_wait_for_a_slot() {
    // Four slots, sixteen readers holding theirs for a while: every read goes through.
    let store = LmdbStore::temporary(LmdbOptions::new().max_readers(4)).unwrap();
    let id = StreamId::new("log", 1).unwrap();
    store
        .append(
            &id,
            ExpectedVersion::NoStream,
            vec![NewEvent::raw("E", vec![0xc0])],
        )
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                store
                    .read_all_with(0, &mut |_| {
                        std::thread::sleep(Duration::from_millis(20));
                        ControlFlow::Continue(())
                    })
                    .unwrap();
            });
        }
    });
}
