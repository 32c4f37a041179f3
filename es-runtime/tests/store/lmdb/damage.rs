//! Damaged files: a store written from several threads, then damaged on disk (bytes flipped
//! in keys and values, random runs written, the data file truncated, pages zeroed) and read
//! in a child process. Every trial must end in a typed error or in data equal to what was
//! written: never a wrong answer with `Ok`, never a panic or a hang.
//!
//! The children are this test binary run again with `ES_DAMAGE_DIR` naming the damaged
//! store; the `child` test below reads it and prints what it found on one line. Where damage
//! to LMDB's own pages still kills the reader (a signal), `verify_path` is run on the store in
//! another child (`verify_child`): the trial passes when that child reports the damage (it
//! must not die itself). A truncated or emptied file must never end in a signal.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use es_runtime::event::Metadata;
use es_runtime::history::fold_log;
use es_runtime::projection::{Projection, ProjectionRunner};
use es_runtime::read::{Envelope, Filter, Until};
use es_runtime::store::lmdb::{Durability, Table, TableProjection, TableRunner, verify_path};
use es_runtime::subscription::Subscription;
use es_runtime::{EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, StreamId};

use crate::common::AccountEvent;

const DIR: &str = "ES_DAMAGE_DIR";
const THREADS: u64 = 4;
const STREAMS_PER_THREAD: u64 = 10;
const PAGE: usize = 4096;

/// Bypasses the test harness's output capture, so tallies show in a plain `cargo test`.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A small xorshift generator, seeded from the clock (the seed is printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    match std::env::var("ES_DAMAGE_SEED") {
        Ok(s) => s.parse().expect("ES_DAMAGE_SEED is a number"),
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        }
    }
}

fn stream(n: u64) -> StreamId {
    StreamId::new("account", n).unwrap()
}

/// Writes `appends` appends of 1 to 3 events from each of [`THREADS`] threads, each thread to
/// its own streams, and closes the store.
pub(crate) fn write_store(dir: &Path, appends: u64) {
    let store = LmdbOptions::new()
        .durability(Durability::NoSync)
        .map_size(1 << 20)
        .heads_every(256)
        .open(dir)
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for i in 0..appends {
                    let id = stream(t * STREAMS_PER_THREAD + i % STREAMS_PER_THREAD);
                    let events = (0..1 + (i * 7 + t) % 3)
                        .map(|j| {
                            let amount = (t << 32) | (i << 8) | j;
                            let event = if j == 1 {
                                AccountEvent::Withdrawn { amount }
                            } else {
                                AccountEvent::Deposited { amount }
                            };
                            let metadata = if i % 5 == 0 {
                                Metadata::default().with("thread", t.to_string())
                            } else {
                                Metadata::default()
                            };
                            NewEvent::from_event(&event, metadata).unwrap()
                        })
                        .collect();
                    store.append(&id, ExpectedVersion::Any, events).unwrap();
                }
            });
        }
    });
}

/// What a reader sees of the store, hashed: the global log, then every stream with its
/// version; each part a hash or the error that ended it.
fn digest(store: &LmdbStore) -> [Result<u64, String>; 2] {
    let hash = |seen: String| {
        // FNV-1a.
        seen.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let all = store
        .read_all(0, usize::MAX)
        .map(|all| hash(format!("{all:?}")))
        .map_err(|e| e.to_string());
    let streams = (|| {
        let mut seen = String::new();
        for n in 0..THREADS * STREAMS_PER_THREAD {
            let id = stream(n);
            let version = store.stream_version(&id).map_err(|e| e.to_string())?;
            let events = store
                .read_stream(&id, 1, usize::MAX)
                .map_err(|e| e.to_string())?;
            seen.push_str(&format!("{version} {events:?}"));
        }
        Ok(hash(seen))
    })();
    [all, streams]
}

fn show(part: &Result<u64, String>) -> String {
    match part {
        Ok(hash) => format!("ok {hash:016x}"),
        Err(e) => format!("error {}", e.replace(';', ",")),
    }
}

#[test]
fn child() {
    let Ok(dir) = std::env::var(DIR) else {
        return;
    };
    let line = match LmdbStore::open(&dir) {
        Err(e) => format!("error open: {}", e.to_string().replace(';', ",")),
        Ok(store) => digest(&store)
            .iter()
            .map(show)
            .collect::<Vec<_>>()
            .join("; "),
    };
    println!("RESULT {line}");
    std::process::exit(0);
}

#[test]
fn verify_child() {
    let Ok(dir) = std::env::var(VERIFY_DIR) else {
        return;
    };
    let line = match verify_path(&dir) {
        Ok(report) if report.is_sound() => "sound".to_owned(),
        Ok(report) => format!("damaged {}", report.damage.len()),
        Err(e) => format!("error {e}"),
    };
    println!("VERIFY {line}");
    std::process::exit(0);
}

const VERIFY_DIR: &str = "ES_VERIFY_DIR";

/// What `verify_path` in a child process made of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verified {
    /// A report with damage, or an error naming it.
    Damaged,
    /// The verifying child was killed by a signal: its parent knows the store is damaged.
    Died,
    /// A sound report, or no report at all.
    Missed,
}

