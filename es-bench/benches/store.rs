//! The LMDB store against raw heed doing the same writes, printed as tables of medians.
//!
//! `cargo bench -p es-bench --bench store` (set `ES_BENCH_DIR` to choose the directory the
//! stores are written in; the default is the system's temporary directory).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use es_bench::{Table, median_of, ms, per_sec, rate, time};
use es_runtime::{
    DomainEvent, Durability, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent,
    StreamId,
};
use heed::types::{Bytes, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, PutFlags, WithoutTls};
use serde::{Deserialize, Serialize};

type Position = U64<heed::byteorder::BigEndian>;

const ROUNDS: usize = 5;

/// A small event enum, as the macro would generate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64, reason: String },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &["Deposited", "Withdrawn"];
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
    }
}

fn new_event(i: u64) -> NewEvent {
    let e = if i % 3 == 0 {
        AccountEvent::Withdrawn {
            amount: i,
            reason: "rent".to_owned(),
        }
    } else {
        AccountEvent::Deposited { amount: i }
    };
    NewEvent::from_event(&e, Default::default()).unwrap()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("ES_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            tempfile::tempdir_in(d).unwrap()
        }
        None => tempfile::tempdir().unwrap(),
    }
}

fn store(dir: &Path, durability: Durability) -> LmdbStore {
    LmdbOptions::new()
        .durability(durability)
        .map_size(1 << 30)
        .open(dir)
        .unwrap()
}

/// A raw heed environment with one `position → bytes` database, and a second `bytes → bytes`
/// one for the layout comparison.
struct Raw {
    env: Env<WithoutTls>,
    log: Database<'static, Position, Bytes>,
    other: Database<'static, Bytes, Bytes>,
}

fn raw(dir: &Path, durability: Durability) -> Raw {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 30).max_dbs(4);
    if durability == Durability::NoSync {
        // SAFETY: only skips the flush; the benchmark does not survive machine crashes anyway.
        unsafe {
            options.flags(EnvFlags::NO_SYNC);
        }
    }
    // SAFETY: a fresh private directory that nothing else touches.
    let env = unsafe { options.open(dir) }.unwrap();
    let txn = env.write_txn().unwrap();
    let (log, other) = env
        .create_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
            let log = opener.create_database(txn, Some("log"))?;
            let other = opener.create_database(txn, Some("other"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((log, other)))
        })
        .unwrap()
        .unwrap_commit();
    Raw { env, log, other }
}

fn main() {
    let probe = bench_dir();
    println!(
        "LMDB store benchmarks: {} cores, stores under {}, medians of {ROUNDS} rounds\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        probe.path().parent().unwrap().display()
    );
    let one_caller = single_caller();
    concurrent(one_caller);
    read_back();
    batch_overhead();
    layouts();
}

/// Durable appends of one event each, from one caller, vs raw heed committing each event.
fn single_caller() -> f64 {
    const N: u64 = 1000;
    let payloads: Vec<NewEvent> = (0..N).map(new_event).collect();
    let store_time = median_of(ROUNDS, || {
        let dir = bench_dir();
        let store = store(dir.path(), Durability::Sync);
        let stream = StreamId::new("account", 1).unwrap();
        let events = payloads.clone();
        time(|| {
            for (i, e) in events.into_iter().enumerate() {
                store
                    .append(&stream, ExpectedVersion::Exact(i as u64), vec![e])
                    .unwrap();
            }
        })
    });
    let raw_time = median_of(ROUNDS, || {
        let dir = bench_dir();
        let raw = raw(dir.path(), Durability::Sync);
        time(|| {
            for (i, e) in payloads.iter().enumerate() {
                let mut txn = raw.env.write_txn().unwrap();
                raw.log
                    .put_with_flags(&mut txn, PutFlags::APPEND, &(i as u64 + 1), &e.payload)
                    .unwrap();
                txn.commit().unwrap();
            }
        })
    });
    let (s, r) = (rate(N, store_time), rate(N, raw_time));
    println!("## Durable append, one caller ({N} appends of one event, fsync each)\n");
    let mut t = Table::new(&["", "events/s", "vs raw heed"]);
    t.row(vec![
        "LmdbStore::append".into(),
        per_sec(s),
        format!("{:.0}%", 100.0 * s / r),
    ]);
    t.row(vec![
        "raw heed, one commit per event".into(),
        per_sec(r),
        "100%".into(),
    ]);
    t.print();
    s
}

