//! The LMDB store against raw heed doing the same writes: one batch in one commit, and the
//! stream layouts the store chose between.

use std::path::Path;

use es::{Durability, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, StreamId};
use es_bench::bank;
use es_bench::{
    Table, alternate, alternate_samples, bench_dir, median, ms, per_sec, rate, speed_ratio, time,
};
use heed::types::{Bytes, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, PutFlags, WithoutTls};

use crate::{Config, Summary};

type Position = U64<heed::byteorder::BigEndian>;

/// A raw heed environment with one `position → bytes` database, and two `bytes → bytes` ones
/// for the layout comparison.
pub(crate) struct Raw {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) log: Database<'static, Position, Bytes>,
    other: Database<'static, Bytes, Bytes>,
    third: Database<'static, Bytes, Bytes>,
}

/// A raw heed log, written in commits of any number of records, positions counting on.
pub(crate) struct RawLog {
    raw: Raw,
    next: u64,
}

impl RawLog {
    pub(crate) fn new(raw: Raw) -> Self {
        RawLog { raw, next: 1 }
    }

    /// Writes `records` in one commit.
    pub(crate) fn commit<'r>(&mut self, records: impl IntoIterator<Item = &'r [u8]>) {
        let mut txn = self.raw.env.write_txn().unwrap();
        for r in records {
            self.raw
                .log
                .put_with_flags(&mut txn, PutFlags::APPEND, &self.next, r)
                .unwrap();
            self.next += 1;
        }
        txn.commit().unwrap();
    }
}

pub(crate) fn raw(dir: &Path, durability: Durability) -> Raw {
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

/// A record of the size the store writes for `e` in `stream`: what a store must keep of each
/// event besides the payload (checksum, tag, timestamp, event id, version and the lengths as
/// short varints, stream id, type name), zeroed, then the payload.
pub(crate) fn record(stream: &str, e: &NewEvent) -> Vec<u8> {
    const FIXED: usize = 4 + 1 + 8 + 16 + 5;
    let mut r = vec![0; FIXED];
    r.extend_from_slice(stream.as_bytes());
    r.extend_from_slice(e.event_type.as_bytes());
    r.extend_from_slice(&e.payload);
    r
}

fn store(dir: &Path, durability: Durability) -> LmdbStore {
    LmdbOptions::new()
        .durability(durability)
        .map_size(1 << 30)
        .open(dir)
        .unwrap()
}

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    batch_overhead(cfg, summary);
    layouts(cfg);
}

