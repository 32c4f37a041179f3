//! Durable commands on LMDB (`Durability::Sync`: acknowledged means fsynced): the host with
//! one caller and with 64, the store's appends alone, and raw heed committing the same bytes.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use es::{
    Aggregate, Durability, EventStore, ExpectedVersion, Host, LmdbOptions, LmdbStore, NewEvent,
    StreamId,
};
use es_bench::bank::{self, BankAccount};
use es_bench::{Table, alternate, bench_dir, per_sec, rate, time};

use crate::store::{Raw, raw};
use crate::{Config, Summary};

const ACCOUNTS: u64 = 1000;
const CALLERS: u64 = 64;

/// A durable store whose 1000 accounts are open (written without fsync, then reopened).
fn opened_store(dir: &Path) -> Arc<LmdbStore> {
    {
        let setup = LmdbOptions::new()
            .durability(Durability::NoSync)
            .map_size(1 << 30)
            .open(dir)
            .unwrap();
        for a in 0..ACCOUNTS {
            let stream = StreamId::new(BankAccount::NAME, a).unwrap();
            bank::write_history(&setup, &stream, 1, 1);
        }
        setup.sync().unwrap();
    }
    Arc::new(
        LmdbOptions::new()
            .durability(Durability::Sync)
            .map_size(1 << 30)
            .open(dir)
            .unwrap(),
    )
}

/// Which account caller `c` uses for its `i`th command: spread, and different per caller.
fn account(c: u64, i: u64) -> u64 {
    (c * 7919 + i * 104_729) % ACCOUNTS
}