/// 64 callers appending one event at a time to 1000 streams: group commit at work.
fn concurrent(one_caller: f64) {
    const CALLERS: u64 = 64;
    const PER_CALLER: u64 = 400;
    const STREAMS: u64 = 1000;
    let streams: Vec<StreamId> = (0..STREAMS)
        .map(|i| StreamId::new("account", i).unwrap())
        .collect();
    let elapsed = median_of(ROUNDS, || {
        let dir = bench_dir();
        let store = Arc::new(store(dir.path(), Durability::Sync));
        let barrier = std::sync::Barrier::new(CALLERS as usize + 1);
        std::thread::scope(|s| {
            for c in 0..CALLERS {
                let (store, streams, barrier) = (&store, &streams, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..PER_CALLER {
                        let stream = &streams[((c * 7919 + i * 104_729) % STREAMS) as usize];
                        store
                            .append(stream, ExpectedVersion::Any, vec![new_event(i)])
                            .unwrap();
                    }
                });
            }
            barrier.wait();
            // The scope returns once every caller is joined: `elapsed` covers the whole run.
            std::time::Instant::now()
        })
        .elapsed()
    });
    let events = CALLERS * PER_CALLER;
    let r = rate(events, elapsed);
    println!(
        "## Durable append, {CALLERS} concurrent callers over {STREAMS} streams ({events} appends of one event)\n"
    );
    let mut t = Table::new(&["", "events/s", "vs one caller"]);
    t.row(vec![
        format!("{CALLERS} callers, group commit"),
        per_sec(r),
        format!("{:.1}×", r / one_caller),
    ]);
    t.row(vec!["one caller".into(), per_sec(one_caller), "1×".into()]);
    t.print();
}

/// Reading a 100,000-event stream back, decoding every payload.
fn read_back() {
    const N: u64 = 100_000;
    let dir = bench_dir();
    let store = store(dir.path(), Durability::NoSync);
    let stream = StreamId::new("account", 1).unwrap();
    // Interleave a second stream so the target's positions are not all consecutive.
    let other = StreamId::new("account", 2).unwrap();
    for chunk in 0..N / 1000 {
        let events = (chunk * 1000..(chunk + 1) * 1000).map(new_event).collect();
        store
            .append(&stream, ExpectedVersion::Exact(chunk * 1000), events)
            .unwrap();
        store
            .append(&other, ExpectedVersion::Any, vec![new_event(chunk)])
            .unwrap();
    }
    store.sync().unwrap();
    let mut sum = 0u64;
    let decode = median_of(ROUNDS, || {
        time(|| {
            store
                .read_stream_with(&stream, 1, &mut |e| {
                    match e.decode::<AccountEvent>().unwrap() {
                        AccountEvent::Deposited { amount }
                        | AccountEvent::Withdrawn { amount, .. } => sum += amount,
                    }
                    ControlFlow::Continue(())
                })
                .unwrap();
        })
    });
    let views = median_of(ROUNDS, || {
        time(|| {
            store
                .read_stream_with(&stream, 1, &mut |e| {
                    sum += e.payload.len() as u64;
                    ControlFlow::Continue(())
                })
                .unwrap();
        })
    });
    let owned = median_of(ROUNDS, || {
        time(|| {
            sum += store.read_stream(&stream, 1, u64::MAX).unwrap().len() as u64;
        })
    });
    std::hint::black_box(sum);
    println!("## Read-back of a {N}-event stream (warm page cache)\n");
    let mut t = Table::new(&["", "time", "events/s"]);
    t.row(vec![
        "read_stream_with + EventRef::decode".into(),
        ms(decode),
        per_sec(rate(N, decode)),
    ]);
    t.row(vec![
        "read_stream_with, views only".into(),
        ms(views),
        per_sec(rate(N, views)),
    ]);
    t.row(vec![
        "read_stream (owned copies)".into(),
        ms(owned),
        per_sec(rate(N, owned)),
    ]);
    t.print();
}

