//! What one command costs the PostgreSQL server, counted rather than timed: statements,
//! transactions, WAL records, bytes and fsyncs per command of each one-caller contender of the
//! PostgreSQL section, and the statements, rows and buffers of one rehydration.
//!
//! The rule: a figure here is a difference of the server's own counters, so another process
//! on the machine cannot move it. Each contender runs twice in a fresh schema, with `k1` and
//! then `k2` commands, from opening its connections to closing them (a backend hands its
//! counters over when it exits); the figure per command is the difference of the two runs'
//! differences over `k2 - k1`, which cancels opening, setup and closing. The counters are read
//! from another database of the server, so reading them is not counted. Only a store's
//! notifications of its commits to other processes depend on timing (one NOTIFY per period at
//! most, for several commits), so their count falls below one per command. The statements'
//! server execution times are times, shown beside the counts as a profile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use es::{Aggregate, EventStore, ExpectedVersion, Host, PostgresOptions, PostgresStore, StreamId};
use es_bench::Table;
use es_bench::bank::{self, BankAccount};

use crate::pg_peer::{self, Peer};
use crate::postgres::{Server, find_bin};
use crate::{Config, Summary};

/// Accounts of the one-caller runs.
const ACCOUNTS: u64 = 10;
/// Callers and accounts of the concurrent run.
const CALLERS: u64 = 64;
const MANY_ACCOUNTS: u64 = 1000;
const HISTORY: u64 = 100_000;

/// The server's counters that one run moves.
#[derive(Debug, Clone, Default)]
struct Counters {
    /// Calls, rows, shared buffers hit and read, and the server's execution time in
    /// nanoseconds, by statement text (schema names replaced).
    statements: HashMap<String, [i64; 5]>,
    commits: i64,
    rollbacks: i64,
    wal_records: i64,
    wal_bytes: i64,
    wal_fsyncs: i64,
}

impl Counters {
    fn calls(&self) -> i64 {
        self.statements.values().map(|s| s[0]).sum()
    }

    fn minus(&self, before: &Counters) -> Counters {
        let mut statements = self.statements.clone();
        for (text, b) in &before.statements {
            let e = statements.entry(text.clone()).or_default();
            for (e, b) in e.iter_mut().zip(b) {
                *e -= b;
            }
        }
        statements.retain(|_, s| s[0] != 0);
        Counters {
            statements,
            commits: self.commits - before.commits,
            rollbacks: self.rollbacks - before.rollbacks,
            wal_records: self.wal_records - before.wal_records,
            wal_bytes: self.wal_bytes - before.wal_bytes,
            wal_fsyncs: self.wal_fsyncs - before.wal_fsyncs,
        }
    }
}

