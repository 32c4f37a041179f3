//! Rehydrating an aggregate with 100,000 events of history, with and without a snapshot, on
//! both stores; reading the same stream back from LMDB without a host; and the same history
//! stored at version 1 of its deposits, read through a one-step upcast, beside it at the
//! current version.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use es::{
    Aggregate, Durability, EventStore, ExpectedVersion, Host, LmdbOptions, MemoryStore, StreamId,
};
use es_bench::bank::evolved::EvolvedAccount;
use es_bench::bank::{self, BankAccount, BankAccountEvent};
use es_bench::{Table, alternate, bench_dir, ms, per_sec, rate, time};

use crate::{Config, Summary};

const N: u64 = 100_000;

/// Writes `N` events to `account-r` (no snapshot) and `account-s` (snapshotted at `N` by
/// loading it once), in batches of 1000 with an event of another stream between batches, so
/// the stream's positions are not all consecutive. Returns hosts without and with snapshots.
fn prepare<S: EventStore>(store: Arc<S>) -> (Host<BankAccount, Arc<S>>, Host<BankAccount, Arc<S>>) {
    let other = StreamId::new(BankAccount::NAME, "other").unwrap();
    for id in ["r", "s"] {
        let stream = StreamId::new(BankAccount::NAME, id).unwrap();
        for chunk in 0..N / 1000 {
            bank::write_history(&*store, &stream, chunk * 1000 + 1, (chunk + 1) * 1000);
            store
                .append(&other, ExpectedVersion::Any, vec![bank::new_event(2)])
                .unwrap();
        }
    }
    let plain = Host::builder(store.clone()).snapshot_every(0).build();
    let snapshots = Host::builder(store)
        .snapshot_every(100)
        .background_snapshots(false)
        .build();
    snapshots.version("s").unwrap();
    (plain, snapshots)
}

