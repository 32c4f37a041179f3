//! The LMDB map grows when full, readers keep reading while it does, and the configured
//! maximum turns into a clear `StoreFull` error that loses nothing acknowledged. A durable
//! store writes zeros ahead of its data, so that its commits do not grow the data file.

use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use es_runtime::{
    AppendError, Durability, EventStore, ExpectedVersion, LmdbOptions, NewEvent, Snapshot,
    StreamId, WriteError,
};

const MIB: usize = 1 << 20;

fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut p = n.to_be_bytes().to_vec();
    p.resize(len, (n % 251) as u8);
    p
}

#[test]
fn the_map_grows_under_concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbOptions::new()
        .map_size(MIB)
        .max_map_size(256 * MIB)
        .open(dir.path())
        .unwrap();
    assert_eq!(store.map_size(), MIB);
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 300;
    let done = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let mut last = 0;
                store
                    .read_all_with(1, &mut |e| {
                        assert_eq!(e.position, last + 1);
                        last = e.position;
                        // Nested reads while a resize may be waiting must not deadlock.
                        if e.position % 500 == 0 {
                            store.head_position().unwrap();
                        }
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                reads += 1;
            }
            reads
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let stream = StreamId::new("grow", t).unwrap();
                    for i in 0..PER_THREAD {
                        let batch = vec![NewEvent::raw("Big", payload(i, 20_000))];
                        store
                            .append(&stream, ExpectedVersion::Exact(i), batch)
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(store.map_size() >= 16 * MIB, "grew to {}", store.map_size());
    assert!(reads > 0);
    for t in 0..THREADS {
        let events = store
            .read_stream(&StreamId::new("grow", t).unwrap(), 1, usize::MAX)
            .unwrap();
        assert_eq!(events.len() as u64, PER_THREAD);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.payload, payload(i as u64, 20_000));
        }
    }
    // A reopened store starts at least as large as its data.
    drop(store);
    let data = std::fs::metadata(dir.path().join("data.mdb"))
        .unwrap()
        .len();
    let store = LmdbOptions::new().map_size(MIB).open(dir.path()).unwrap();
    assert!(store.map_size() as u64 >= data);
    assert_eq!(store.head_position().unwrap(), THREADS * PER_THREAD);
}

#[test]
fn beyond_the_maximum_appends_fail_with_store_full_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4 * MIB;
    let store = LmdbOptions::new()
        .map_size(MIB)
        .max_map_size(max)
        .open(dir.path())
        .unwrap();
    let stream = StreamId::new("full", 1).unwrap();
    let mut acknowledged = 0u64;
    let err = loop {
        let batch = vec![NewEvent::raw("Big", payload(acknowledged, 50_000))];
        match store.append(&stream, ExpectedVersion::Exact(acknowledged), batch) {
            Ok(_) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 1000, "the store never filled up");
    };
    match &err {
        AppendError::StoreFull { stream: s, limit } => {
            assert_eq!(s, "full-1");
            assert_eq!(*limit, max as u64);
        }
        other => panic!("expected StoreFull, got {other:?}"),
    }
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(store.map_size(), max);
    assert!(acknowledged > 10);
    // Small writes may still fit; big ones keep failing clearly.
    let snapshot = Snapshot {
        version: 1,
        state_version: 1,
        payload: vec![0; 8 * MIB],
    };
    assert!(matches!(
        store.save_snapshot(&stream, snapshot, 1),
        Err(WriteError::StoreFull { .. })
    ));
    drop(store);
    let store = LmdbOptions::new()
        .max_map_size(max)
        .open(dir.path())
        .unwrap();
    let events = store.read_stream(&stream, 1, usize::MAX).unwrap();
    assert_eq!(events.len() as u64, acknowledged);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.payload == payload(i as u64, 50_000))
    );
}

#[test]
fn in_a_full_group_each_append_that_fits_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbOptions::new()
        .map_size(MIB)
        .max_map_size(2 * MIB)
        .open(dir.path())
        .unwrap();
    // Many threads at once: groups form, the big appends overflow the map, the small ones fit.
    let outcomes: Vec<(bool, Result<_, AppendError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16u64)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    let big = t % 2 == 0;
                    let len = if big { 900_000 } else { 100 };
                    let stream = StreamId::new("mixed", t).unwrap();
                    let r = store.append(
                        &stream,
                        ExpectedVersion::NoStream,
                        vec![NewEvent::raw("E", payload(t, len))],
                    );
                    (big, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (big, r) in &outcomes {
        match r {
            Ok(_) => {}
            Err(AppendError::StoreFull { .. }) => assert!(big, "a small append failed"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let ok = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
    let log = store.read_all(1, usize::MAX).unwrap();
    assert_eq!(log.len(), ok, "exactly the acknowledged appends are stored");
}

/// A full disk is a clear error and loses nothing acknowledged. Needs a small file system:
/// `ES_SMALL_FS=/mnt/small` (e.g. `mount -t tmpfs -o size=3m tmpfs /mnt/small`); skipped
/// without it.
#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let Some(root) = std::env::var_os("ES_SMALL_FS") else {
        return;
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    let store = LmdbOptions::new().map_size(MIB).open(dir.path()).unwrap();
    let stream = StreamId::new("disk", 1).unwrap();
    let mut acknowledged = 0u64;
    let err = loop {
        let batch = vec![NewEvent::raw("Big", payload(acknowledged, 50_000))];
        match store.append(&stream, ExpectedVersion::Exact(acknowledged), batch) {
            Ok(_) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 100_000, "the disk never filled up");
    };
    let message = err.to_string();
    let _ = writeln!(
        std::io::stderr(),
        "disk full after {acknowledged} appends: {message}"
    );
    match &err {
        AppendError::Storage { stream: s, source } => {
            assert_eq!(s, "disk-1");
            assert!(source.to_string().contains("disk is full"), "{source}");
        }
        other => panic!("expected a Storage error, got {other:?}"),
    }
    drop(store);
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    let events = store.read_stream(&stream, 1, usize::MAX).unwrap();
    assert_eq!(events.len() as u64, acknowledged);
}

fn data_file_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("data.mdb")).unwrap().len()
}

