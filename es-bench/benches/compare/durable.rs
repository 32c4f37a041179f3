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
use es_bench::{Table, alternate_samples, bench_dir, median, per_sec, rate, speed_ratio, time};

use crate::store::{self, RawLog, raw};
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

    // Each contender writes to an environment of its own, and the one-caller ones grow alike
    // (1000 events per round): an LMDB commit writes more pages in a deeper tree with a longer
    // free list, so sharing one environment with the 64-caller rounds (25,600 events each)
    // would compare the store on a large database with raw heed on a small one.
    let host_dir = bench_dir(&cfg.root);
    let host = Host::<BankAccount, _>::new(opened_store(host_dir.path()));
    let single_dir = bench_dir(&cfg.root);
    let single = Host::<BankAccount, _>::new(opened_store(single_dir.path()));
    let many_dir = bench_dir(&cfg.root);
    let host_64 = Host::<BankAccount, _>::new(opened_store(many_dir.path()));
    for a in 0..ACCOUNTS {
        host.version(a).unwrap();
        host_64.version(a).unwrap();
    }
    single.version(0).unwrap();
    let store_dir = bench_dir(&cfg.root);
    let store = opened_store(store_dir.path());
    let store_many_dir = bench_dir(&cfg.root);
    let store_64 = opened_store(store_many_dir.path());
    // Raw heed commits the records the store writes (payload and envelope, `raw`), or the
    // payloads alone (`bare`), each starting from 1000 of them like the stores.
    let records: Vec<Vec<u8>> = streams
        .iter()
        .map(|s| store::record(s.as_str(), &bank::new_event(2)))
        .collect();
    let raw_dir = bench_dir(&cfg.root);
    let mut raw_log = RawLog::new(raw(raw_dir.path(), Durability::Sync));
    let bare_dir = bench_dir(&cfg.root);
    let mut bare = RawLog::new(raw(bare_dir.path(), Durability::Sync));
    raw_log.commit(records.iter().map(Vec::as_slice));
    bare.commit((0..ACCOUNTS).map(|_| payload.as_slice()));

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
                single.execute(0, bank::deposit(1)).unwrap();
            }
            single.flush_snapshots();
        })
    };
    let mut store_next = 0u64;
    let mut store_one = || {
        let events: Vec<NewEvent> = (0..n).map(|_| bank::new_event(2)).collect();
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
    let mut raw_next = 0u64;
    let mut raw_one = || {
        let d = time(|| {
            for i in raw_next..raw_next + n {
                raw_log.commit([records[(i % ACCOUNTS) as usize].as_slice()]);
            }
        });
        raw_next += n;
        d
    };
    let mut bare_one = || {
        time(|| {
            for _ in 0..n {
                bare.commit([payload.as_slice()]);
            }
        })
    };
    let mut host_many = || {
        let d = concurrently(per_caller, |c, i| {
            host_64.execute(account(c, i), bank::deposit(1)).unwrap();
        });
        d + time(|| host_64.flush_snapshots())
    };
    let mut store_many = || {
        concurrently(per_caller, |c, i| {
            store_64
                .append(
                    &streams[account(c, i) as usize],
                    ExpectedVersion::Any,
                    vec![bank::new_event(2)],
                )
                .unwrap();
        })
    };
    // The one-caller rows take twice the rounds: their ratio to raw heed sits near its goal,
    // and each round's fsyncs move with the shared disk.
    let [host_one, host_single, store_one, raw_one, bare_one] = alternate_samples(
        2 * cfg.rounds,
        [
            &mut host_one,
            &mut host_single,
            &mut store_one,
            &mut raw_one,
            &mut bare_one,
        ],
    );
    let [host_many, store_many] = alternate_samples(cfg.rounds, [&mut host_many, &mut store_many]);
    let many = CALLERS * per_caller;
    // "vs raw heed": paired with the raw commits of the same round (see `speed_ratio`).
    let vs_raw = |samples: &[Duration]| speed_ratio(samples, &raw_one);
    let (host_vs, single_vs, store_vs, bare_vs) = (
        vs_raw(&host_one),
        vs_raw(&host_single),
        vs_raw(&store_one),
        vs_raw(&bare_one),
    );
    let one = |samples: Vec<Duration>| rate(n, median(samples));
    let (host_one, host_single, store_one) = (one(host_one), one(host_single), one(store_one));
    let (raw_one, bare_one) = (one(raw_one), one(bare_one));
    let (host_many, store_many) = (
        rate(many, median(host_many)),
        rate(many, median(store_many)),
    );

    println!("## Durable commands on LMDB (fsync per commit), 1000 accounts\n");
    println!(
        "One caller: {n} commands (or appends, or raw commits) one after another, round robin \
         over the accounts. {CALLERS} callers: {many} commands from {CALLERS} threads at once, \
         group-committed. Raw heed writes records of the store's size (the ~200-byte payload \
         and its ~55-byte envelope: stream id, type, event id, timestamp, version), one commit \
         each, to an append-only log; a second raw row writes the payloads alone. \"vs raw \
         heed\" is the median over the rounds of each round's ratio to raw heed's; the \
         one-caller rows take twice the rounds of the others. Each row \
         writes to an LMDB environment of its own; the one-caller ones start from 1000 \
         records and grow by {n} a round alike. The host takes a snapshot every 100 events of \
         an account (its default), written through the store's group commit; the host's times \
         include writing them.\n"
    );
    let pct = |ratio: f64| format!("{:.0}%", 100.0 * ratio);
    let mut t = Table::new(&[
        "",
        "1 caller",
        "vs raw heed, paired by round",
        "64 callers",
        "64 vs 1",
    ]);
    t.row(vec![
        "Host::execute".into(),
        per_sec(host_one),
        pct(host_vs),
        per_sec(host_many),
        format!("{:.1}×", host_many / host_one),
    ]);
    t.row(vec![
        "Host::execute, all on 1 account".into(),
        per_sec(host_single),
        pct(single_vs),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "LmdbStore::append".into(),
        per_sec(store_one),
        pct(store_vs),
        per_sec(store_many),
        format!("{:.1}×", store_many / store_one),
    ]);
    t.row(vec![
        "raw heed, the same records, one commit each".into(),
        per_sec(raw_one),
        "100%".into(),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "raw heed, the payloads alone, one commit each".into(),
        per_sec(bare_one),
        pct(bare_vs),
        String::new(),
        String::new(),
    ]);
    t.print();

    summary.goal(
        "LMDB host, 1 caller, vs raw heed one commit per record",
        "≥ 90%",
        format!(
            "{} vs {} (medians); {} paired by round",
            per_sec(host_one),
            per_sec(raw_one),
            pct(host_vs)
        ),
        host_vs >= 0.9,
    );
    summary.goal(
        "LmdbStore::append, 1 caller, vs raw heed",
        "≥ 90%",
        format!(
            "{} vs {} (medians); {} paired by round",
            per_sec(store_one),
            per_sec(raw_one),
            pct(store_vs)
        ),
        store_vs >= 0.9,
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