/// One rehydration of `id`: passivate, then load.
fn rehydrate<S: EventStore>(host: &Host<BankAccount, S>, id: &str, times: u32) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..times {
        host.passivate(id);
        let start = Instant::now();
        assert_eq!(host.version(id).unwrap(), N);
        total += start.elapsed();
    }
    total / times
}

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let dir = bench_dir(&cfg.root);
    let lmdb = Arc::new(
        LmdbOptions::new()
            .durability(Durability::NoSync)
            .map_size(1 << 30)
            .open(dir.path())
            .unwrap(),
    );
    let (lmdb_plain, lmdb_snap) = prepare(lmdb.clone());
    lmdb.sync().unwrap();
    let (mem_plain, mem_snap) = prepare(Arc::new(MemoryStore::new()));

    // Each sample takes milliseconds: three times the usual rounds spread them over a few
    // seconds, so a burst of other load on the machine moves the median less.
    let rounds = (3 * cfg.rounds).max(5);
    // A rehydration from a snapshot takes microseconds: each sample averages 100 of them.
    let [mem_full, mem_from, lmdb_full, lmdb_from] = alternate(
        rounds,
        [
            &mut || rehydrate(&mem_plain, "r", 1),
            &mut || rehydrate(&mem_snap, "s", 100),
            &mut || rehydrate(&lmdb_plain, "r", 1),
            &mut || rehydrate(&lmdb_snap, "s", 100),
        ],
    );
    println!("## Rehydrating an aggregate with {N} events of history\n");
    println!(
        "Passivate, then load: the latest snapshot (if any) and the events after it, decoded \
         and applied. Warm page cache.\n"
    );
    let mut t = Table::new(&["", "MemoryStore", "LmdbStore"]);
    t.row(vec!["no snapshot".into(), ms(mem_full), ms(lmdb_full)]);
    t.row(vec![
        "from a snapshot at the last event".into(),
        ms(mem_from),
        ms(lmdb_from),
    ]);
    t.print();

    // Reading the stream back without a host.
    let stream = StreamId::new(BankAccount::NAME, "r").unwrap();
    let (mut sum, mut bytes, mut count) = (0u64, 0u64, 0u64);
    let [decode, views, owned] = alternate(
        rounds,
        [
            &mut || {
                time(|| {
                    lmdb.read_stream_with(&stream, 1, &mut |e| {
                        match e.decode::<BankAccountEvent>().unwrap() {
                            BankAccountEvent::Opened { initial: a, .. }
                            | BankAccountEvent::Deposited { amount: a, .. }
                            | BankAccountEvent::Withdrawn { amount: a, .. } => sum += a,
                        }
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                })
            },
            &mut || {
                time(|| {
                    lmdb.read_stream_with(&stream, 1, &mut |e| {
                        bytes += e.payload.len() as u64;
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                })
            },
            &mut || {
                time(|| {
                    count += lmdb.read_stream(&stream, 1, usize::MAX).unwrap().len() as u64;
                })
            },
        ],
    );
    std::hint::black_box((sum, bytes, count));
    println!("Reading the same {N}-event stream back from LmdbStore, without a host:\n");
    let mut t = Table::new(&["", "time", "events/s"]);
    for (name, d) in [
        ("read_stream_with + EventRef::decode", decode),
        ("read_stream_with, views only", views),
        ("read_stream (owned copies)", owned),
    ] {
        t.row(vec![name.into(), ms(d), per_sec(rate(N, d))]);
    }
    t.print();

    let worst = mem_full.max(lmdb_full);
    summary.goal(
        "rehydrate 100k events, no snapshot (both stores)",
        "≤ 25 ms",
        format!("{} (memory), {} (LMDB)", ms(mem_full), ms(lmdb_full)),
        worst <= Duration::from_millis(25),
    );
    let worst = mem_from.max(lmdb_from);
    summary.goal(
        "rehydrate from a snapshot (both stores)",
        "≤ 0.1 ms",
        format!("{} (memory), {} (LMDB)", ms(mem_from), ms(lmdb_from)),
        worst <= Duration::from_micros(100),
    );
    summary.goal(
        "read back a 100k-event LMDB stream, decoding each event",
        "≤ 25 ms",
        ms(decode),
        decode <= Duration::from_millis(25),
    );
    drop((lmdb_plain, lmdb_snap));
    upcast(rounds, &lmdb);
    drop(lmdb);
}

/// Writes `N` events of `account-old` at version 1 of `Deposited` (as `BankAccount` stored
/// them) and the same history at the current version 2 in `account-new`. Returns a host of
/// the current code and one of the code that wrote version 1, both without snapshots.
fn prepare_versions<S: EventStore>(
    store: Arc<S>,
) -> (Host<EvolvedAccount, Arc<S>>, Host<BankAccount, Arc<S>>) {
    let old = StreamId::new(EvolvedAccount::NAME, "old").unwrap();
    let new = StreamId::new(EvolvedAccount::NAME, "new").unwrap();
    bank::write_history(&*store, &old, 1, N);
    bank::evolved::write_history(&*store, &new, 1, N);
    let first = Host::builder(store.clone()).snapshot_every(0).build();
    (Host::builder(store).snapshot_every(0).build(), first)
}

/// One rehydration of `id` by the current code: passivate, then load.
fn rehydrate_evolved<S: EventStore>(host: &Host<EvolvedAccount, S>, id: &str) -> Duration {
    host.passivate(id);
    let start = Instant::now();
    assert_eq!(host.version(id).unwrap(), N);
    start.elapsed()
}

/// The same history read at the current version and through a one-step upcast.
fn upcast<S: EventStore + 'static>(rounds: usize, lmdb: &Arc<S>) {
    let (lmdb, lmdb_first) = prepare_versions(lmdb.clone());
    let (mem, mem_first) = prepare_versions(Arc::new(MemoryStore::new()));
    assert_eq!(
        mem.state("old").unwrap().balance(),
        mem.state("new").unwrap().balance()
    );
    let [mem_new, mem_old, mem_v1, lmdb_new, lmdb_old, lmdb_v1] = alternate(
        rounds,
        [
            &mut || rehydrate_evolved(&mem, "new"),
            &mut || rehydrate_evolved(&mem, "old"),
            &mut || rehydrate(&mem_first, "old", 1),
            &mut || rehydrate_evolved(&lmdb, "new"),
            &mut || rehydrate_evolved(&lmdb, "old"),
            &mut || rehydrate(&lmdb_first, "old", 1),
        ],
    );
    println!(
        "Rehydrating {N} events stored at version 1 of `Deposited`, whose current version is 2 (an amount in cents became a `Money` struct): by the code that wrote them (the same bytes, no upcast), by the current code through a one-step upcast, and the same history stored at version 2 (larger payloads) read by the current code. No snapshot. The upcast's cost per event is the difference between the first two: the same stored bytes, read with and without it.\n"
    );
    let mut t = Table::new(&["", "MemoryStore", "LmdbStore"]);
    t.row(vec![
        "version 1, by the code that wrote it".into(),
        ms(mem_v1),
        ms(lmdb_v1),
    ]);
    t.row(vec![
        "version 1, through a one-step upcast".into(),
        ms(mem_old),
        ms(lmdb_old),
    ]);
    t.row(vec![
        "stored at the current version 2".into(),
        ms(mem_new),
        ms(lmdb_new),
    ]);
    let per_event = |old: Duration, base: Duration| {
        let ns = (old.as_secs_f64() - base.as_secs_f64()) * 1e9 / N as f64;
        format!("{ns:+.0} ns")
    };
    t.row(vec![
        "upcast cost per event".into(),
        per_event(mem_old, mem_v1),
        per_event(lmdb_old, lmdb_v1),
    ]);
    t.print();
}
