//! Read models in PostgreSQL tables, written with their checkpoint in one transaction: a
//! refused event leaves nothing, a rebuild starts afresh, and a projecting process killed with
//! SIGKILL at random moments applies each event exactly once.
//!
//! The crash test's child is this test binary run again with `ES_PG_TABLES_CHILD` set; the
//! `child` test dispatches on it and is a no-op otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use es_runtime::projection::ProjectionError;
use es_runtime::read::Envelope;
use es_runtime::store::postgres::{SqlError, SqlProjection, SqlRunner, SqlTransaction};
use es_runtime::{
    DomainEvent, EventStore, ExpectedVersion, Metadata, NewEvent, PostgresOptions, PostgresStore,
    StreamId,
};
use serde::{Deserialize, Serialize};

use super::server;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

impl DomainEvent for Deposited {
    const TYPES: &'static [&'static str] = &["Deposited"];
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
}

/// Appends `n` deposits over `accounts` accounts in batches of up to `batch`.
fn append(store: &PostgresStore, n: u64, accounts: u64, batch: u64) {
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let size = left.min(batch.max(1));
        let stream = StreamId::new("account", i % accounts).unwrap();
        let events = (0..size)
            .map(|k| {
                let amount = 1 + (i * 7 + k) % 13;
                NewEvent::from_event(&Deposited { amount }, Metadata::default()).unwrap()
            })
            .collect();
        store.append(&stream, ExpectedVersion::Any, events).unwrap();
        left -= size;
        i += 1;
    }
}

/// The fold of the log up to `position`: balance and count of deposits per account.
fn model(store: &PostgresStore, position: u64) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    for e in store.read_all(1, position as usize).unwrap() {
        let d: Deposited = es_runtime::codec::decode(&e.payload).unwrap();
        let id = e.stream.as_str().split_once('-').unwrap().1.to_owned();
        let entry = out.entry(id).or_insert((0, 0));
        entry.0 += d.amount as i64;
        entry.1 += 1;
    }
    out
}

/// Balances per account, in table `<schema>.<name>`; refuses a configured amount, or panics
/// on one (after writing), or panics resetting (after deleting).
struct Balances {
    table: String,
    name: String,
    refuse: Option<u64>,
    panic_on: Option<u64>,
    panic_resetting: bool,
}

impl Balances {
    fn new(schema: &str, name: &str) -> Self {
        Balances {
            table: format!("\"{schema}\".{name}"),
            name: name.to_owned(),
            refuse: None,
            panic_on: None,
            panic_resetting: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BalanceError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("amount {0} is refused")]
    Refused(u64),
}

impl SqlProjection for Balances {
    type Event = Deposited;
    type Error = BalanceError;
    fn name(&self) -> &str {
        &self.name
    }
    fn categories(&self) -> &[&str] {
        &["account"]
    }
    fn prepare(&self, sql: &mut SqlTransaction<'_>) -> Result<(), SqlError> {
        sql.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (account text PRIMARY KEY, balance bigint NOT NULL, deposits bigint NOT NULL)",
                self.table
            ),
            vec![],
        )?;
        Ok(())
    }
    fn reset(&self, sql: &mut SqlTransaction<'_>) -> Result<(), BalanceError> {
        sql.execute(&format!("DELETE FROM {}", self.table), vec![])?;
        if self.panic_resetting {
            panic!("reset of {} cut short", self.table);
        }
        Ok(())
    }
    fn apply(
        &self,
        sql: &mut SqlTransaction<'_>,
        e: Envelope<'_, Deposited>,
    ) -> Result<(), BalanceError> {
        let amount = e.event.amount;
        // Written before the refusal: it must be rolled back with the event.
        sql.execute(
            &format!(
                "INSERT INTO {t} VALUES ($1, $2, 1) ON CONFLICT (account)
                 DO UPDATE SET balance = {t}.balance + excluded.balance, deposits = {t}.deposits + 1",
                t = self.table
            ),
            vec![Box::new(e.aggregate_id().to_owned()), Box::new(amount as i64)],
        )?;
        if Some(amount) == self.refuse {
            return Err(BalanceError::Refused(amount));
        }
        if Some(amount) == self.panic_on {
            panic!("amount {amount} is out of range");
        }
        Ok(())
    }
}