/// Runs `verify_path` on `dir` in a child process: what it found, and what it said.
fn verify_in_child(dir: &Path) -> (Verified, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lmdb::damage::verify_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VERIFY_DIR, dir)
        .stderr(Stdio::null())
        .output()
        .expect("runs the verifying child");
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = out.status.signal() {
        return (Verified::Died, format!("verify killed by signal {signal}"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        // The harness prints `test NAME ... ` on the same line first.
        .find_map(|l| l.split_once("VERIFY ").map(|(_, r)| r))
        .map_or_else(|| format!("no result ({})", out.status), str::to_owned);
    let verified = if line.starts_with("damaged") || line.starts_with("error") {
        Verified::Damaged
    } else {
        Verified::Missed
    };
    (verified, line)
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// The store read as it was written.
    Equal,
    /// Opening or reading failed with an error.
    Error,
    /// Read `Ok`, but not what was written.
    Wrong,
    /// The child panicked or exited without a result.
    Panic,
    /// The child was killed by a signal (SIGBUS, SIGSEGV, SIGABRT from an LMDB assertion),
    /// and `verify_path` in a child reported the store damaged.
    FaultCaughtByVerify,
    /// The child was killed by a signal, and so was `verify_path` in a child (which walks
    /// LMDB's pages with plain file I/O before it reads through LMDB, so that it reports such
    /// damage instead).
    FaultVerifyDied,
    /// The child was killed by a signal, and `verify_path` in a child found nothing.
    Fault,
    /// The child did not finish in time.
    Hang,
}

/// Runs the reading child on `dir`: its outcome, and the line it printed.
fn run_child(dir: &Path, expected: &[String]) -> (Outcome, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lmdb::damage::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns the child process");
    // Read while it runs: a child that fills the pipe would otherwise wait for it forever.
    let mut stdout = child.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (Outcome::Hang, String::new());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = reading.join().unwrap();
    let line = out
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or("")
        .to_owned();
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        return (Outcome::Fault, format!("signal {signal}"));
    }
    if !status.success() || line.is_empty() {
        return (Outcome::Panic, format!("{status}: {out}"));
    }
    let parts: Vec<&str> = line.split("; ").collect();
    let outcome = if parts
        .iter()
        .zip(expected)
        .any(|(p, e)| p.starts_with("ok") && p != e)
    {
        Outcome::Wrong
    } else if parts == expected {
        Outcome::Equal
    } else {
        Outcome::Error
    };
    (outcome, line)
}

/// The offsets in `file` of the keys of the log's live leaf entries (8-byte big-endian
/// positions), found by walking LMDB's pages as LMDB does: from the newer meta page to the
/// main database, its `log` entry, and down the log's tree by the node pointers of each page.
/// Stale copies (older versions of a page, and the unused middle of a live page, which LMDB
/// leaves with whatever it held) are never taken for keys: damaging one of those would change
/// nothing a reader sees.
fn log_key_offsets(file: &[u8], last: u64) -> Vec<usize> {
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([file[at], file[at + 1]]));
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap());
    let txn = |meta: usize| u64_at(meta + 144);
    let meta = if txn(PAGE) > txn(0) { PAGE } else { 0 };
    // The nodes of a page: (offset of the node, its flags' page-number bits, key offset, key length).
    let nodes = |page: usize| {
        let lower = u16_at(page + 12);
        (0..(lower - 16) / 2).map(move |i| {
            let node = page + u16_at(page + 16 + 2 * i);
            (node, node + 8, u16_at(node + 6))
        })
    };
    // Down a tree from `root` to its leaves, in key order.
    let leaves = |root: u64| {
        let mut found = Vec::new();
        let mut stack = vec![root as usize * PAGE];
        while let Some(page) = stack.pop() {
            if file[page + 10] & 0x02 != 0 {
                found.push(page);
                continue;
            }
            let children: Vec<usize> = nodes(page)
                .map(|(node, ..)| {
                    let child = u16_at(node) | u16_at(node + 2) << 16 | u16_at(node + 4) << 32;
                    child * PAGE
                })
                .collect();
            stack.extend(children.into_iter().rev());
        }
        found
    };
    let main_root = u64_at(meta + 16 + 72 + 40);
    let log_root = leaves(main_root)
        .into_iter()
        .flat_map(nodes)
        .find(|&(_, key, len)| &file[key..key + len] == b"log")
        .map(|(_, key, len)| u64_at(key + len + 40))
        .expect("the main database names the log");
    let found: Vec<usize> = leaves(log_root)
        .into_iter()
        .flat_map(nodes)
        .filter(|&(_, _, len)| len == 8)
        .map(|(_, key, _)| key)
        .collect();
    assert!(
        found
            .iter()
            .all(|&at| (1..=last)
                .contains(&u64::from_be_bytes(file[at..at + 8].try_into().unwrap()))),
        "every log key is a position"
    );
    found
}