/// One batch of 1000 events in one commit: the store vs raw heed writing the same payloads.
fn batch_overhead() {
    const N: u64 = 1000;
    let events: Vec<NewEvent> = (0..N).map(new_event).collect();
    let mut t = Table::new(&["durability", "LmdbStore::append", "raw heed", "store / raw"]);
    for durability in [Durability::Sync, Durability::NoSync] {
        let dir = bench_dir();
        let store = store(dir.path(), durability);
        let stream = StreamId::new("account", 1).unwrap();
        let mut round = 0;
        let s = median_of(ROUNDS * 2, || {
            let batch = events.clone();
            let d = time(|| {
                store
                    .append(&stream, ExpectedVersion::Exact(round * N), batch)
                    .unwrap();
            });
            round += 1;
            d
        });
        let dir = bench_dir();
        let raw = raw(dir.path(), durability);
        let mut next = 1u64;
        let r = median_of(ROUNDS * 2, || {
            time(|| {
                let mut txn = raw.env.write_txn().unwrap();
                for e in &events {
                    raw.log
                        .put_with_flags(&mut txn, PutFlags::APPEND, &next, &e.payload)
                        .unwrap();
                    next += 1;
                }
                txn.commit().unwrap();
            })
        });
        t.row(vec![
            format!("{durability:?}"),
            ms(s),
            ms(r),
            format!("{:.2}×", s.as_secs_f64() / r.as_secs_f64()),
        ]);
    }
    println!("## One batch of {N} events, one commit: store overhead over raw heed\n");
    t.print();
}

/// Layout choices, measured on raw heed: where the payload lives, for a batch over one stream
/// and over 1000 streams.
fn layouts() {
    const N: u64 = 1000;
    let events: Vec<NewEvent> = (0..N).map(new_event).collect();
    let mut t = Table::new(&["layout", "1 stream", "1000 streams"]);
    for payload_in_log in [true, false] {
        let mut cells = vec![if payload_in_log {
            "payload in the log, position in the stream index (chosen)".to_owned()
        } else {
            "payload in the stream index, pointer in the log".to_owned()
        }];
        for streams in [1u64, 1000] {
            let dir = bench_dir();
            let raw = raw(dir.path(), Durability::Sync);
            let mut next = 1u64;
            let mut versions = vec![0u64; streams as usize];
            let d = median_of(ROUNDS * 2, || {
                time(|| {
                    let mut txn = raw.env.write_txn().unwrap();
                    for (i, e) in events.iter().enumerate() {
                        let s = i as u64 % streams;
                        versions[s as usize] += 1;
                        let mut key = format!("account-{s}").into_bytes();
                        key.push(0);
                        key.extend_from_slice(&versions[s as usize].to_be_bytes());
                        if payload_in_log {
                            raw.log
                                .put_with_flags(&mut txn, PutFlags::APPEND, &next, &e.payload)
                                .unwrap();
                            raw.other.put(&mut txn, &key, &next.to_be_bytes()).unwrap();
                        } else {
                            raw.log
                                .put_with_flags(&mut txn, PutFlags::APPEND, &next, &key)
                                .unwrap();
                            raw.other.put(&mut txn, &key, &e.payload).unwrap();
                        }
                        next += 1;
                    }
                    txn.commit().unwrap();
                })
            });
            cells.push(per_sec(rate(N, d)));
        }
        t.row(cells);
    }
    println!("## Layouts on raw heed: durable batches of {N} events (events/s)\n");
    t.print();
}