/// One batch of 1000 events in one commit: the store vs raw heed writing the same payloads.
fn batch_overhead(cfg: &Config, summary: &mut Summary) {
    const N: u64 = 1000;
    let events: Vec<NewEvent> = (2..N + 2).map(bank::new_event).collect();
    let records: Vec<Vec<u8>> = events.iter().map(|e| record("account-1", e)).collect();
    let mut t = Table::new(&[
        "durability",
        "LmdbStore::append",
        "raw heed, payloads",
        "store / raw, paired",
        "raw heed, payload + envelope",
        "store / raw, paired",
    ]);
    for durability in [Durability::Sync, Durability::NoSync] {
        let dir = bench_dir(&cfg.root);
        let store = store(dir.path(), durability);
        let stream = StreamId::new("account", 1).unwrap();
        // Each baseline in an environment of its own, growing as the store's does.
        let dir = bench_dir(&cfg.root);
        let mut bare = RawLog::new(raw(dir.path(), durability));
        let dir = bench_dir(&cfg.root);
        let mut same = RawLog::new(raw(dir.path(), durability));
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
        let enveloped: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut round = 0u64;
        let mut store_batch = || {
            let batch = events.clone();
            let d = time(|| {
                store
                    .append(&stream, ExpectedVersion::Exact(round * N), batch)
                    .unwrap();
            });
            round += 1;
            d
        };
        let mut bare_batch = || time(|| bare.commit(payloads.iter().copied()));
        let mut same_batch = || time(|| same.commit(enveloped.iter().copied()));
        let [store_times, raw_times, env_times] = alternate_samples(
            cfg.rounds * 4,
            [&mut store_batch, &mut bare_batch, &mut same_batch],
        );
        // The store's time over a baseline's, paired round by round.
        let (over_raw, over_env) = (
            speed_ratio(&raw_times, &store_times),
            speed_ratio(&env_times, &store_times),
        );
        let (s, r, e) = (median(store_times), median(raw_times), median(env_times));
        t.row(vec![
            format!("{durability:?}"),
            ms(s),
            ms(r),
            format!("{over_raw:.2}×"),
            ms(e),
            format!("{over_env:.2}×"),
        ]);
        if durability == Durability::Sync {
            summary.goal(
                "LmdbStore, one durable batch of 1000 events, vs raw heed (the same records)",
                "≤ 1.3×",
                format!(
                    "{} vs {} (medians); {over_env:.2}× paired by round",
                    ms(s),
                    ms(e)
                ),
                over_env <= 1.3,
            );
        }
    }
    println!("## One batch of {N} events, one commit: LmdbStore over raw heed\n");
    println!(
        "The first baseline writes only the payloads; the second writes records of the size \
         the store writes: the payload and what any store must keep of an event (stream id, \
         type name, event id, timestamp, version). Ratios are medians of each round's ratio.\n"
    );
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

/// One layout's raw environment, and where its streams are.
struct LayoutRun {
    _dir: tempfile::TempDir,
    raw: Raw,
    layout: Layout,
    versions: Vec<u64>,
    next: u64,
    pick: u64,
}

impl LayoutRun {
    fn new(cfg: &Config, layout: Layout, streams: u64) -> Self {
        let dir = bench_dir(&cfg.root);
        let raw = raw(dir.path(), Durability::Sync);
        LayoutRun {
            _dir: dir,
            raw,
            layout,
            versions: vec![0; streams as usize],
            next: 1,
            pick: 1,
        }
    }

    /// Commits `n` events, all to stream 0 or spread at random over the streams.
    fn commit(&mut self, n: u64, spread: bool, payload: &[u8]) {
        let mut txn = self.raw.env.write_txn().unwrap();
        for _ in 0..n {
            let s = if spread {
                self.pick = self
                    .pick
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (self.pick >> 33) % self.versions.len() as u64
            } else {
                0
            };
            self.versions[s as usize] += 1;
            let version = self.versions[s as usize];
            self.layout
                .write(&self.raw, &mut txn, s, version, self.next, payload);
            self.next += 1;
        }
        txn.commit().unwrap();
    }
}

/// Layout choices, measured on raw heed with durable commits: a batch of 1000 events to one
/// stream, and groups of 64 single-event appends spread over 1000 streams.
fn layouts(cfg: &Config) {
    const BATCH: u64 = 1000;
    const GROUP: u64 = 64;
    const STREAMS: u64 = 1000;
    let payload = bank::new_event(2).payload;
    let layouts = [
        Layout::PayloadInStreamIndex,
        Layout::IndexPerEvent,
        Layout::HeadsAndSparseIndex,
    ];
    let mut cells: Vec<Vec<String>> = layouts.iter().map(|l| vec![l.name().to_owned()]).collect();
    for spread in [false, true] {
        let [mut a, mut b, mut c] = layouts.map(|l| LayoutRun::new(cfg, l, STREAMS));
        // Give every stream some history first, so the index spans many pages.
        for run in [&mut a, &mut b, &mut c] {
            for _ in 0..25 {
                run.commit(if spread { STREAMS } else { BATCH }, spread, &payload);
            }
        }
        let n = if spread { GROUP } else { BATCH };
        let payload = &payload;
        let medians = alternate(
            cfg.rounds * 4,
            [
                &mut || time(|| a.commit(n, spread, payload)),
                &mut || time(|| b.commit(n, spread, payload)),
                &mut || time(|| c.commit(n, spread, payload)),
            ],
        );
        for (row, d) in cells.iter_mut().zip(medians) {
            row.push(per_sec(rate(n, d)));
        }
    }
    println!("## Stream layouts on raw heed: durable commits (events/s)\n");
    println!(
        "Why the store keeps payloads in the global log with stream heads and a sparse index \
         (see docs/STORAGE.md). Each layout gets 25 commits of history first.\n"
    );
    let mut t = Table::new(&[
        "layout",
        "1000 events, 1 stream",
        "64 events over 1000 streams",
    ]);
    for row in cells {
        t.row(row);
    }
    t.print();
}