/// The kinds of damage a trial does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// One byte of a log record's key XORed with a random non-zero value.
    KeyByte,
    /// One byte anywhere in the file XORed with a random non-zero value.
    AnyByte,
    /// 64 random bytes written at a random offset.
    RandomRun,
    /// The file truncated (to 0, to a few pages, to half, short of its end by a page or a
    /// few bytes).
    Truncate,
    /// A whole page (meta pages included) overwritten with zeros.
    ZeroPage,
}

fn damage(kind: Kind, file: &mut Vec<u8>, keys: &[usize], rng: &mut Rng) -> String {
    let flip = |rng: &mut Rng| 1 + rng.below(255) as u8;
    match kind {
        Kind::KeyByte => {
            let at = keys[rng.below(keys.len() as u64) as usize] + rng.below(8) as usize;
            file[at] ^= flip(rng);
            format!("key byte at {at}")
        }
        Kind::AnyByte => {
            let at = rng.below(file.len() as u64) as usize;
            file[at] ^= flip(rng);
            format!("byte at {at}")
        }
        Kind::RandomRun => {
            let at = rng.below((file.len() - 64) as u64) as usize;
            for b in &mut file[at..at + 64] {
                *b = rng.next() as u8;
            }
            format!("64 random bytes at {at}")
        }
        Kind::Truncate => {
            let len = file.len();
            let to = match rng.below(7) {
                0 => 0,
                1 => PAGE,
                2 => 2 * PAGE,
                3 => len / 2,
                4 => len - PAGE,
                5 => len - 1 - rng.below(100) as usize,
                _ => rng.below(len as u64) as usize,
            };
            file.truncate(to);
            format!("truncated to {to} of {len}")
        }
        Kind::ZeroPage => {
            let page = rng.below((file.len() / PAGE) as u64) as usize;
            file[page * PAGE..(page + 1) * PAGE].fill(0);
            format!("page {page} zeroed")
        }
    }
}

/// The trials of each kind in a run: `ES_DAMAGE_TRIALS` (default 100, 500 trials in all,
/// which take 10-40 s; a longer run sets it to 400 or more).
fn trials_per_kind() -> u64 {
    std::env::var("ES_DAMAGE_TRIALS").map_or(100, |s| s.parse().expect("a number"))
}