/// Appends `commits` one-event commits of 1 KB to `stream`, from version `from`.
fn append_kb(store: &es_runtime::LmdbStore, stream: &StreamId, from: u64, commits: u64) {
    for v in from..from + commits {
        let event = NewEvent::raw("Kb", payload(v, 1000));
        store
            .append(stream, ExpectedVersion::Exact(v), vec![event])
            .unwrap();
    }
}

#[test]
#[cfg(target_os = "linux")]
fn durable_commits_write_inside_the_data_file_and_the_zeros_ahead_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new("ahead", 1).unwrap();
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    append_kb(&store, &stream, 0, 1);
    // The first commit wrote zeros ahead: an LMDB file with one event takes a few pages.
    let ahead = data_file_len(dir.path());
    assert!(ahead >= 256 << 10, "the data file is {ahead} bytes");
    let bytes = std::fs::read(dir.path().join("data.mdb")).unwrap();
    assert!(bytes[bytes.len() - (64 << 10)..].iter().all(|&b| b == 0));
    // The next 60 KB of events land inside the file: it does not change length (with LMDB's
    // 4 KiB pages; larger pages take more room per commit).
    append_kb(&store, &stream, 1, 60);
    assert_eq!(data_file_len(dir.path()), ahead);
    // Past the zeros, writing ahead goes on, and everything reads back after a reopen.
    append_kb(&store, &stream, 61, 300);
    assert!(data_file_len(dir.path()) > ahead);
    drop(store);
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    let events = store.read_stream(&stream, 1, usize::MAX).unwrap();
    assert_eq!(events.len(), 361);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.payload == payload(i as u64, 1000))
    );
    append_kb(&store, &stream, 361, 1);
}

#[test]
fn a_store_without_fsync_writes_nothing_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new("ahead", 1).unwrap();
    let store = LmdbOptions::new()
        .durability(Durability::NoSync)
        .open(dir.path())
        .unwrap();
    append_kb(&store, &stream, 0, 1);
    let len = data_file_len(dir.path());
    assert!(len < 128 << 10, "the data file is {len} bytes");
}

#[test]
#[cfg(target_os = "linux")]
fn writing_ahead_stays_within_the_map_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let stream = StreamId::new("ahead", 1).unwrap();
    let store = LmdbOptions::new()
        .map_size(MIB)
        .max_map_size(8 * MIB)
        .open(dir.path())
        .unwrap();
    // 40 KB appends: small enough to write ahead, and 100 of them fill the first map and
    // some of the next ones.
    for v in 0..100u64 {
        let event = NewEvent::raw("Big", payload(v, 40_000));
        store
            .append(&stream, ExpectedVersion::Exact(v), vec![event])
            .unwrap();
        let len = data_file_len(dir.path());
        assert!(
            len <= store.map_size() as u64,
            "after {} appends the data file is {len} bytes, the map {}",
            v + 1,
            store.map_size()
        );
    }
    assert!(store.map_size() > MIB, "the map grew");
    drop(store);
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    assert_eq!(
        store.read_stream(&stream, 1, usize::MAX).unwrap().len(),
        100
    );
}

#[test]
fn a_store_grows_while_the_same_thread_reads_another_store() {
    let reading = es_runtime::LmdbStore::temporary(LmdbOptions::new()).unwrap();
    let writing = es_runtime::LmdbStore::temporary(
        LmdbOptions::new()
            .durability(Durability::NoSync)
            .map_size(MIB)
            .max_map_size(64 * MIB),
    )
    .unwrap();
    let source = StreamId::new("source", 1).unwrap();
    reading
        .append(
            &source,
            ExpectedVersion::NoStream,
            vec![NewEvent::raw("E", vec![0xc0])],
        )
        .unwrap();
    let target = StreamId::new("target", 1).unwrap();
    let mut outcome = None;
    reading
        .read_stream_with(&source, 1, &mut |_| {
            // Three MiB of appends into a one-MiB map, from inside the other store's read.
            outcome = Some((0..60u64).try_for_each(|v| {
                let event = NewEvent::raw("Big", payload(v, 50_000));
                writing
                    .append(&target, ExpectedVersion::Exact(v), vec![event])
                    .map(drop)
            }));
            ControlFlow::Continue(())
        })
        .unwrap();
    outcome.expect("the visitor ran").unwrap();
    assert!(writing.map_size() > MIB, "the map grew");
    assert_eq!(writing.stream_version(&target).unwrap(), 60);
}
