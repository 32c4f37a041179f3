//! Projections whose read model lives in the LMDB store: table and checkpoint commit together,
//! so each event is applied exactly once — across reopens, refusals, rebuilds and SIGKILLs.
//!
//! The crash test's child is this test binary run again with `ES_TABLES_CHILD` set; the
//! `child` test dispatches on it and is a no-op otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::AccountEvent;
use es_runtime::projection::{Envelope, Projection, ProjectionError, ProjectionRunner};
use es_runtime::store::lmdb::{Table, TableProjection, TableRunner};
use es_runtime::subscription::Until;
use es_runtime::{
    Durability, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, Metadata, NewEvent, StreamId,
};

/// The amount of the event at a global position (the tests append in position order).
fn amount(position: u64) -> u64 {
    position % 97 + 1
}

/// Appends `n` deposits, round-robin over `accounts` accounts, in batches of `batch`.
fn append(store: &LmdbStore, n: u64, accounts: u64, batch: u64) {
    let mut next = store.head_position().unwrap() + 1;
    let end = next + n;
    while next < end {
        let account = next % accounts;
        let stream = StreamId::new("account", account).unwrap();
        // One stream per batch keeps positions and amounts predictable.
        let size = batch.min(end - next);
        let events = (0..size)
            .map(|i| {
                NewEvent::from_event(
                    &AccountEvent::Deposited {
                        amount: amount(next + i),
                    },
                    Metadata::default(),
                )
                .unwrap()
            })
            .collect();
        store.append(&stream, ExpectedVersion::Any, events).unwrap();
        next += size;
    }
}

/// The balances the log holds up to `position`, read straight from the log.
fn model(store: &LmdbStore, position: u64) -> BTreeMap<String, u64> {
    let mut balances = BTreeMap::new();
    for e in store.read_all(1, usize::MAX).unwrap() {
        if e.position > position {
            break;
        }
        let AccountEvent::Deposited { amount } =
            e.clone().decode::<AccountEvent>().unwrap().payload
        else {
            panic!("only deposits here");
        };
        *balances.entry(e.stream.id().to_owned()).or_default() += amount;
    }
    balances
}

/// Balances per account, the number of events applied and the last position seen. Not
/// idempotent on purpose: an event applied twice shows in `applied` and in a balance.
struct Balances {
    name: &'static str,
    /// Refuse the event at this position (after writing to the table).
    refuse_at: Option<u64>,
}

