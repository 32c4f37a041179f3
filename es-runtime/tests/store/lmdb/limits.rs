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

#[test]
fn a_map_size_beyond_any_map_says_what_the_limit_is() {
    for (map, max) in [
        (usize::MAX, None),
        (usize::MAX, Some(usize::MAX)),
        (1 << 20, Some(usize::MAX)),
        (usize::MAX - 5, Some(usize::MAX - 5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = LmdbOptions::new().map_size(map);
        if let Some(max) = max {
            options = options.max_map_size(max);
        }
        match options.open(dir.path()) {
            Ok(store) => {
                // A map size over the maximum is the maximum.
                store.head_position().unwrap();
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !message.contains("page size") && message.contains("MiB"),
                    "map {map}, max {max:?}: {message}"
                );
            }
        }
    }
}

#[test]
fn opening_a_regular_file_says_it_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store");
    std::fs::write(&file, b"not a store").unwrap();
    let err = LmdbOptions::new().open(&file).unwrap_err();
    assert!(
        matches!(err, es_runtime::OpenError::NotADirectory { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a directory"), "{err}");
    let err = LmdbOptions::new().read_only(true).open(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn opening_a_directory_twice_in_one_process_says_it_is_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let _store = LmdbOptions::new().open(dir.path()).unwrap();
    let err = LmdbOptions::new().open(dir.path()).unwrap_err();
    assert!(
        matches!(err, es_runtime::OpenError::Storage { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("already open in this process") && !message.contains("different options"),
        "{message}"
    );
}