#[test]
fn damaged_files_end_in_an_error_or_in_the_data_written() {
    let base = tempfile::tempdir().unwrap();
    let original = base.path().join("original");
    write_store(&original, 150);
    let started = Instant::now();
    let (expected, last) = {
        let store = LmdbStore::open(&original).unwrap();
        let expected: Vec<String> = digest(&store).iter().map(show).collect();
        assert!(expected.iter().all(|p| p.starts_with("ok")));
        (expected, store.head_position().unwrap())
    };
    let bytes = std::fs::read(original.join("data.mdb")).unwrap();
    let keys = log_key_offsets(&bytes, last);
    assert!(
        keys.len() as u64 > last / 2,
        "found {} log keys",
        keys.len()
    );
    let seed = seed();
    let mut rng = Rng(seed);
    report(&format!("damage: expected {}", expected.join("; ")));
    report(&format!(
        "damage: {last} events, a data file of {} bytes, {} log keys found; ES_DAMAGE_SEED={seed}",
        bytes.len(),
        keys.len()
    ));
    let kinds = [
        Kind::KeyByte,
        Kind::AnyByte,
        Kind::RandomRun,
        Kind::Truncate,
        Kind::ZeroPage,
    ];
    let mut tally: BTreeMap<(Kind, Outcome), u64> = BTreeMap::new();
    let mut bad = Vec::new();
    let trial = base.path().join("trial");
    for round in 0..trials_per_kind() {
        for kind in kinds {
            let mut file = bytes.clone();
            let what = damage(kind, &mut file, &keys, &mut rng);
            let _ = std::fs::remove_dir_all(&trial);
            std::fs::create_dir_all(&trial).unwrap();
            std::fs::write(trial.join("data.mdb"), &file).unwrap();
            std::fs::copy(original.join("es-store"), trial.join("es-store")).unwrap();
            let (mut outcome, mut line) = run_child(&trial, &expected);
            if outcome == Outcome::Fault {
                let (verified, said) = verify_in_child(&trial);
                outcome = match verified {
                    Verified::Damaged => Outcome::FaultCaughtByVerify,
                    Verified::Died => Outcome::FaultVerifyDied,
                    Verified::Missed => Outcome::Fault,
                };
                line = format!("{line}, {said}");
            }
            *tally.entry((kind, outcome)).or_default() += 1;
            // A truncated or emptied file is caught at open, before anything is mapped: it
            // never ends in a signal.
            let allowed = match outcome {
                Outcome::Equal | Outcome::Error => true,
                Outcome::FaultCaughtByVerify => kind != Kind::Truncate,
                Outcome::Wrong
                | Outcome::Panic
                | Outcome::Fault
                | Outcome::FaultVerifyDied
                | Outcome::Hang => false,
            };
            if !allowed {
                bad.push(format!("round {round}, {what}: {outcome:?} {line}"));
                if let Ok(keep) = std::env::var("ES_DAMAGE_KEEP") {
                    let kept = Path::new(&keep).join(format!("round-{round}-{kind:?}"));
                    std::fs::create_dir_all(&kept).unwrap();
                    for name in ["data.mdb", "es-store"] {
                        std::fs::copy(trial.join(name), kept.join(name)).unwrap();
                    }
                }
            }
        }
    }
    for kind in kinds {
        let counts: Vec<String> = tally
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, o), n)| format!("{o:?} {n}"))
            .collect();
        report(&format!("damage: {kind:?}: {}", counts.join(", ")));
    }
    let mut totals: BTreeMap<Outcome, u64> = BTreeMap::new();
    for ((_, outcome), n) in &tally {
        *totals.entry(*outcome).or_default() += n;
    }
    report(&format!(
        "damage: all kinds: {totals:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    assert!(
        bad.is_empty(),
        "{} bad trials:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// A store of [`write_store`] with a high byte of the live key of the record in the middle of
/// the log flipped: the record moves far past the log's end, out of order. Returns the
/// position whose key was changed.
fn store_with_a_flipped_key(dir: &Path) -> u64 {
    write_store(dir, 100);
    let last = LmdbStore::open(dir).unwrap().head_position().unwrap();
    let path = dir.join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let keys = log_key_offsets(&bytes, last);
    assert_eq!(keys.len() as u64, last, "one live key per position");
    // The live key of the position in the middle of the log: the keys are in log order.
    let at = keys[keys.len() / 2];
    let position = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(position, last / 2 + 1);
    bytes[at + 3] ^= 0x45;
    std::fs::write(&path, bytes).unwrap();
    position
}

struct Count(u64);

impl Projection for Count {
    type Event = AccountEvent;
    type Error = Infallible;
    fn name(&self) -> &str {
        "count"
    }
    fn apply(&mut self, _: Envelope<'_, AccountEvent>) -> Result<(), Infallible> {
        self.0 += 1;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Infallible> {
        self.0 = 0;
        Ok(())
    }
}

struct Positions;

impl TableProjection for Positions {
    type Event = AccountEvent;
    type Error = Infallible;
    fn name(&self) -> &str {
        "positions"
    }
    fn apply(
        &self,
        table: &mut Table<'_>,
        e: Envelope<'_, AccountEvent>,
    ) -> Result<(), Infallible> {
        table.put(e.position.to_be_bytes(), e.stream);
        Ok(())
    }
}

#[test]
fn a_flipped_byte_in_a_log_key_is_an_error_naming_the_position_for_every_log_reader() {
    let dir = tempfile::tempdir().unwrap();
    let position = store_with_a_flipped_key(dir.path());
    let store = LmdbStore::open(dir.path()).unwrap();
    let named = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        assert!(
            text.contains(&position.to_string()),
            "{text:?} names position {position}"
        );
    };

    match store.read_all(0, usize::MAX) {
        Ok(events) => panic!(
            "read_all: Ok with {} events, the last at {:?}, the key of {position} flipped",
            events.len(),
            events.last().map(|e| e.position)
        ),
        Err(error) => named(&error),
    }

    // A subscription hands out positions in order, then fails.
    let mut subscription = Subscription::new(&store, Filter::all());
    let mut previous = 0;
    let error = loop {
        match subscription.try_next() {
            Ok(Some(e)) => {
                assert_eq!(e.position, previous + 1, "positions in order, no gaps");
                previous = e.position;
            }
            Ok(None) => panic!("the subscription reached the end after {previous}"),
            Err(e) => break e,
        }
    };
    named(&error);
    assert!(previous < position);

    let mut runner = ProjectionRunner::new(&store, Count(0));
    named(&runner.catch_up().unwrap_err());
    let mut tables = TableRunner::new(&store, Positions);
    named(&tables.rebuild(|_| {}).unwrap_err());
    let folded = fold_log::<AccountEvent, _, _>(&store, Until::Position(u64::MAX), 0, |n, _| n + 1);
    named(&folded.unwrap_err());
}

#[test]
fn an_emptied_or_missing_data_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 10);
    let data = dir.path().join("data.mdb");
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(0)
        .unwrap();
    let error = LmdbStore::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("data.mdb"), "{error}");
    assert_eq!(
        std::fs::metadata(&data).unwrap().len(),
        0,
        "nothing written"
    );
    std::fs::remove_file(&data).unwrap();
    let error = LmdbStore::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("data.mdb"), "{error}");
    assert!(!data.exists(), "nothing created");
}