impl Balances {
    fn named(name: &'static str) -> Self {
        Balances {
            name,
            refuse_at: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BalanceError {
    #[error("event at position {0} refused")]
    Refused(u64),
    #[error("event at position {position} seen again (last applied {last})")]
    Again { position: u64, last: u64 },
}

impl TableProjection for Balances {
    type Event = AccountEvent;
    type Error = BalanceError;

    fn name(&self) -> &str {
        self.name
    }

    fn categories(&self) -> &[&str] {
        &["account"]
    }

    fn apply(
        &self,
        table: &mut Table<'_>,
        e: Envelope<'_, AccountEvent>,
    ) -> Result<(), BalanceError> {
        let last: u64 = table.get_value("@last").unwrap_or(0);
        if e.position <= last {
            return Err(BalanceError::Again {
                position: e.position,
                last,
            });
        }
        let delta = match e.event {
            AccountEvent::Deposited { amount } => *amount as i64,
            AccountEvent::Withdrawn { amount } => -(*amount as i64),
        };
        table.update(format!("account/{}", e.aggregate_id()), |b: &mut i64| {
            *b += delta
        });
        table.update("@applied", |n: &mut u64| *n += 1);
        table.put_value("@last", &e.position);
        if self.refuse_at == Some(e.position) {
            return Err(BalanceError::Refused(e.position));
        }
        Ok(())
    }
}

/// The table's balances, applied count and checkpoint, read on one snapshot.
fn read_balances(store: &LmdbStore, name: &str) -> (BTreeMap<String, u64>, u64, u64) {
    store
        .read_table(name, |t| {
            let mut balances = BTreeMap::new();
            let mut applied = 0;
            for (key, value) in t.values::<rmpv_free::Value>().unwrap() {
                if let Some(account) = key.strip_prefix("account/") {
                    balances.insert(account.to_owned(), value.as_u64());
                } else if key == "@applied" {
                    applied = value.as_u64();
                }
            }
            (balances, applied, t.checkpoint().unwrap())
        })
        .unwrap()
}

/// A number stored either as i64 or u64 (MessagePack keeps the smallest form).
mod rmpv_free {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum Value {
        U(u64),
        I(i64),
    }

    impl Value {
        pub(crate) fn as_u64(&self) -> u64 {
            match *self {
                Value::U(v) => v,
                Value::I(v) => u64::try_from(v).expect("no negative balances here"),
            }
        }
    }
}

fn temp_store() -> (tempfile::TempDir, LmdbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn table_and_checkpoint_commit_together_and_survive_a_reopen() {
    let (dir, store) = temp_store();
    append(&store, 2_500, 7, 10);
    let mut runner = TableRunner::new(&store, Balances::named("balances")).checkpoint_every(300);
    assert_eq!(runner.catch_up().unwrap(), 2_500);
    let (balances, applied, checkpoint) = read_balances(&store, "balances");
    assert_eq!((applied, checkpoint), (2_500, 2_500));
    assert_eq!(balances, model(&store, 2_500));
    drop(store);

    let store = LmdbOptions::new().open(dir.path()).unwrap();
    let mut runner = TableRunner::new(&store, Balances::named("balances"));
    assert_eq!(runner.checkpoint().unwrap(), 2_500);
    assert_eq!(runner.catch_up().unwrap(), 0, "nothing is applied twice");
    append(&store, 40, 7, 3);
    assert_eq!(runner.catch_up().unwrap(), 40);
    let (balances, applied, checkpoint) = read_balances(&store, "balances");
    assert_eq!((applied, checkpoint), (2_540, 2_540));
    assert_eq!(balances, model(&store, 2_540));
}

#[test]
fn a_refused_event_leaves_nothing_and_the_events_before_it_stay() {
    let (_dir, store) = temp_store();
    append(&store, 100, 3, 4);
    let projection = Balances {
        name: "balances",
        refuse_at: Some(57),
    };
    let mut runner = TableRunner::new(&store, projection).checkpoint_every(40);
    let err = runner.catch_up().unwrap_err();
    match &err {
        ProjectionError::Apply {
            projection,
            position,
            stream,
            version,
            event_type,
            source: BalanceError::Refused(57),
        } => {
            assert_eq!(projection, "balances");
            assert_eq!(*position, 57);
            assert_eq!(event_type, "Deposited");
            let e = store.read_all(57, 1).unwrap().remove(0);
            assert_eq!((stream.as_str(), *version), (e.stream.as_str(), e.version));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("position 57"), "{err}");
    // The refused event's writes were rolled back; the 56 before it are committed.
    let (balances, applied, checkpoint) = read_balances(&store, "balances");
    assert_eq!((applied, checkpoint), (56, 56));
    assert_eq!(balances, model(&store, 56));
    // Refusing the first event of a chunk commits nothing new.
    assert!(runner.catch_up().is_err());
    assert_eq!(read_balances(&store, "balances").2, 56);
}

#[test]
fn a_rebuild_empties_the_table_and_matches_a_fresh_projection() {
    let (_dir, store) = temp_store();
    append(&store, 5_000, 11, 7);
    let mut runner = TableRunner::new(&store, Balances::named("balances"))
        .checkpoint_every(500)
        .progress_every(1_000);
    runner.catch_up().unwrap();
    // Something else wrote into the table (a bug being fixed, say).
    store
        .read_table("balances", |t| assert_eq!(t.len().unwrap(), 11 + 2))
        .unwrap();
    let mut reports = Vec::new();
    assert_eq!(runner.rebuild(|p| reports.push(p)).unwrap(), 5_000);
    let positions: Vec<u64> = reports.iter().map(|p| p.position).collect();
    assert_eq!(positions, [1_000, 2_000, 3_000, 4_000, 5_000, 5_000]);
    assert!(reports.iter().all(|p| p.head == 5_000));
    assert_eq!(reports.last().unwrap().applied, 5_000);

    let mut fresh = TableRunner::new(&store, Balances::named("fresh"));
    fresh.catch_up().unwrap();
    let rebuilt = read_balances(&store, "balances");
    assert_eq!(rebuilt, read_balances(&store, "fresh"));
    assert_eq!(rebuilt.0, model(&store, 5_000));
}

#[test]
fn run_until_stops_at_a_position_or_a_count() {
    let (_dir, store) = temp_store();
    append(&store, 300, 5, 1);
    let mut runner = TableRunner::new(&store, Balances::named("balances")).checkpoint_every(64);
    assert_eq!(runner.run_until(Until::Position(120)).unwrap(), 120);
    assert_eq!(runner.checkpoint().unwrap(), 120);
    assert_eq!(runner.run_until(Until::Count(100)).unwrap(), 100);
    assert_eq!(runner.checkpoint().unwrap(), 220);
    let (balances, applied, _) = read_balances(&store, "balances");
    assert_eq!(applied, 220);
    assert_eq!(balances, model(&store, 220));
}

#[test]
fn readers_see_the_table_and_its_checkpoint_from_one_snapshot() {
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    append(&store, 3_000, 13, 5);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Acquire) {
                let (_, applied, checkpoint) = read_balances(&store, "balances");
                assert_eq!(applied, checkpoint, "a view never sees half a chunk");
                reads += 1;
            }
            reads
        })
    };
    let mut runner =
        TableRunner::new(store.clone(), Balances::named("balances")).checkpoint_every(50);
    runner.catch_up().unwrap();
    stop.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn follow_applies_concurrent_appends_once_each_in_order() {
    let (_dir, store) = temp_store();
    let store = Arc::new(store);
    append(&store, 500, 3, 10);
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runner = TableRunner::new(store, Balances::named("live")).checkpoint_every(100);
            runner.follow(&stop, Duration::from_millis(20)).unwrap()
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..100u64 {
                    let stream = StreamId::new("account", w * 1000 + i % 9).unwrap();
                    let event = AccountEvent::Deposited { amount: 1 };
                    store
                        .append(
                            &stream,
                            ExpectedVersion::Any,
                            vec![NewEvent::from_event(&event, Metadata::default()).unwrap()],
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let head = store.head_position().unwrap();
    assert_eq!(head, 900);
    // Wait for the follower to reach the head, then stop it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read_balances(&store, "live").2 < head {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower keeps up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Release);
    assert_eq!(follower.join().unwrap(), 900);
    let (_, applied, checkpoint) = read_balances(&store, "live");
    assert_eq!((applied, checkpoint), (900, 900));
}

#[test]
fn bad_names_and_keys_are_typed_errors() {
    let (_dir, store) = temp_store();
    append(&store, 3, 1, 1);
    let mut runner = TableRunner::new(&store, Balances::named(""));
    let err = runner.catch_up().unwrap_err();
    assert!(matches!(err, ProjectionError::Checkpoint(_)), "{err:?}");
    assert!(err.to_string().contains("projection name"), "{err}");

    struct LongKeys;
    impl TableProjection for LongKeys {
        type Event = AccountEvent;
        type Error = std::convert::Infallible;
        fn name(&self) -> &str {
            "long_keys"
        }
        fn apply(
            &self,
            table: &mut Table<'_>,
            _: Envelope<'_, AccountEvent>,
        ) -> Result<(), Self::Error> {
            table.put("k".repeat(600), b"v");
            Ok(())
        }
    }
    let mut runner = TableRunner::new(&store, LongKeys);
    let err = runner.catch_up().unwrap_err();
    assert!(err.to_string().contains("at most 501 bytes"), "{err}");
    assert_eq!(runner.checkpoint().unwrap(), 0, "nothing was committed");
}

#[test]
fn a_table_outgrowing_the_map_grows_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbOptions::new()
        .map_size(1 << 20)
        .max_map_size(1 << 30)
        .open(dir.path())
        .unwrap();
    append(&store, 400, 400, 1);
    struct Big;
    impl TableProjection for Big {
        type Event = AccountEvent;
        type Error = std::convert::Infallible;
        fn name(&self) -> &str {
            "big"
        }
        fn apply(
            &self,
            table: &mut Table<'_>,
            e: Envelope<'_, AccountEvent>,
        ) -> Result<(), Self::Error> {
            table.put(e.position.to_be_bytes(), vec![7u8; 16 * 1024]);
            Ok(())
        }
    }
    let mut runner = TableRunner::new(&store, Big).checkpoint_every(200);
    assert_eq!(runner.catch_up().unwrap(), 400);
    assert!(
        store.map_size() > 4 << 20,
        "map grew to {}",
        store.map_size()
    );
    store
        .read_table("big", |t| {
            assert_eq!(t.len().unwrap(), 400);
            assert_eq!(t.get(7u64.to_be_bytes()).unwrap().unwrap().len(), 16 * 1024);
        })
        .unwrap();
}

/// The plain runner (read model outside the store) keeps its checkpoint in the LMDB store too.
#[test]
fn a_plain_projection_checkpoint_survives_a_reopen() {
    #[derive(Default)]
    struct Count(u64);
    impl Projection for Count {
        type Event = AccountEvent;
        type Error = std::convert::Infallible;
        fn name(&self) -> &str {
            "count"
        }
        fn apply(&mut self, _: Envelope<'_, AccountEvent>) -> Result<(), Self::Error> {
            self.0 += 1;
            Ok(())
        }
        fn reset(&mut self) -> Result<(), Self::Error> {
            self.0 = 0;
            Ok(())
        }
    }
    let (dir, store) = temp_store();
    append(&store, 1_234, 4, 9);
    let store = Arc::new(store);
    let mut runner = ProjectionRunner::new(store.clone(), Count::default()).checkpoint_every(100);
    assert_eq!(runner.catch_up().unwrap(), 1_234);
    drop(runner);
    drop(store);
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    let mut runner = ProjectionRunner::new(Arc::new(store), Count::default());
    assert_eq!(runner.checkpoint().unwrap(), 1_234);
    assert_eq!(runner.catch_up().unwrap(), 0);
}

// --- the crash test ---------------------------------------------------------------------

const ROLE: &str = "ES_TABLES_CHILD";
const DIR: &str = "ES_TABLES_DIR";
const CHUNK: &str = "ES_TABLES_CHUNK";

#[test]
fn child() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let dir = std::env::var(DIR).expect("the store directory");
    if std::env::var(ROLE).as_deref() == Ok("append") {
        // Another process's commits: nothing in the parent is notified of these.
        let store = LmdbOptions::new().open(&dir).unwrap();
        for _ in 0..10 {
            append(&store, 30, 7, 3);
            std::thread::sleep(Duration::from_millis(20));
        }
        std::process::exit(0);
    }
    let chunk: u64 = std::env::var(CHUNK).unwrap().parse().unwrap();
    let store = LmdbOptions::new().open(&dir).unwrap();
    let mut runner = TableRunner::new(&store, Balances::named("balances")).checkpoint_every(chunk);
    println!("started at {}", runner.checkpoint().unwrap());
    std::io::stdout().flush().unwrap();
    match runner.catch_up() {
        Ok(n) => println!("done {n}"),
        Err(e) => println!("failed {e}"),
    }
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// Small xorshift generator for kill timings and chunk sizes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A projecting process killed with SIGKILL at random moments, then restarted, never applies
/// an event twice nor loses one: after every kill the table matches its checkpoint exactly, and
/// at the end it equals a fresh rebuild. `ES_PROJECTION_KILLS` sets the number of kills
/// (default 12).
#[test]
fn a_killed_projection_process_applies_each_event_exactly_once() {
    let kills: usize = std::env::var("ES_PROJECTION_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    eprintln!("projection crash test seed {seed}");
    let mut killed_mid_run = 0;
    for round in 0..kills {
        {
            // The log keeps growing between runs.
            let store = LmdbOptions::new()
                .durability(Durability::NoSync)
                .open(dir.path())
                .unwrap();
            append(&store, 3_000, 31, 1 + rng.below(20));
        }
        let chunk = 1 + rng.below(40);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lmdb::tables::child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "project")
            .env(DIR, dir.path())
            .env(CHUNK, chunk.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The test harness prints its own lines first.
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("started at"));
        assert!(started.is_some(), "round {round}: the child started");
        std::thread::sleep(Duration::from_millis(rng.below(100)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(
            !rest.iter().any(|l| l.starts_with("failed")),
            "round {round}: the child failed: {rest:?}"
        );
        if rest.is_empty() {
            killed_mid_run += 1;
        }
        let store = LmdbOptions::new().open(dir.path()).unwrap();
        let (balances, applied, checkpoint) = read_balances(&store, "balances");
        assert_eq!(
            applied, checkpoint,
            "round {round}: table and checkpoint agree"
        );
        assert_eq!(balances, model(&store, checkpoint), "round {round}");
    }
    assert!(killed_mid_run > 0, "some kills landed mid-run");
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    let head = store.head_position().unwrap();
    TableRunner::new(&store, Balances::named("balances"))
        .catch_up()
        .unwrap();
    TableRunner::new(&store, Balances::named("fresh"))
        .catch_up()
        .unwrap();
    let survived = read_balances(&store, "balances");
    assert_eq!(survived.2, head);
    assert_eq!(survived, read_balances(&store, "fresh"));
    // Written to the real stderr, past the harness's capture, so the count shows in `cargo test`.
    let _ = writeln!(
        std::io::stderr().lock(),
        "projection crash test: {kills} SIGKILLs ({killed_mid_run} mid-run), {head} events, table equals a fresh rebuild"
    );
}

/// A projection following the log in one process sees the commits of another process (they
/// wake nobody here; the runner re-reads the head at least every tick) once each, in order.
#[test]
fn a_follower_sees_another_processs_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LmdbOptions::new().open(dir.path()).unwrap());
    append(&store, 100, 7, 10);
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            TableRunner::new(store, Balances::named("live"))
                .follow(&stop, Duration::from_millis(50))
                .unwrap()
        })
    };
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lmdb::tables::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "append")
        .env(DIR, dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read_balances(&store, "live").2 < 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower sees the other process"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Release);
    assert_eq!(follower.join().unwrap(), 400);
    let (balances, applied, checkpoint) = read_balances(&store, "live");
    assert_eq!((applied, checkpoint), (400, 400));
    assert_eq!(balances, model(&store, 400));
}