/// `CALLERS` threads each running `per_caller` operations; the time until all are done.
fn concurrently(per_caller: u64, op: impl Fn(u64, u64) + Sync) -> Duration {
    let barrier = Barrier::new(CALLERS as usize + 1);
    std::thread::scope(|s| {
        for c in 0..CALLERS {
            let (op, barrier) = (&op, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_caller {
                    op(c, i);
                }
            });
        }
        barrier.wait();
        // The scope returns once every caller is joined: `elapsed` covers the whole run.
        Instant::now()
    })
    .elapsed()
}

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let n: u64 = cfg.pick(1000, 300);
    let per_caller: u64 = cfg.pick(400, 100);
    let streams: Vec<StreamId> = (0..ACCOUNTS)
        .map(|a| StreamId::new(BankAccount::NAME, a).unwrap())
        .collect();
    let payload = bank::new_event(2).payload;

    let host_dir = bench_dir(&cfg.root);
    let host = Host::<BankAccount, _>::new(opened_store(host_dir.path()));
    for a in 0..ACCOUNTS {
        host.version(a).unwrap();
    }
    let store_dir = bench_dir(&cfg.root);
    let store = opened_store(store_dir.path());
    let raw_dir = bench_dir(&cfg.root);
    let raw: Raw = raw(raw_dir.path(), Durability::Sync);
    let mut raw_next = 1u64;

    let mut next = 0u64;
    let mut host_one = || {
        let d = time(|| {
            for i in next..next + n {
                host.execute(i % ACCOUNTS, bank::deposit(1)).unwrap();
            }
            // The snapshots these commands made are theirs to write, not the next round's.
            host.flush_snapshots();
        });
        next += n;
        d
    };
    // The same on one account: every commit rewrites the same stream head.
    let mut host_single = || {
        time(|| {
            for _ in 0..n {
                host.execute(0, bank::deposit(1)).unwrap();
            }
            host.flush_snapshots();
        })
    };
    let mut store_next = 0u64;
    let mut store_one = || {
        let events: Vec<NewEvent> = (0..n).map(|_| bank::new_event(2)).collect();
        // The 64-caller rounds append to the same streams.
        let mut versions: Vec<u64> = streams
            .iter()
            .map(|s| store.stream_version(s).unwrap())
            .collect();
        let d = time(|| {
            for (i, e) in (store_next..store_next + n).zip(events) {
                let a = (i % ACCOUNTS) as usize;
                store
                    .append(&streams[a], ExpectedVersion::Exact(versions[a]), vec![e])
                    .unwrap();
                versions[a] += 1;
            }
        });
        store_next += n;
        d
    };
    let mut raw_one = || {
        time(|| {
            for _ in 0..n {
                let mut txn = raw.env.write_txn().unwrap();
                raw.log
                    .put_with_flags(&mut txn, heed::PutFlags::APPEND, &raw_next, &payload)
                    .unwrap();
                txn.commit().unwrap();
                raw_next += 1;
            }
        })
    };
    let mut host_many = || {
        let d = concurrently(per_caller, |c, i| {
            host.execute(account(c, i), bank::deposit(1)).unwrap();
        });
        d + time(|| host.flush_snapshots())
    };
    let mut store_many = || {
        concurrently(per_caller, |c, i| {
            store
                .append(
                    &streams[account(c, i) as usize],
                    ExpectedVersion::Any,
                    vec![bank::new_event(2)],
                )
                .unwrap();
        })
    };
    let [
        host_one,
        host_single,
        store_one,
        raw_one,
        host_many,
        store_many,
    ] = alternate(
        cfg.rounds,
        [
            &mut host_one,
            &mut host_single,
            &mut store_one,
            &mut raw_one,
            &mut host_many,
            &mut store_many,
        ],
    );
    let many = CALLERS * per_caller;
    let (host_one, host_single) = (rate(n, host_one), rate(n, host_single));
    let (store_one, raw_one) = (rate(n, store_one), rate(n, raw_one));
    let (host_many, store_many) = (rate(many, host_many), rate(many, store_many));

    println!("## Durable commands on LMDB (fsync per commit), 1000 accounts\n");
    println!(
        "One caller: {n} commands (or appends, or raw commits) one after another, round robin \
         over the accounts. {CALLERS} callers: {many} commands from {CALLERS} threads at once, \
         group-committed. Raw heed writes the same ~200-byte payloads, one commit each, to an \
         append-only log. The host takes a snapshot every 100 events of an account (its \
         default), written in a commit of its own; the host's times include writing them.\n"
    );
    let pct = |r: f64| format!("{:.0}%", 100.0 * r / raw_one);
    let mut t = Table::new(&["", "1 caller", "vs raw heed", "64 callers", "64 vs 1"]);
    t.row(vec![
        "Host::execute".into(),
        per_sec(host_one),
        pct(host_one),
        per_sec(host_many),
        format!("{:.1}×", host_many / host_one),
    ]);
    t.row(vec![
        "Host::execute, all on 1 account".into(),
        per_sec(host_single),
        pct(host_single),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "LmdbStore::append".into(),
        per_sec(store_one),
        pct(store_one),
        per_sec(store_many),
        format!("{:.1}×", store_many / store_one),
    ]);
    t.row(vec![
        "raw heed, one commit per event".into(),
        per_sec(raw_one),
        "100%".into(),
        String::new(),
        String::new(),
    ]);
    t.print();

    summary.goal(
        "LMDB host, 1 caller, vs raw heed one commit per event",
        "≥ 90%",
        format!(
            "{} vs {}: {}",
            per_sec(host_one),
            per_sec(raw_one),
            pct(host_one)
        ),
        host_one >= 0.9 * raw_one,
    );
    summary.goal(
        "LmdbStore::append, 1 caller, vs raw heed",
        "≥ 90%",
        format!(
            "{} vs {}: {}",
            per_sec(store_one),
            per_sec(raw_one),
            pct(store_one)
        ),
        store_one >= 0.9 * raw_one,
    );
    summary.goal(
        "LMDB host, 64 callers over 1000 accounts",
        "≥ 50k commands/s",
        per_sec(host_many),
        host_many >= 50e3,
    );
    summary.goal(
        "LmdbStore::append, 64 callers over 1000 streams",
        "≥ 50k events/s and ≥ 10× one caller",
        format!("{}, {:.1}×", per_sec(store_many), store_many / store_one),
        store_many >= 50e3 && store_many >= 10.0 * store_one,
    );
}