/// A client in the `counts` database, reading the counters of database `postgres`.
struct Stats {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Stats {
    fn connect(server: &Server) -> Stats {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (admin, conn) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            admin.batch_execute("CREATE DATABASE counts").await.unwrap();
            drop(admin);
            let url = server.url().replace("dbname=postgres", "dbname=counts");
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute("CREATE EXTENSION pg_stat_statements")
                .await
                .unwrap();
            client
        });
        Stats { rt, client }
    }

    /// Waits until no connection to database `postgres` is left, and for the last one's
    /// counters to arrive.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let row = self
                .rt
                .block_on(self.client.query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres'",
                    &[],
                ))
                .unwrap();
            if row.get::<_, i64>(0) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "connections to the server stay open"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A backend leaves pg_stat_activity just before it hands over its counters, which
        // can take a while on a loaded machine: wait until they stay put for half a second.
        let totals = || {
            let c = self.read("");
            (
                c.commits,
                c.rollbacks,
                c.wal_records,
                c.wal_bytes,
                c.wal_fsyncs,
            )
        };
        let mut last = totals();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = totals();
            if now == last {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server's counters do not settle"
            );
            last = now;
        }
    }

    fn read(&self, schema: &str) -> Counters {
        self.rt.block_on(async {
            let c = &self.client;
            let mut statements: HashMap<String, [i64; 5]> = HashMap::new();
            for row in c
                .query(
                    "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, rows,
                            shared_blks_hit, shared_blks_read,
                            ((total_exec_time + total_plan_time) * 1000000)::int8
                     FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                     WHERE d.datname = 'postgres'",
                    &[],
                )
                .await
                .unwrap()
            {
                let text: String = row.get(0);
                let text = if schema.is_empty() {
                    text
                } else {
                    text.replace(schema, "S")
                };
                let e = statements.entry(text).or_default();
                for (i, e) in e.iter_mut().enumerate() {
                    *e += row.get::<_, i64>(i + 1);
                }
            }
            let db = c
                .query_one(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database
                     WHERE datname = 'postgres'",
                    &[],
                )
                .await
                .unwrap();
            let wal = c
                .query_one(
                    "SELECT wal_records, wal_bytes::int8, wal_sync FROM pg_stat_wal",
                    &[],
                )
                .await
                .unwrap();
            Counters {
                statements,
                commits: db.get(0),
                rollbacks: db.get(1),
                wal_records: wal.get(0),
                wal_bytes: wal.get(1),
                wal_fsyncs: wal.get(2),
            }
        })
    }

    /// The counters `run` moves in `schema`, from its first connection to its last closing.
    fn around(&self, schema: &str, run: impl FnOnce(&str)) -> Counters {
        self.settle();
        let before = self.read(schema);
        run(schema);
        self.settle();
        self.read(schema).minus(&before)
    }

    /// Per command of `run(schema, k)`: the difference of a run of `k2` and one of `k1`.
    fn per_command(&self, name: &str, k1: u64, k2: u64, run: impl Fn(&str, u64)) -> PerCommand {
        let small = self.around(&format!("{name}_a"), |s| run(s, k1));
        let large = self.around(&format!("{name}_b"), |s| run(s, k2));
        PerCommand {
            counters: large.minus(&small),
            commands: (k2 - k1) as f64,
        }
    }
}

struct PerCommand {
    counters: Counters,
    commands: f64,
}

impl PerCommand {
    fn of(&self, n: i64) -> String {
        format!("{:.2}", n as f64 / self.commands)
    }
}

fn store(url: &str, schema: &str) -> PostgresStore {
    PostgresOptions::new(url)
        .schema(schema)
        // No periodic re-read of the head during a run: it would count time, not commands.
        .poll_every(Duration::from_secs(3600))
        .open()
        .unwrap()
}

