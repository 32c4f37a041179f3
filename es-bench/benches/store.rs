//! The LMDB store against raw heed doing the same writes, printed as tables of medians.
//!
//! `cargo bench -p es-bench --bench store` (set `ES_BENCH_DIR` to choose the directory the
//! stores are written in; the default is the system's temporary directory).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use es_bench::{Table, median, median_of, ms, per_sec, rate, time};
use es_runtime::{
    DomainEvent, Durability, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent,
    StreamId,
};
use heed::types::{Bytes, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, PutFlags, WithoutTls};
use serde::{Deserialize, Serialize};

type Position = U64<heed::byteorder::BigEndian>;

const ROUNDS: usize = 9;

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
    let e = if i.is_multiple_of(3) {
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
    third: Database<'static, Bytes, Bytes>,
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
    let (log, other, third) = env
        .create_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
            let log = opener.create_database(txn, Some("log"))?;
            let other = opener.create_database(txn, Some("other"))?;
            let third = opener.create_database(txn, Some("third"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((log, other, third)))
        })
        .unwrap()
        .unwrap_commit();
    Raw {
        env,
        log,
        other,
        third,
    }
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
    // Store and raw rounds alternate, so a drift in the disk's speed hits both alike.
    let (mut store_times, mut raw_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let dir = bench_dir();
        let store = store(dir.path(), Durability::Sync);
        let stream = StreamId::new("account", 1).unwrap();
        let events = payloads.clone();
        store_times.push(time(|| {
            for (i, e) in events.into_iter().enumerate() {
                store
                    .append(&stream, ExpectedVersion::Exact(i as u64), vec![e])
                    .unwrap();
            }
        }));
        let dir = bench_dir();
        let raw = raw(dir.path(), Durability::Sync);
        raw_times.push(time(|| {
            for (i, e) in payloads.iter().enumerate() {
                let mut txn = raw.env.write_txn().unwrap();
                raw.log
                    .put_with_flags(&mut txn, PutFlags::APPEND, &(i as u64 + 1), &e.payload)
                    .unwrap();
                txn.commit().unwrap();
            }
        }));
    }
    let (store_time, raw_time) = (median(store_times), median(raw_times));
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
    // What a store must keep of each event besides the payload: stream id, type name, event
    // id, timestamp, version. The second baseline writes records of that size.
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let mut r = Vec::new();
            r.extend_from_slice(b"account-1");
            r.extend_from_slice(e.event_type.as_bytes());
            r.extend_from_slice(e.event_id.as_bytes());
            r.extend_from_slice(&[0; 8 + 2]);
            r.extend_from_slice(&e.payload);
            r
        })
        .collect();
    let mut t = Table::new(&[
        "durability",
        "LmdbStore::append",
        "raw heed, payloads",
        "store / raw",
        "raw heed, payload + envelope",
        "store / raw",
    ]);
    for durability in [Durability::Sync, Durability::NoSync] {
        let dir = bench_dir();
        let store = store(dir.path(), durability);
        let stream = StreamId::new("account", 1).unwrap();
        let dir = bench_dir();
        let raw = raw(dir.path(), durability);
        let mut next = 1u64;
        let mut raw_batch = |values: &[&[u8]]| {
            let mut txn = raw.env.write_txn().unwrap();
            for v in values {
                raw.log
                    .put_with_flags(&mut txn, PutFlags::APPEND, &next, v)
                    .unwrap();
                next += 1;
            }
            txn.commit().unwrap();
        };
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
        let enveloped: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let (mut store_times, mut raw_times, mut env_times) = (Vec::new(), Vec::new(), Vec::new());
        // Rounds alternate between the three, so a drift in the disk's speed hits all alike.
        for round in 0..ROUNDS as u64 * 4 {
            let batch = events.clone();
            store_times.push(time(|| {
                store
                    .append(&stream, ExpectedVersion::Exact(round * N), batch)
                    .unwrap();
            }));
            raw_times.push(time(|| raw_batch(&payloads)));
            env_times.push(time(|| raw_batch(&enveloped)));
        }
        let (s, r, e) = (median(store_times), median(raw_times), median(env_times));
        let ratio = |base: Duration| format!("{:.2}×", s.as_secs_f64() / base.as_secs_f64());
        t.row(vec![
            format!("{durability:?}"),
            ms(s),
            ms(r),
            ratio(r),
            ms(e),
            ratio(e),
        ]);
    }
    println!("## One batch of {N} events, one commit: store overhead over raw heed\n");
    t.print();
}

