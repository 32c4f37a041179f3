//! The peer over PostgreSQL: cqrs-es 0.5 with `postgres-es` 0.5 (its PostgreSQL event
//! repository, on a sqlx pool), running the bank account of [`crate::cqrs`] on the same
//! server as the `es` contenders.
//!
//! Like cqrs-es over `MemStore`, every command loads the aggregate's whole history (one
//! `SELECT` of its rows as JSON), handles the command and commits its events in a transaction
//! of its own. Two commands on one account at once conflict on the table's primary key; the
//! losing one is retried, as a user of cqrs-es would, and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use postgres_es::PostgresEventRepository;

use crate::cqrs::{self, Account};

type Framework = CqrsFramework<Account, PersistedEventStore<PostgresEventRepository, Account>>;

/// A framework over one schema of the server, with the runtime that drives it.
pub(crate) struct Peer {
    rt: tokio::runtime::Runtime,
    cqrs: Arc<Framework>,
    ids: Arc<Vec<String>>,
    /// Commands that lost a race on their account and were run again.
    pub(crate) retries: Arc<AtomicU64>,
}

/// A sqlx URL for the server whose socket is in directory `socket_dir`.
pub(crate) fn url(socket_dir: &str) -> String {
    format!("postgres://postgres@localhost:5432/postgres?host={socket_dir}")
}

impl Peer {
    /// Creates the crate's tables (its `db/init.sql`) in `schema` and opens `accounts`
    /// accounts; `connections` is the size of its pool.
    pub(crate) fn open(url: &str, schema: &str, accounts: u64, connections: u32) -> Peer {
        // Two workers, as many as the machine has cores (the store's runtime has two too).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let cqrs = rt.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(connections)
                .connect(url)
                .await
                .expect("the peer connects");
            sqlx::raw_sql(&format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.events (
                     aggregate_type text NOT NULL,
                     aggregate_id   text NOT NULL,
                     sequence       bigint CHECK (sequence >= 0) NOT NULL,
                     event_type     text NOT NULL,
                     event_version  text NOT NULL,
                     payload        json NOT NULL,
                     metadata       json NOT NULL,
                     PRIMARY KEY (aggregate_type, aggregate_id, sequence));
                 CREATE TABLE {schema}.snapshots (
                     aggregate_type   text NOT NULL,
                     aggregate_id     text NOT NULL,
                     last_sequence    bigint CHECK (last_sequence >= 0) NOT NULL,
                     current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
                     payload          json NOT NULL,
                     PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));"
            ))
            .execute(&pool)
            .await
            .expect("creates the peer's tables");
            let repo = PostgresEventRepository::new(pool)
                .with_tables(&format!("{schema}.events"), &format!("{schema}.snapshots"));
            let store = PersistedEventStore::new_event_store(repo);
            CqrsFramework::new(store, vec![], ())
        });
        let peer = Peer {
            rt,
            cqrs: Arc::new(cqrs),
            ids: Arc::new((0..accounts).map(|a| a.to_string()).collect()),
            retries: Arc::new(AtomicU64::new(0)),
        };
        let (cqrs, ids) = (Arc::clone(&peer.cqrs), Arc::clone(&peer.ids));
        peer.rt.block_on(async move {
            for id in ids.iter() {
                cqrs.execute(id, cqrs::open())
                    .await
                    .expect("opens an account");
            }
        });
        peer
    }

    /// `n` deposits one after another, round robin over the accounts from command `from`.
    pub(crate) fn one(&self, from: u64, n: u64) -> Duration {
        let (cqrs, ids) = (Arc::clone(&self.cqrs), Arc::clone(&self.ids));
        let retries = Arc::clone(&self.retries);
        self.rt.block_on(async move {
            let start = Instant::now();
            for i in from..from + n {
                let id = &ids[(i % ids.len() as u64) as usize];
                deposit(&cqrs, id, &retries).await;
            }
            start.elapsed()
        })
    }

    /// `callers` tasks at once, each running `per_caller` deposits on the accounts `account`
    /// picks.
    pub(crate) fn many(
        &self,
        callers: u64,
        per_caller: u64,
        account: fn(u64, u64) -> u64,
    ) -> Duration {
        let (cqrs, ids) = (Arc::clone(&self.cqrs), Arc::clone(&self.ids));
        let retries = Arc::clone(&self.retries);
        self.rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..callers)
                .map(|c| {
                    let (cqrs, ids) = (Arc::clone(&cqrs), Arc::clone(&ids));
                    let retries = Arc::clone(&retries);
                    tokio::spawn(async move {
                        for i in 0..per_caller {
                            let id = &ids[account(c, i) as usize];
                            deposit(&cqrs, id, &retries).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a caller of the peer panicked");
            }
            start.elapsed()
        })
    }
}

/// One deposit, run again while it loses a race on its account.
async fn deposit(cqrs: &Framework, id: &str, retries: &AtomicU64) {
    loop {
        match cqrs.execute(id, cqrs::deposit(1)).await {
            Ok(()) => return,
            Err(AggregateError::AggregateConflict) => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("the peer's deposit failed: {e}"),
        }
    }
}
