//! [`PostgresStore`]: an event store in a PostgreSQL database, shared by every process and
//! machine that opens the same schema.
//!
//! The rule: every promise of [`EventStore`] holds across processes, because it is kept by the
//! database — positions are assigned under one row lock held to commit, so the global log is
//! gap-free and in commit order for every reader; versions are checked under the same lock.
//! The layout and its costs are described in `docs/STORAGE.md` of the source repository; a
//! format version stored in the schema is checked at open.

mod commit;
mod group;
mod listen;
mod pool;
mod read;
mod schema;
mod schemas;
mod streams;
mod tables;

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::commit::{Append, Outcome};
use self::group::{Knowledge, OneTripCounts};
use self::pool::{Pool, Runtime, Statements};
use self::schema::Sql;
use crate::error::{AppendError, BoxError, Location, OpenError, ReadError, WriteError};
use crate::event::{
    Clock, EventRef, ExpectedVersion, NewEvent, RecordedEvent, StreamId, SystemClock, Timestamp,
};
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::store::checkpoint_name;
use crate::store::{
    AppendResult, EventStore, GroupQueue, ImportResult, Snapshot, StreamHead, Visitor,
};
use crate::watch::HeadWatch;

pub use self::schema::FORMAT_VERSION;
pub use self::tables::{SqlError, SqlFeed, SqlParam, SqlProjection, SqlRunner, SqlTransaction};
/// What a statement of a [`SqlTransaction`] returns and takes, from the PostgreSQL client.
pub use tokio_postgres::{Row, types::ToSql};

/// How to open a [`PostgresStore`].
///
/// ```no_run
/// use es_runtime::PostgresOptions;
///
/// let store = PostgresOptions::new("host=/run/postgresql user=app dbname=app")
///     .schema("bank")
///     .max_connections(16)
///     .open()?;
/// # Ok::<(), es_runtime::OpenError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    url: String,
    schema: String,
    max_connections: usize,
    pool_wait: Duration,
    poll_every: Duration,
    notify_every: Duration,
    clock: Arc<dyn Clock>,
    hold_commits: Option<Duration>,
}

impl PostgresOptions {
    /// Options for the database at `url`: a `postgresql://` URL or a `key=value` connection
    /// string, as libpq takes them (a `host` that is a directory names a Unix socket).
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            schema: "es".to_owned(),
            max_connections: 8,
            pool_wait: Duration::from_secs(30),
            poll_every: Duration::from_secs(1),
            notify_every: Duration::from_millis(5),
            clock: Arc::new(SystemClock),
            hold_commits: None,
        }
    }

    /// The schema holding the store's tables (default `es`): 1 to 63 bytes of `a-z`, `0-9`
    /// and `_`, not starting with a digit or `pg_`. Several stores can share a database in
    /// different schemas. Checked by [`open`](Self::open).
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// The most connections the store opens (default 8, at least 1), besides the one that
    /// listens for other processes' commits. Appends in flight together share one; with two or
    /// more, one of them carries the groups of appends sent in one statement.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a call waits for a free connection before it fails (default 30 s).
    pub fn pool_wait(mut self, wait: Duration) -> Self {
        self.pool_wait = wait;
        self
    }

    /// How often the store re-reads the head position, in case a notification of another
    /// process's commit was lost (default 1 s).
    pub fn poll_every(mut self, period: Duration) -> Self {
        self.poll_every = period.max(Duration::from_millis(10));
        self
    }

    /// The least time between two notifications of this store's commits to other processes
    /// (default 5 ms; zero: one per committed group). Groups that commit meanwhile go out
    /// as one notification of the newest head, so a subscription in another process wakes
    /// at most this much later, and the server runs at most one notifying transaction per
    /// period however fast the store commits. Subscriptions in this process wake at once.
    pub fn notify_every(mut self, period: Duration) -> Self {
        self.notify_every = period;
        self
    }

    /// The clock that stamps events (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Holds each group's transaction open for a random time up to `max` after its rows are
    /// written and before COMMIT. For tests of concurrent writers only.
    #[doc(hidden)]
    pub fn hold_commits_up_to(mut self, max: Duration) -> Self {
        self.hold_commits = Some(max);
        self
    }

    /// Connects, creates the schema and its tables if missing, and checks their format.
    ///
    /// A schema written by another format version, or holding tables of this store without
    /// one, is refused with [`OpenError::UnsupportedFormat`] before anything is written.
    pub fn open(&self) -> Result<PostgresStore, OpenError> {
        let mut config =
            tokio_postgres::Config::from_str(&self.url).map_err(|e| OpenError::InvalidInput {
                path: "a PostgreSQL connection string".to_owned(),
                reason: e.to_string(),
            })?;
        let path = describe(&config, &self.schema);
        schema::validate(&self.schema).map_err(|reason| OpenError::InvalidInput {
            path: path.clone(),
            reason,
        })?;
        let storage = |source: BoxError| OpenError::Storage {
            path: path.clone(),
            source,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("es");
        }
        let runtime = Runtime::new().map_err(|e| storage(Box::new(e)))?;
        let found = runtime
            .run(schema::migrate(config.clone(), self.schema.clone()))
            .map_err(storage)?;
        if found != FORMAT_VERSION {
            return Err(OpenError::UnsupportedFormat {
                path,
                found,
                supported: FORMAT_VERSION,
            });
        }
        let sql = Arc::new(Sql::new(&self.schema));
        let pool = Pool::new(
            config.clone(),
            Arc::clone(&sql),
            self.max_connections,
            self.pool_wait,
        );
        let store_head = pool
            .with(&runtime, |conn| async move {
                let row = conn.client.query_one(&conn.st.head, &[]).await?;
                Ok(row.try_get::<_, i64>(0)? as u64)
            })
            .map_err(storage)?;
        let watch = Arc::new(HeadWatch::new(store_head));
        let commits = Arc::new(listen::Unnotified::default());
        let epoch = Arc::new(AtomicU64::new(0));
        runtime.handle().spawn(listen::listen(
            config,
            channel(&self.schema),
            sql.head.clone(),
            Arc::clone(&watch),
            listen::Periods {
                poll: self.poll_every,
                notify: self.notify_every,
            },
            Arc::clone(&commits),
            Arc::clone(&epoch),
        ));
        tracing::debug!(store = %path, head = store_head, "opened PostgreSQL store");
        Ok(PostgresStore {
            path,
            schema: self.schema.clone(),
            group: GroupQueue::default(),
            pool,
            watch,
            commits,
            clock: Arc::clone(&self.clock),
            hold_commits: self.hold_commits,
            known: Mutex::new(Knowledge::default()),
            pipe: Mutex::new(None),
            epoch,
            skip_one_trip: AtomicU32::new(0),
            one_trip: OneTripCounts::default(),
            schema_sql: schemas::SchemaSql::new(&self.schema),
            runtime,
        })
    }
}