#[test]
fn a_truncated_data_file_is_an_open_error_naming_both_sizes() {
    let base = tempfile::tempdir().unwrap();
    let original = base.path().join("original");
    write_store(&original, 150);
    let bytes = std::fs::read(original.join("data.mdb")).unwrap();
    for to in [PAGE, 2 * PAGE, bytes.len() / 2, bytes.len() - PAGE] {
        let trial = base.path().join(format!("truncated-{to}"));
        std::fs::create_dir_all(&trial).unwrap();
        std::fs::write(trial.join("data.mdb"), &bytes[..to]).unwrap();
        let (outcome, line) = run_child(&trial, &[]);
        assert_eq!(outcome, Outcome::Error, "truncated to {to}: {line}");
        assert!(line.contains(&to.to_string()), "{line}");
    }
}

#[test]
fn verify_finds_a_sound_store_sound_and_names_each_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 300);
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        let id = stream(3);
        let version = store.stream_version(&id).unwrap();
        let snapshot = es_runtime::store::Snapshot {
            version,
            state_version: 1,
            payload: vec![0xc0],
        };
        store.save_snapshot(&id, snapshot, 2).unwrap();
        store.save_checkpoint("count", 10).unwrap();
        TableRunner::new(&store, Positions).catch_up().unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_sound(), "{report}");
        assert_eq!(report.events, store.head_position().unwrap());
        assert_eq!(report.streams, THREADS * STREAMS_PER_THREAD);
        assert_eq!(report.snapshots, 1);
        assert_eq!(report.checkpoints, 2);
        assert_eq!(report.table_entries, report.events);
        assert!(report.index_entries > 0);
    }
    assert!(verify_path(dir.path()).unwrap().is_sound());

    let position = store_with_a_flipped_key(dir.path());
    let report = verify_path(dir.path()).unwrap();
    assert!(!report.is_sound());
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.at == es_runtime::error::Location::Position(position)),
        "{report}"
    );
}