pub(crate) fn run(cfg: &Config, _: &mut Summary) {
    let Some(bin) = find_bin() else {
        println!("## PostgreSQL, counted\n\nSkipped: no PostgreSQL server binaries found.\n");
        return;
    };
    let server = Server::start_with(
        bin,
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on \
         -c pg_stat_statements.track_planning=on \
         -c autovacuum=off -c checkpoint_timeout=1h -c max_wal_size=10GB",
    );
    let url = server.url();
    let stats = Stats::connect(&server);
    let (k1, k2) = (cfg.pick(100, 50), cfg.pick(500, 150));
    let streams: Vec<StreamId> = (0..ACCOUNTS)
        .map(|a| StreamId::new(BankAccount::NAME, a).unwrap())
        .collect();

    // The first run after the server's last checkpoint writes full-page images of the
    // catalog's pages, the runs after it do not (no checkpoint comes during the section): one
    // run first, not counted.
    let warm_up = |schema: &str, k: u64| {
        let store = store(&url, schema);
        for s in &streams {
            store
                .append(s, ExpectedVersion::NoStream, vec![bank::new_event(1)])
                .unwrap();
        }
        for i in 0..k as usize {
            store
                .append(
                    &streams[i % streams.len()],
                    ExpectedVersion::Any,
                    vec![bank::new_event(2)],
                )
                .unwrap();
        }
        let mut raw = crate::postgres::Raw::connect(&url, &format!("{schema}_raw"));
        let row = crate::postgres::raw_row(&streams[0], &bank::new_event(2));
        let one = raw.one.clone();
        raw.insert(&one, std::slice::from_ref(&row));
    };
    stats.around("warm_up", |schema| warm_up(schema, k1));
    let raw = stats.per_command("raw", k1, k2, |schema, k| {
        let mut raw = crate::postgres::Raw::connect(&url, schema);
        let rows: Vec<_> = streams
            .iter()
            .map(|s| crate::postgres::raw_row(s, &bank::new_event(2)))
            .collect();
        let one = raw.one.clone();
        for i in 0..k as usize {
            raw.insert(&one, &rows[i % rows.len()..][..1]);
        }
    });
    let append = stats.per_command("append", k1, k2, |schema, k| {
        let store = store(&url, schema);
        for s in &streams {
            store
                .append(s, ExpectedVersion::NoStream, vec![bank::new_event(1)])
                .unwrap();
        }
        let mut versions = vec![1u64; streams.len()];
        for i in 0..k as usize {
            let a = i % streams.len();
            store
                .append(
                    &streams[a],
                    ExpectedVersion::Exact(versions[a]),
                    vec![bank::new_event(versions[a] + 1)],
                )
                .unwrap();
            versions[a] += 1;
        }
    });
    let host = stats.per_command("host", k1, k2, |schema, k| {
        let host = Host::<BankAccount, _>::builder(store(&url, schema))
            .snapshot_every(0)
            .build();
        for a in 0..ACCOUNTS {
            host.execute(a, bank::open()).unwrap();
        }
        for i in 0..k {
            host.execute(i % ACCOUNTS, bank::deposit(1)).unwrap();
        }
    });
    // 64 callers over 1000 accounts: the commands per group, and what the server does per
    // command when groups are pipelined on one connection.
    let (m1, m2) = (CALLERS * cfg.pick(20, 10), CALLERS * cfg.pick(100, 30));
    let host_64 = stats.per_command("host_many", m1, m2, |schema, k| {
        let host = Host::<BankAccount, _>::builder(store(&url, schema))
            .snapshot_every(0)
            .build();
        for a in 0..MANY_ACCOUNTS {
            host.execute(a, bank::open()).unwrap();
        }
        std::thread::scope(|s| {
            for c in 0..CALLERS {
                let host = &host;
                s.spawn(move || {
                    for i in 0..k / CALLERS {
                        let account = (c * 7919 + i * 64) % MANY_ACCOUNTS;
                        host.execute(account, bank::deposit(1)).unwrap();
                    }
                });
            }
        });
    });
    let peer_url = pg_peer::url(&server.dir.display().to_string());
    let peer = stats.per_command("peer", k1, k2, |schema, k| {
        let peer = Peer::open(&peer_url, schema, ACCOUNTS, 1);
        peer.one(0, k);
    });

    println!("## PostgreSQL, counted per command\n");
    println!(
        "Counted by the server (pg_stat_statements, pg_stat_database, pg_stat_wal) on a \
         throwaway cluster of its own (fsync on, autovacuum and timed checkpoints off): the \
         difference between a run of {k2} and one of {k1} commands over {ACCOUNTS} accounts, \
         each from opening its connections to closing them, over {} (64 callers: {m2} and \
         {m1} commands over {MANY_ACCOUNTS} accounts, over {}). Independent of the \
         machine's load, but for the NOTIFYs a store sends after its commits: at most one per \
         5 ms (`notify_every`), for the newest head, so their count per command falls as the \
         store commits faster. Statements as pg_stat_statements counts them: BEGIN and \
         COMMIT prepared by tokio-postgres are not among them (those of sqlx, sent as simple \
         queries, are). A commit is a transaction; a store's listening connection runs one \
         more for each notification it receives, its own included. In the statement tables, \
         \"server µs\" is the server's own execution time of the statement per command \
         (pg_stat_statements' total_exec_time, without the commit's WAL flush): a time, so \
         unlike the counts it moves with the machine's load.\n",
        k2 - k1,
        m2 - m1
    );
    let mut t = Table::new(&[
        "per command",
        "statements",
        "commits",
        "rollbacks",
        "WAL records",
        "WAL bytes",
        "WAL fsyncs",
    ]);
    for (name, p) in [
        ("raw SQL, one INSERT committed alone", &raw),
        ("PostgresStore::append", &append),
        ("Host::execute", &host),
        ("Host::execute, 64 callers", &host_64),
        ("postgres-es 0.5 (cqrs-es)", &peer),
    ] {
        let c = &p.counters;
        t.row(vec![
            name.to_owned(),
            p.of(c.calls()),
            p.of(c.commits),
            p.of(c.rollbacks),
            p.of(c.wal_records),
            p.of(c.wal_bytes),
            p.of(c.wal_fsyncs),
        ]);
    }
    t.print();
    for (name, p) in [
        ("raw SQL", &raw),
        ("PostgresStore::append", &append),
        ("Host::execute", &host),
        ("Host::execute, 64 callers", &host_64),
        ("postgres-es 0.5", &peer),
    ] {
        println!("Statements of {name}, per command (S: the schema):\n");
        let mut t = Table::new(&["calls", "rows", "server µs", "statement"]);
        let mut list: Vec<_> = p.counters.statements.iter().collect();
        list.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(b.0)));
        for (text, s) in list {
            let mut text = text.clone();
            if text.len() > 90 {
                let mut end = 90;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
            }
            let micros = format!("{:.1}", s[4] as f64 / 1000.0 / p.commands);
            t.row(vec![p.of(s[0]), p.of(s[1]), micros, format!("`{text}`")]);
        }
        t.print();
    }

    // One rehydration of a stream of HISTORY events: its statements, rows and buffers, and
    // the plan of one page, before the server has statistics of the table (right after it was
    // written, as in the timed section) and after an ANALYZE (as autovacuum would do later).
    let history = store(&url, "rehydrate");
    let long = StreamId::new(BankAccount::NAME, "long").unwrap();
    bank::write_history(&history, &long, 1, HISTORY);
    let host = Host::<BankAccount, _>::builder(history)
        .snapshot_every(0)
        .build();
    let (client, _conn) = stats.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        (client, stats.rt.spawn(conn))
    });
    let plan = || {
        stats.rt.block_on(async {
            let rows = client
                .query(
                    "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF)
                     SELECT position, stream, version, event_type, event_id, timestamp_ns,
                            metadata, payload, event_version
                     FROM rehydrate.events
                     WHERE stream = $1 AND version >= $2 AND version < $2 + $3
                     ORDER BY version LIMIT $3",
                    &[&long.to_string(), &50_000i64, &4096i64],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        })
    };
    for analyzed in [false, true] {
        if analyzed {
            stats
                .rt
                .block_on(client.batch_execute("ANALYZE rehydrate.events"))
                .unwrap();
        }
        host.passivate("long");
        let before = stats.read("rehydrate");
        assert_eq!(host.version("long").unwrap(), HISTORY);
        let once = stats.read("rehydrate").minus(&before);
        let when = if analyzed {
            "after ANALYZE"
        } else {
            "no statistics yet"
        };
        println!("Rehydrating a stream of {HISTORY} events (no snapshot), once, {when}:\n");
        let mut t = Table::new(&["calls", "rows", "buffers hit", "buffers read", "statement"]);
        let mut list: Vec<_> = once.statements.iter().collect();
        list.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(b.0)));
        for (text, s) in list {
            t.row(vec![
                s[0].to_string(),
                s[1].to_string(),
                s[2].to_string(),
                s[3].to_string(),
                format!("`{}`", text.chars().take(90).collect::<String>()),
            ]);
        }
        t.print();
        println!("The plan of one page of 4096 events of that stream, {when}:\n\n```");
        for line in plan() {
            println!("{line}");
        }
        println!("```\n");
    }
    drop(client);
    drop(host);
    drop(stats);
    drop(server);
}