/// The notification channel of a schema's commits.
fn channel(schema: &str) -> String {
    format!("es_commits_{schema}")
}

/// Names the store in errors: its hosts, database and schema, never the password.
fn describe(config: &tokio_postgres::Config, schema: &str) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}/{} schema {schema}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// An event store in PostgreSQL: one schema of one database, shared by every process that
/// opens it.
///
/// Every method blocks its calling thread until the database answered; the store's own small
/// runtime does the I/O, so the calls work from plain threads and from inside any async
/// executor alike (the host moves them off executors anyway). Concurrent appends share one
/// transaction and one WAL flush (group commit), each checked against its own expected
/// version. Subscriptions in any process wake when a group commits: this process's commits
/// at once, other processes' through LISTEN/NOTIFY, with a periodic re-read as the fallback.
///
/// A failed call (the server down, the connection lost) returns a `Storage` error and the
/// next call reconnects. An append whose COMMIT got no answer is reported failed although it
/// may have been written: read the stream before retrying it with [`ExpectedVersion::Any`].
#[derive(Debug)]
pub struct PostgresStore {
    path: String,
    /// The schema holding the tables (validated at open).
    schema: String,
    group: GroupQueue<Append, Outcome>,
    pool: Pool,
    watch: Arc<HeadWatch>,
    /// This process's commits, for the listener to notify other processes of.
    commits: Arc<listen::Unnotified>,
    clock: Arc<dyn Clock>,
    hold_commits: Option<Duration>,
    /// What the next group is planned from, to be sent in one round trip.
    known: Mutex<Knowledge>,
    /// The connection of one-statement groups (see `commit_group`), and the listener's
    /// epoch it was opened in.
    pipe: Mutex<Option<(Arc<pool::Driven>, u64)>>,
    /// Counts the listener's lost connections: a pipe opened before the last one may be
    /// dead without knowing it (nothing polls it while idle), so it is opened again.
    epoch: Arc<AtomicU64>,
    /// Groups still to plan under the lock after a one-round-trip group was refused (another
    /// process moved the log meanwhile), so that contention does not pay for both.
    skip_one_trip: AtomicU32,
    one_trip: OneTripCounts,
    schema_sql: schemas::SchemaSql,
    // Last: shut down after everything that uses it.
    runtime: Runtime,
}

type Param = Box<dyn ToSql + Send + Sync>;
/// Picks one of the prepared statements.
type StatementOf = fn(&Statements) -> &tokio_postgres::Statement;