#[test]
fn a_last_log_key_damaged_into_a_smaller_position_is_an_error_naming_the_position() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 100);
    let last = LmdbStore::open(dir.path())
        .unwrap()
        .head_position()
        .unwrap();
    let path = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    for at in log_key_offsets(&bytes, last) {
        if bytes[at..at + 8] == last.to_be_bytes() {
            bytes[at..at + 8].copy_from_slice(&(last - 100).to_be_bytes());
        }
    }
    std::fs::write(&path, bytes).unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let error = store.read_all(0, usize::MAX).unwrap_err();
    assert!(error.to_string().contains(&last.to_string()), "{error}");
    assert_eq!(store.head_position().unwrap(), last);
}

#[test]
fn a_last_log_key_damaged_far_past_the_end_is_an_error_without_a_walk_of_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 100);
    let last = LmdbStore::open(dir.path())
        .unwrap()
        .head_position()
        .unwrap();
    let path = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut flipped = 0;
    for at in log_key_offsets(&bytes, last) {
        if bytes[at..at + 8] == last.to_be_bytes() {
            // The highest byte: the key is now some 2^62 past the log's end.
            bytes[at] ^= 0x40;
            flipped += 1;
        }
    }
    assert!(flipped > 0);
    std::fs::write(&path, bytes).unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let started = Instant::now();
    let error = store.read_all(0, usize::MAX).unwrap_err();
    assert!(error.to_string().contains(&last.to_string()), "{error}");
    // The stream heads after the heads checkpoint are read from the log's tail, which now
    // reaches that far: each stream is answered (a version, or an error naming the missing
    // position), at once instead of after a walk of 2^62 missing positions.
    let mut failed = 0;
    for n in 0..THREADS * STREAMS_PER_THREAD {
        let id = stream(n);
        match store.stream_version(&id) {
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                // The damaged record's position, or the one after it: the gap starts there.
                let text = e.to_string();
                assert!(
                    [last, last + 1]
                        .iter()
                        .any(|p| text.contains(&format!("position {p}:"))),
                    "{e} (the last position {last})"
                );
            }
        }
        let appended = store.append(
            &id,
            ExpectedVersion::Any,
            vec![NewEvent::raw("E", vec![0xc0])],
        );
        assert!(appended.is_err(), "an append after a damaged last key");
    }
    assert!(failed > 0, "the stream of the damaged record is unknown");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The offsets in `file` of the stream heads' leaf entries: where each key starts, and the
/// key's length (LMDB's node layout, as in [`log_key_offsets`]: a 24-byte value, a key of a
/// stream of [`write_store`]).
fn head_offsets(file: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for at in 0..file.len().saturating_sub(8 + 24) {
        let node = &file[at..at + 8];
        let key_len = usize::from(u16::from_le_bytes([node[6], node[7]]));
        if node[..6] == [24, 0, 0, 0, 0, 0]
            && (9..=10).contains(&key_len)
            && file[at + 8..].starts_with(b"account-")
        {
            found.push((at + 8, key_len));
        }
    }
    found
}