/// How each stream's events are found, simulated on raw heed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// The payload keyed by stream and version, and a pointer to it in the log.
    PayloadInStreamIndex,
    /// The payload in the log, and a stream index entry (stream, version) → position for
    /// every event.
    IndexPerEvent,
    /// The payload in the log, one head per stream, and an index entry every 32 events (the
    /// store's layout; the back pointer is part of the record).
    HeadsAndSparseIndex,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::PayloadInStreamIndex => "payload by stream and version, pointer in the log",
            Layout::IndexPerEvent => "payload in the log, index entry per event",
            Layout::HeadsAndSparseIndex => {
                "payload in the log, stream heads, index every 32nd (chosen)"
            }
        }
    }

    /// Writes event `version` of stream `s` at `position` in `txn`.
    fn write(
        self,
        raw: &Raw,
        txn: &mut heed::RwTxn<'_>,
        s: u64,
        version: u64,
        position: u64,
        payload: &[u8],
    ) {
        let mut key = format!("account-{s}").into_bytes();
        let head_key = key.clone();
        key.push(0);
        key.extend_from_slice(&version.to_be_bytes());
        match self {
            Layout::PayloadInStreamIndex => {
                raw.log
                    .put_with_flags(txn, PutFlags::APPEND, &position, &key)
                    .unwrap();
                raw.other.put(txn, &key, payload).unwrap();
            }
            Layout::IndexPerEvent => {
                raw.log
                    .put_with_flags(txn, PutFlags::APPEND, &position, payload)
                    .unwrap();
                raw.other.put(txn, &key, &position.to_be_bytes()).unwrap();
            }
            Layout::HeadsAndSparseIndex => {
                raw.log
                    .put_with_flags(txn, PutFlags::APPEND, &position, payload)
                    .unwrap();
                if version.is_multiple_of(32) {
                    raw.other.put(txn, &key, &position.to_be_bytes()).unwrap();
                }
                let mut head = version.to_be_bytes().to_vec();
                head.extend_from_slice(&position.to_be_bytes());
                raw.third.put(txn, &head_key, &head).unwrap();
            }
        }
    }
}

/// Layout choices, measured on raw heed with durable commits: a batch of 1000 events to one
/// stream, and groups of 64 single-event appends spread over 1000 streams.
fn layouts() {
    const BATCH: u64 = 1000;
    const GROUP: u64 = 64;
    const STREAMS: u64 = 1000;
    let payload = new_event(1).payload;
    let mut t = Table::new(&[
        "layout",
        "1000 events, 1 stream",
        "64 events over 1000 streams",
    ]);
    for layout in [
        Layout::PayloadInStreamIndex,
        Layout::IndexPerEvent,
        Layout::HeadsAndSparseIndex,
    ] {
        let mut cells = vec![layout.name().to_owned()];
        for spread in [false, true] {
            let dir = bench_dir();
            let raw = raw(dir.path(), Durability::Sync);
            let mut versions = vec![0u64; STREAMS as usize];
            let mut next = 1u64;
            let mut pick = 1u64;
            let mut commit = |n: u64, raw: &Raw| {
                let mut txn = raw.env.write_txn().unwrap();
                for _ in 0..n {
                    let s = if spread {
                        pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (pick >> 33) % STREAMS
                    } else {
                        0
                    };
                    versions[s as usize] += 1;
                    layout.write(raw, &mut txn, s, versions[s as usize], next, &payload);
                    next += 1;
                }
                txn.commit().unwrap();
            };
            let n = if spread { GROUP } else { BATCH };
            // Give every stream some history first, so the index spans many pages.
            for _ in 0..25 {
                commit(if spread { STREAMS } else { BATCH }, &raw);
            }
            let d = median_of(ROUNDS * 4, || time(|| commit(n, &raw)));
            cells.push(per_sec(rate(n, d)));
        }
        t.row(cells);
    }
    println!("## Layouts on raw heed: durable commits (events/s)\n");
    t.print();
}