impl PostgresStore {
    /// What the store is: its hosts, database and schema.
    pub fn describe(&self) -> &str {
        &self.path
    }

    /// Runs one prepared statement with `params` and returns its rows.
    fn query(
        &self,
        statement: fn(&Statements) -> &tokio_postgres::Statement,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, BoxError> {
        self.pool.with(&self.runtime, move |conn| async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            Ok(conn.client.query(statement(&conn.st), &refs).await?)
        })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Views a row of `events` (columns in the order of `schema::Sql`'s event list).
fn event_ref(row: &Row) -> Result<EventRef<'_>, ReadError> {
    let position: i64 = row.try_get(0).map_err(|e| corrupt_row(None, &e))?;
    let at = Some(position);
    let get = |e: tokio_postgres::Error| corrupt_row(at, &e);
    Ok(EventRef {
        position: position as u64,
        stream: row.try_get(1).map_err(get)?,
        version: row.try_get::<_, i64>(2).map_err(get)? as u64,
        event_type: row.try_get(3).map_err(get)?,
        event_id: row.try_get(4).map_err(get)?,
        timestamp: Timestamp(row.try_get::<_, i64>(5).map_err(get)? as u64),
        metadata: row.try_get(6).map_err(get)?,
        payload: row.try_get(7).map_err(get)?,
        event_version: row.try_get::<_, i32>(8).map_err(get)? as u32,
    })
}

fn corrupt_row(position: Option<i64>, e: &tokio_postgres::Error) -> ReadError {
    ReadError::Corrupt {
        // Without its position, the row is only known as part of the store.
        at: position.map_or(Location::Store, |p| Location::Position(p as u64)),
        reason: e.to_string(),
    }
}

fn snapshot_of(row: &Row, stream: &StreamId) -> Result<Snapshot, ReadError> {
    // A row whose version does not read is only known as part of the store.
    let version = row.try_get::<_, i64>(0).map_err(|e| ReadError::Corrupt {
        at: Location::Store,
        reason: format!("a snapshot row of stream {stream:?}: {e}"),
    })? as u64;
    let corrupt = |e: tokio_postgres::Error| ReadError::Corrupt {
        at: Location::Snapshot {
            stream: stream.clone(),
            version,
        },
        reason: e.to_string(),
    };
    Ok(Snapshot {
        version,
        state_version: row.try_get::<_, i64>(1).map_err(corrupt)? as u32,
        payload: row.try_get(2).map_err(corrupt)?,
    })
}

impl EventStore for PostgresStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let request = Append {
            stream: stream.clone(),
            expected,
            events,
        };
        self.group.submit_releasing(
            request,
            |group, release| self.commit_group(group, release),
            || {
                Err(AppendError::Storage {
                    stream: stream.clone(),
                    source: "the group commit panicked; nothing was acknowledged".into(),
                })
            },
        )
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        let rows = self
            .query(|st| &st.stream_version, vec![Box::new(stream.to_string())])
            .map_err(ReadError::Storage)?;
        match rows.first() {
            None => Ok(0),
            Some(row) => {
                row.try_get::<_, i64>(0)
                    .map(|v| v as u64)
                    .map_err(|e| ReadError::Corrupt {
                        at: Location::Head(stream.clone()),
                        reason: e.to_string(),
                    })
            }
        }
    }

    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let name = stream.to_string();
        self.read_rows(
            |from, limit| {
                // The page's range ends at from + limit, which must fit in a bigint.
                vec![
                    Box::new(name.clone()),
                    Box::new(to_i64(from).min(i64::MAX - 4096)),
                    Box::new(limit),
                ]
            },
            |st| &st.read_stream,
            // Versions start at 1.
            from.max(1),
            2,
            |e| {
                if e.stream == name {
                    Ok(())
                } else {
                    Err(format!("it belongs to stream {:?}", e.stream))
                }
            },
            Some((
                |st: &Statements| &st.stream_version,
                vec![Box::new(stream.to_string()) as Param],
            )),
            visitor,
        )
    }

    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        self.read_rows(
            |from, limit| vec![Box::new(to_i64(from)), Box::new(limit)],
            |st| &st.read_all,
            from.max(1),
            0,
            |_| Ok(()),
            None,
            visitor,
        )
    }

    fn head_position(&self) -> Result<u64, ReadError> {
        let rows = self
            .query(|st| &st.head, Vec::new())
            .map_err(ReadError::Storage)?;
        let row = rows.first().ok_or_else(|| ReadError::Corrupt {
            at: Location::Store,
            reason: "the head row is missing".to_owned(),
        })?;
        row.try_get::<_, i64>(0)
            .map(|p| p as u64)
            .map_err(|e| ReadError::Corrupt {
                at: Location::Store,
                reason: e.to_string(),
            })
    }

    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        let name = stream.to_string();
        let snapshot_version = snapshot.version;
        let version = to_i64(snapshot.version);
        let state_version = i64::from(snapshot.state_version);
        let skip = to_i64(keep.max(1) as u64 - 1);
        self.pool
            .with(&self.runtime, move |conn| async move {
                let (c, st) = (&conn.client, &conn.st);
                let save: [&(dyn ToSql + Sync); 4] =
                    [&name, &version, &state_version, &snapshot.payload];
                let trim: [&(dyn ToSql + Sync); 2] = [&name, &skip];
                let result = tokio::try_join!(
                    c.execute(&st.begin, &[]),
                    c.execute(&st.save_snapshot, &save),
                    c.execute(&st.trim_snapshots, &trim),
                    c.execute(&st.commit, &[]),
                );
                if let Err(e) = result {
                    let _ = c.execute(&st.rollback, &[]).await;
                    return Err(e.into());
                }
                Ok(())
            })
            .map_err(|source| WriteError::Storage {
                at: Location::Snapshot {
                    stream: stream.clone(),
                    version: snapshot_version,
                },
                source,
            })
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        self.load_snapshot_before(stream, u64::MAX)
    }

    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        let rows = self
            .query(|st| &st.snapshots, vec![Box::new(stream.to_string())])
            .map_err(ReadError::Storage)?;
        rows.iter().map(|r| snapshot_of(r, stream)).collect()
    }

    fn load_snapshot_before(
        &self,
        stream: &StreamId,
        below: u64,
    ) -> Result<Option<Snapshot>, ReadError> {
        let rows = self
            .query(
                |st| &st.snapshot_before,
                vec![Box::new(stream.to_string()), Box::new(to_i64(below))],
            )
            .map_err(ReadError::Storage)?;
        rows.first().map(|r| snapshot_of(r, stream)).transpose()
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        let at = || Location::Checkpoint(name.to_owned());
        checkpoint_name(name).map_err(|reason| WriteError::InvalidInput { at: at(), reason })?;
        self.query(
            |st| &st.save_checkpoint,
            vec![Box::new(name.to_owned()), Box::new(to_i64(position))],
        )
        .map(drop)
        .map_err(|source| WriteError::Storage { at: at(), source })
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        checkpoint_name(name).map_err(|reason| ReadError::InvalidInput {
            at: Location::Checkpoint(name.to_owned()),
            reason,
        })?;
        let rows = self
            .query(|st| &st.load_checkpoint, vec![Box::new(name.to_owned())])
            .map_err(ReadError::Storage)?;
        rows.first()
            .map(|r| {
                r.try_get::<_, i64>(0)
                    .map(|p| p as u64)
                    .map_err(|e| ReadError::Corrupt {
                        at: Location::Checkpoint(name.to_owned()),
                        reason: e.to_string(),
                    })
            })
            .transpose()
    }

    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        let rows = self
            .query(|st| &st.checkpoints, Vec::new())
            .map_err(ReadError::Storage)?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0).map_err(|e| ReadError::Corrupt {
                    at: Location::Store,
                    reason: format!("a checkpoint row: {e}"),
                })?;
                let position = r.try_get::<_, i64>(1).map_err(|e| ReadError::Corrupt {
                    at: Location::Checkpoint(name.clone()),
                    reason: e.to_string(),
                })?;
                Ok((name, position as u64))
            })
            .collect()
    }

    fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
        let Some(first) = events.first() else {
            let head = self.head_position().unwrap_or(0);
            return Ok(ImportResult::new(head + 1, 0));
        };
        let stream = first.stream.clone();
        let done = self.pool.with(&self.runtime, move |conn| async move {
            commit::import(conn, events).await
        });
        match done {
            Ok(Ok((result, head))) => {
                // Plan the next group under the lock, which reads the imported timestamps.
                self.forget_the_log();
                self.watch.publish(head);
                self.commits.committed(head);
                Ok(result)
            }
            Ok(Err(refused)) => Err(refused),
            Err(source) => Err(AppendError::Storage { stream, source }),
        }
    }

    fn head_watch(&self) -> Option<&HeadWatch> {
        Some(&self.watch)
    }

    fn save_schema(&self, schema: &OwnedSchema) -> Result<Option<RecordedSchema>, WriteError> {
        self.save_schema_row(schema)
    }

    fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        self.schema_rows()
    }

    fn streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, ReadError> {
        self.list_streams(category, after, limit)
    }

    fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
        self.import_schema_rows(records)
    }
}