/// The read model and the checkpoint it reflects, read on one snapshot.
fn read_balances(
    store: &PostgresStore,
    projection: Balances,
) -> (u64, BTreeMap<String, (i64, i64)>) {
    let table = projection.table.clone();
    SqlRunner::new(store, projection)
        .read(|sql| {
            let rows = sql.query(
                &format!("SELECT account, balance, deposits FROM {table} ORDER BY account"),
                vec![],
            )?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
                .collect())
        })
        .unwrap()
}

#[test]
fn read_model_and_checkpoint_commit_together_and_a_refused_event_leaves_nothing() {
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(&schema)
        .open()
        .unwrap();
    append(&store, 200, 5, 3);
    let mut runner = SqlRunner::new(&store, Balances::new(&schema, "balances")).checkpoint_every(7);
    assert_eq!(runner.catch_up().unwrap(), 200);
    let (checkpoint, balances) = read_balances(&store, Balances::new(&schema, "balances"));
    assert_eq!(checkpoint, 200);
    assert_eq!(balances, model(&store, 200));

    // A refused event: the events before it are applied with their checkpoint, its own write
    // is rolled back.
    append(&store, 20, 5, 1);
    let mut refusing = Balances::new(&schema, "balances");
    let refused =
        es_runtime::codec::decode::<Deposited>(&store.read_all(211, 1).unwrap()[0].payload)
            .unwrap()
            .amount;
    refusing.refuse = Some(refused);
    let first_refused = store
        .read_all(201, 20)
        .unwrap()
        .iter()
        .find(|e| {
            es_runtime::codec::decode::<Deposited>(&e.payload)
                .unwrap()
                .amount
                == refused
        })
        .unwrap()
        .position;
    let mut runner = SqlRunner::new(&store, refusing);
    match runner.catch_up().unwrap_err() {
        ProjectionError::Apply { position, .. } => assert_eq!(position, first_refused),
        other => panic!("{other:?}"),
    }
    let (checkpoint, balances) = read_balances(&store, Balances::new(&schema, "balances"));
    assert_eq!(checkpoint, first_refused - 1);
    assert_eq!(balances, model(&store, checkpoint));

    // A rebuild empties the read model and replays everything.
    let mut runner = SqlRunner::new(&store, Balances::new(&schema, "balances"));
    assert_eq!(runner.rebuild(|_| {}).unwrap(), 220);
    let (checkpoint, balances) = read_balances(&store, Balances::new(&schema, "balances"));
    assert_eq!((checkpoint, balances), (220, model(&store, 220)));
}

