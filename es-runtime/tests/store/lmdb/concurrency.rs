//! Group commit and readers alongside writers, on the LMDB store.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use es_runtime::{
    AppendError, Clock, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, StreamId,
    Timestamp,
};

/// A clock that ticks on every reading, so each commit (which reads it once) gets its own
/// timestamp and the number of distinct timestamps counts the commits.
#[derive(Debug, Default)]
struct TickingClock(AtomicU64);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp(1_000 + self.0.fetch_add(1, Ordering::SeqCst))
    }
}

fn event(thread: u64, seq: u64) -> NewEvent {
    let mut payload = thread.to_be_bytes().to_vec();
    payload.extend_from_slice(&seq.to_be_bytes());
    NewEvent::raw("E", payload)
}

#[test]
fn concurrent_appends_are_committed_in_groups_each_checked_alone() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 100;
    let clock = Arc::new(TickingClock::default());
    // Heads checkpoints land in the middle of the groups.
    let store =
        LmdbStore::temporary(LmdbOptions::new().clock(clock.clone()).heads_every(7)).unwrap();
    let shared = StreamId::new("shared", 1).unwrap();
    let conflicts = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, shared, conflicts) = (&store, &shared, &conflicts);
            s.spawn(move || {
                let own = StreamId::new("own", t).unwrap();
                for i in 0..PER_THREAD {
                    // To the shared stream with `Any`: always succeeds, in arrival order.
                    store
                        .append(shared, ExpectedVersion::Any, vec![event(t, i)])
                        .unwrap();
                    // To its own stream with the exact version: always right.
                    store
                        .append(&own, ExpectedVersion::Exact(i), vec![event(t, i)])
                        .unwrap();
                    // A stale expectation: fails alone, in whatever group it lands.
                    match store.append(&own, ExpectedVersion::Exact(i), vec![event(t, i)]) {
                        Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                            assert_eq!(actual, i + 1);
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("expected a conflict, got {other:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(conflicts.into_inner(), THREADS * PER_THREAD);
    let log = store.read_all(1, usize::MAX).unwrap();
    assert_eq!(log.len() as u64, 2 * THREADS * PER_THREAD);
    // Every thread's events on the shared stream are in its own order.
    let mut last_seq: BTreeMap<u64, u64> = BTreeMap::new();
    for e in store.read_stream(&shared, 1, usize::MAX).unwrap() {
        let t = u64::from_be_bytes(e.payload[..8].try_into().unwrap());
        let seq = u64::from_be_bytes(e.payload[8..].try_into().unwrap());
        if let Some(prev) = last_seq.insert(t, seq) {
            assert_eq!(seq, prev + 1);
        }
    }
    let mut commits: Vec<Timestamp> = log.iter().map(|e| e.timestamp).collect();
    commits.dedup();
    let appends = 2 * THREADS * PER_THREAD;
    let _ = writeln!(
        std::io::stderr(),
        "group commit: {appends} successful appends (+{} refused) in {} commits",
        THREADS * PER_THREAD,
        commits.len()
    );
    assert!(
        (commits.len() as u64) < appends,
        "some appends were committed together"
    );
}

#[test]
fn readers_do_not_wait_for_a_long_write() {
    let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    let small = StreamId::new("small", 1).unwrap();
    store
        .append(&small, ExpectedVersion::NoStream, vec![event(0, 0)])
        .unwrap();
    let big = StreamId::new("big", 1).unwrap();
    let batch: Vec<NewEvent> = (0..300_000).map(|i| event(1, i)).collect();
    let writing = AtomicBool::new(true);
    let (write_time, reads_during) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            while writing.load(Ordering::SeqCst) {
                // Until the big batch commits, readers see the store as it was.
                let head = store.head_position().unwrap();
                assert!(head == 1 || head == 300_001);
                if head == 1 {
                    assert_eq!(store.read_stream(&small, 1, 1).unwrap().len(), 1);
                    reads += 1;
                }
            }
            reads
        });
        let started = Instant::now();
        store
            .append(&big, ExpectedVersion::NoStream, batch)
            .unwrap();
        let took = started.elapsed();
        writing.store(false, Ordering::SeqCst);
        (took, reader.join().unwrap())
    });
    let _ = writeln!(
        std::io::stderr(),
        "readers: {reads_during} reads completed during a {:.0} ms write",
        write_time.as_secs_f64() * 1e3
    );
    assert!(reads_during > 10, "readers kept reading during the write");
}

use crate::common;

/// Two hosts on one LMDB store, two threads each, on the same accounts: conflicts are retried,
/// nothing is lost or stored twice (see `common::two_hosts_on_one_store_agree`).
#[test]
fn two_hosts_on_one_lmdb_store_agree() {
    let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    common::two_hosts_on_one_store_agree(Arc::new(store));
}