#[test]
fn a_flipped_byte_in_a_stream_head_is_an_error_never_another_version() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 100);
    let expected: Vec<(u64, usize)> = {
        let store = LmdbStore::open(dir.path()).unwrap();
        (0..THREADS * STREAMS_PER_THREAD)
            .map(|n| {
                let id = stream(n);
                let events = store.read_stream(&id, 1, usize::MAX).unwrap();
                (store.stream_version(&id).unwrap(), events.len())
            })
            .collect()
    };
    let path = dir.path().join("data.mdb");
    let bytes = std::fs::read(&path).unwrap();
    let heads = head_offsets(&bytes);
    // The live head of one stream in the middle of the heads, and every older copy of it.
    let key = b"account-17";
    let copies: Vec<usize> = heads
        .iter()
        .filter(|&&(at, len)| &bytes[at..at + len] == key)
        .map(|&(at, _)| at)
        .collect();
    assert!(!copies.is_empty(), "{} heads found", heads.len());
    let mut errors = 0;
    // Each byte of the key, then each byte of the value (checksum, version, position, link).
    for i in 0..key.len() + 24 {
        for flip in [0x01, 0x80] {
            let mut damaged = bytes.clone();
            for &at in &copies {
                damaged[at + i] ^= flip;
            }
            std::fs::write(&path, &damaged).unwrap();
            let store = LmdbStore::open(dir.path()).unwrap();
            for n in 0..THREADS * STREAMS_PER_THREAD {
                let id = stream(n);
                let read = store.stream_version(&id).and_then(|version| {
                    let events = store.read_stream(&id, 1, usize::MAX)?;
                    Ok((version, events.len()))
                });
                if n == 17 {
                    assert!(read.is_err(), "byte {i} ^ {flip:#x}: {read:?}");
                }
                match read {
                    Ok(read) => assert_eq!(
                        read, expected[n as usize],
                        "{id}, byte {i} of the head of account-17 ^ {flip:#x}"
                    ),
                    Err(e) if n == 17 => {
                        errors += 1;
                        assert!(e.to_string().contains("account-17"), "{e}");
                    }
                    Err(_) => {}
                }
            }
            let appended = store.append(
                &stream(17),
                ExpectedVersion::Any,
                vec![NewEvent::raw("E", vec![0xc0])],
            );
            assert!(appended.is_err(), "byte {i} ^ {flip:#x}: {appended:?}");
            drop(store);
            let report = verify_path(dir.path()).unwrap();
            assert!(!report.is_sound(), "byte {i} ^ {flip:#x}");
        }
    }
    assert_eq!(errors, 2 * (key.len() + 24));
    std::fs::write(&path, &bytes).unwrap();
    assert!(verify_path(dir.path()).unwrap().is_sound());
}

/// The newer meta page's record of LMDB's free list: its root page (see `pages` in the store).
fn free_list_root(file: &[u8]) -> u64 {
    let txn = |meta: usize| u64::from_le_bytes(file[meta + 144..meta + 152].try_into().unwrap());
    let meta = if txn(PAGE) > txn(0) { PAGE } else { 0 };
    u64::from_le_bytes(file[meta + 80..meta + 88].try_into().unwrap())
}

#[test]
fn verify_walks_the_free_list_and_reports_a_page_outside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 150);
    let report = verify_path(dir.path()).unwrap();
    assert!(report.is_sound(), "{report}");
    assert!(report.free_pages > 0 && report.pages > 0, "{report}");
    let path = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let root = free_list_root(&bytes) as usize;
    assert!(root * PAGE < bytes.len(), "a free list: {root}");
    // The first node of the free list's (leaf) root: its data is a count, then page numbers.
    let page = root * PAGE;
    assert_eq!(bytes[page + 10] & 0x02, 0x02, "a leaf page");
    let node = page + usize::from(u16::from_le_bytes([bytes[page + 16], bytes[page + 17]]));
    let key_size = usize::from(u16::from_le_bytes([bytes[node + 6], bytes[node + 7]]));
    let first = node + 8 + key_size + 8;
    bytes[first..first + 8].copy_from_slice(&0x00ff_ffffu64.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let report = verify_path(dir.path()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.reason.contains("the free list")
                && d.reason.contains(&0x00ff_ffffu64.to_string())),
        "{report}"
    );
}

#[test]
fn verify_reads_the_recorded_schemas_and_names_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), 20);
    let mut schema = es_runtime::OwnedSchema::default();
    schema.name = "ledger".to_owned();
    schema.docs = "MARKER-of-the-schema".to_owned();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store.save_schema(&schema).unwrap().unwrap();
        let report = store.verify().unwrap();
        assert!(report.is_sound(), "{report}");
        assert_eq!(report.schemas, 1);
    }
    let path = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"MARKER-of-the-schema";
    let mut found = 0;
    for at in 0..bytes.len() - marker.len() {
        if &bytes[at..at + marker.len()] == marker {
            bytes[at] ^= 0x20;
            found += 1;
        }
    }
    assert!(found > 0);
    std::fs::write(&path, bytes).unwrap();
    let report = verify_path(dir.path()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.at == es_runtime::error::Location::Schema("ledger".to_owned())),
        "{report}"
    );
}