#[test]
fn a_panicking_projection_is_an_error_naming_the_event_its_writes_rolled_back_and_resumes() {
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(&schema)
        .open()
        .unwrap();
    append(&store, 60, 5, 3);
    let mut runner = SqlRunner::new(&store, Balances::new(&schema, "balances"));
    assert_eq!(runner.catch_up().unwrap(), 60);
    append(&store, 20, 5, 1);
    let victim = store.read_all(71, 1).unwrap().remove(0);
    let amount = es_runtime::codec::decode::<Deposited>(&victim.payload)
        .unwrap()
        .amount;
    let first = store
        .read_all(61, 20)
        .unwrap()
        .into_iter()
        .find(|e| {
            es_runtime::codec::decode::<Deposited>(&e.payload)
                .unwrap()
                .amount
                == amount
        })
        .unwrap();
    let mut panicking = Balances::new(&schema, "balances");
    panicking.panic_on = Some(amount);
    let mut runner = SqlRunner::new(&store, panicking);
    match runner.catch_up().unwrap_err() {
        ProjectionError::Panicked {
            projection,
            stream,
            version,
            position,
            message,
        } => {
            assert_eq!(projection, "balances");
            assert_eq!(
                (stream.as_str(), version, position),
                (first.stream.as_str(), first.version, first.position)
            );
            assert!(message.contains("out of range"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The events before it are applied with their checkpoint; its own write is not.
    let (checkpoint, balances) = read_balances(&store, Balances::new(&schema, "balances"));
    assert_eq!(checkpoint, first.position - 1);
    assert_eq!(balances, model(&store, checkpoint));
    // The connection went back to the pool usable, and the runner resumes where it stopped.
    let mut runner = SqlRunner::new(&store, Balances::new(&schema, "balances"));
    assert_eq!(runner.catch_up().unwrap(), 80 - checkpoint);
    assert_eq!(
        read_balances(&store, Balances::new(&schema, "balances")),
        (80, model(&store, 80))
    );

    // A panic resetting, before a rebuild: the read model and its checkpoint stay as they were.
    let mut resetting = Balances::new(&schema, "balances");
    resetting.panic_resetting = true;
    let mut runner = SqlRunner::new(&store, resetting);
    match runner.rebuild(|_| {}).unwrap_err() {
        ProjectionError::ResetPanicked {
            projection,
            message,
        } => {
            assert_eq!(projection, "balances");
            assert!(message.contains("cut short"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read_balances(&store, Balances::new(&schema, "balances")),
        (80, model(&store, 80))
    );
}

// --- the crash test ---------------------------------------------------------------------

const ROLE: &str = "ES_PG_TABLES_CHILD";
const SCHEMA: &str = "ES_PG_TABLES_SCHEMA";
const CHUNK: &str = "ES_PG_TABLES_CHUNK";

#[test]
fn child() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let schema = std::env::var(SCHEMA).expect("the schema");
    let chunk: u64 = std::env::var(CHUNK).unwrap().parse().unwrap();
    let store = PostgresOptions::new(server::url())
        .schema(&schema)
        .open()
        .unwrap();
    let mut runner =
        SqlRunner::new(&store, Balances::new(&schema, "balances")).checkpoint_every(chunk);
    println!("started at {}", runner.checkpoint().unwrap());
    std::io::stdout().flush().unwrap();
    match runner.catch_up() {
        Ok(n) => println!("done {n}"),
        Err(e) => println!("failed {e}"),
    }
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

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
/// an event twice nor loses one: after every kill the read model is the fold of the log up to
/// its checkpoint, and at the end it equals a fresh rebuild. `ES_PROJECTION_KILLS` sets the
/// number of kills (default 8).
#[test]
fn a_killed_projection_process_applies_each_event_exactly_once() {
    let kills: usize = std::env::var("ES_PROJECTION_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(&schema)
        .open()
        .unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed | 1);
    eprintln!("PostgreSQL projection crash test seed {seed}");
    // The read model's table exists before any child runs: a child killed before its first
    // chunk commits leaves none, and the reads below read the table.
    SqlRunner::new(&store, Balances::new(&schema, "balances"))
        .rebuild(|_| {})
        .unwrap();
    let mut killed_mid_run = 0;
    for round in 0..kills {
        // The log keeps growing between runs.
        append(&store, 1_500, 31, 10 + rng.below(40));
        let chunk = 1 + rng.below(40);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tables::child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "project")
            .env(SCHEMA, &schema)
            .env(CHUNK, chunk.to_string())
            .env("ES_PG_URL", server::url())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("started at"));
        assert!(started.is_some(), "round {round}: the child started");
        std::thread::sleep(Duration::from_millis(rng.below(300)));
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
        let (checkpoint, balances) = read_balances(&store, Balances::new(&schema, "balances"));
        assert_eq!(balances, model(&store, checkpoint), "round {round}");
    }
    assert!(killed_mid_run > 0, "some kills landed mid-run");
    let head = store.head_position().unwrap();
    SqlRunner::new(&store, Balances::new(&schema, "balances"))
        .catch_up()
        .unwrap();
    SqlRunner::new(&store, Balances::new(&schema, "fresh"))
        .catch_up()
        .unwrap();
    let survived = read_balances(&store, Balances::new(&schema, "balances"));
    assert_eq!(survived.0, head);
    assert_eq!(survived.1, model(&store, head));
    assert_eq!(
        survived,
        read_balances(&store, Balances::new(&schema, "fresh"))
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "PostgreSQL projection crash test: {kills} SIGKILLs ({killed_mid_run} mid-run), {head} events, the read model equals the fold of the log and a fresh rebuild"
    );
}
