//! Read models in PostgreSQL tables, written in the same transaction as their projection's
//! checkpoint: each event is applied exactly once, whatever crashes.
//!
//! The rule: a chunk of events is read, applied and its checkpoint moved in one transaction
//! that first locks the checkpoint's row. Either the chunk's writes and its checkpoint commit
//! together, or neither does; and two runners of one projection (in two processes, say) take
//! turns per chunk, each starting from the checkpoint the other committed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio_postgres::Row;
use tokio_postgres::Statement;

use super::pool::Conn;
use super::{Param, PostgresStore, event_ref, to_i64};
use crate::DomainEvent;
use crate::error::{BoxError, Location, ReadError, WriteError};
use crate::host::error::panic_message;
use crate::read::{Envelope, reads};
use crate::runner::sealed::Sealed;
use crate::runner::{Advanced, Chunk, Feed, ProjectionError, Runner};
use crate::store::{EventStore, checkpoint_name};

/// A statement's parameter, owned: `Box::new(value)`.
pub type SqlParam = Param;

/// A projection whose read model lives in tables of the PostgreSQL database, written through
/// the [`SqlTransaction`] that also moves its checkpoint.
///
/// `apply` takes `&self`: all the state lives in the database, so a chunk that is rolled back
/// (a crash, a lost connection, an event the projection refuses) leaves nothing behind, and
/// running it again gives the same tables. Its tables are the projection's own; create them
/// in [`prepare`](Self::prepare), which runs before each chunk in the chunk's transaction.
///
/// ```no_run
/// use es_runtime::read::Envelope;
/// use es_runtime::store::postgres::{SqlError, SqlProjection, SqlRunner, SqlTransaction};
/// # use es_runtime::{DomainEvent, PostgresOptions};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # enum AccountEvent { Deposited { amount: u64 } }
/// # impl DomainEvent for AccountEvent {
/// #     const TYPES: &'static [&'static str] = &["Deposited"];
/// #     fn event_type(&self) -> &'static str { "Deposited" }
/// # }
///
/// /// Deposits per account, in table `deposits`.
/// struct Deposits;
///
/// impl SqlProjection for Deposits {
///     type Event = AccountEvent;
///     type Error = SqlError;
///     fn name(&self) -> &str { "deposits" }
///     fn prepare(&self, sql: &mut SqlTransaction<'_>) -> Result<(), SqlError> {
///         sql.execute(
///             "CREATE TABLE IF NOT EXISTS deposits (account text PRIMARY KEY, total bigint NOT NULL)",
///             vec![],
///         )?;
///         Ok(())
///     }
///     fn reset(&self, sql: &mut SqlTransaction<'_>) -> Result<(), SqlError> {
///         sql.execute("DELETE FROM deposits", vec![])?;
///         Ok(())
///     }
///     fn apply(&self, sql: &mut SqlTransaction<'_>, e: Envelope<'_, AccountEvent>) -> Result<(), SqlError> {
///         let AccountEvent::Deposited { amount } = e.event;
///         sql.execute(
///             "INSERT INTO deposits VALUES ($1, $2)
///              ON CONFLICT (account) DO UPDATE SET total = deposits.total + excluded.total",
///             vec![Box::new(e.aggregate_id().to_owned()), Box::new(*amount as i64)],
///         )?;
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresOptions::new("host=/run/postgresql dbname=app").open()?;
/// let mut runner = SqlRunner::new(&store, Deposits);
/// runner.catch_up()?;
/// # Ok(())
/// # }
/// ```
pub trait SqlProjection {
    /// The events it reads. Events whose stored type name is not in
    /// [`DomainEvent::TYPES`] are skipped without decoding.
    type Event: DomainEvent;

    /// Why applying an event can fail.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A unique name: the key of its checkpoint (1 to 500 bytes).
    fn name(&self) -> &str;

    /// The stream categories it reads (an aggregate's `NAME`); empty: all. By default, those
    /// of its event type ([`DomainEvent::CATEGORIES`]).
    fn categories(&self) -> &[&str] {
        Self::Event::CATEGORIES
    }

    /// Creates the read model's tables if missing; runs at the start of every chunk's
    /// transaction (by default, nothing). Only a statement can fail here, and its failure
    /// stops the runner with [`ProjectionError::Checkpoint`].
    fn prepare(&self, sql: &mut SqlTransaction<'_>) -> Result<(), SqlError> {
        let _ = sql;
        Ok(())
    }

    /// Empties the read model, for a rebuild; runs in the transaction that removes the
    /// checkpoint. When it panics, that transaction is rolled back and the runner stops with
    /// [`ProjectionError::ResetPanicked`].
    fn reset(&self, sql: &mut SqlTransaction<'_>) -> Result<(), Self::Error>;

    /// Folds one event into the read model.
    ///
    /// When it returns an error, whatever it wrote for this event is rolled back, the events
    /// before it are committed with the checkpoint just before it, and the runner stops with
    /// [`ProjectionError::Apply`]; when it panics, the same, and the runner stops with
    /// [`ProjectionError::Panicked`].
    fn apply(
        &self,
        sql: &mut SqlTransaction<'_>,
        event: Envelope<'_, Self::Event>,
    ) -> Result<(), Self::Error>;
}

/// A statement failed in a projection's transaction. The transaction is aborted: the chunk
/// is rolled back whatever the projection does with the error, and the runner stops with
/// [`ProjectionError::Checkpoint`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(#[source] BoxError);

/// The transaction of one chunk of a [`SqlProjection`], which also moves its checkpoint.
///
/// Each statement blocks the calling thread until the database answered; its parameters are
/// owned (`Box::new(value)`), bound as binary parameters, never spliced into the text. A
/// statement's text is prepared once per chunk.
pub struct SqlTransaction<'a> {
    store: &'a PostgresStore,
    conn: Arc<Conn>,
    prepared: HashMap<String, Statement>,
    /// The first failed statement's error: it aborted the transaction.
    failed: Option<BoxError>,
    /// BEGIN was sent and neither COMMIT nor ROLLBACK.
    open: bool,
}

impl std::fmt::Debug for SqlTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTransaction")
            .field("store", &self.store.describe())
            .field("failed", &self.failed.is_some())
            .finish()
    }
}

impl<'a> SqlTransaction<'a> {
    /// Runs a statement; returns the rows it affected.
    pub fn execute(&mut self, statement: &str, params: Vec<Param>) -> Result<u64, SqlError> {
        let prepared = self.prepare(statement)?;
        let conn = Arc::clone(&self.conn);
        let done = self.store.runtime.run(async move {
            let refs = refs(&params);
            Ok(conn.client.execute(&prepared, &refs).await?)
        });
        self.note(done)
    }

    /// Runs a query; returns its rows.
    pub fn query(&mut self, statement: &str, params: Vec<Param>) -> Result<Vec<Row>, SqlError> {
        let prepared = self.prepare(statement)?;
        let conn = Arc::clone(&self.conn);
        let done = self.store.runtime.run(async move {
            let refs = refs(&params);
            Ok(conn.client.query(&prepared, &refs).await?)
        });
        self.note(done)
    }

    fn prepare(&mut self, statement: &str) -> Result<Statement, SqlError> {
        if let Some(prepared) = self.prepared.get(statement) {
            return Ok(prepared.clone());
        }
        let conn = Arc::clone(&self.conn);
        let text = statement.to_owned();
        let done = self
            .store
            .runtime
            .run(async move { Ok(conn.client.prepare(&text).await?) });
        let prepared = self.note(done)?;
        self.prepared.insert(statement.to_owned(), prepared.clone());
        Ok(prepared)
    }

    fn note<T>(&mut self, done: Result<T, BoxError>) -> Result<T, SqlError> {
        done.map_err(|e| {
            let message = e.to_string();
            self.failed.get_or_insert(e);
            SqlError(message.into())
        })
    }

    /// Opens a transaction on a connection of `store`'s pool, held until it ends.
    fn begin(store: &'a PostgresStore, begin: &'static str) -> Result<Self, BoxError> {
        let conn = store.pool.acquire(&store.runtime)?;
        let mut tx = SqlTransaction {
            store,
            conn,
            prepared: HashMap::new(),
            failed: None,
            open: false,
        };
        let conn = Arc::clone(&tx.conn);
        store
            .runtime
            .run(async move { Ok(conn.client.batch_execute(begin).await?) })?;
        tx.open = true;
        Ok(tx)
    }

    /// Ends the transaction: COMMIT, or ROLLBACK when a statement failed in it.
    fn commit(mut self) -> Result<(), BoxError> {
        if let Some(failed) = self.failed.take() {
            return Err(failed);
        }
        let conn = Arc::clone(&self.conn);
        self.open = false;
        self.store
            .runtime
            .run(async move { Ok(conn.client.execute(&conn.st.commit, &[]).await?) })
            .map(drop)
    }

    /// The projection's checkpoint, its row created if missing and locked to the end of the
    /// transaction: another runner of the projection waits here for this chunk to end.
    fn lock_checkpoint(&mut self, name: &str) -> Result<u64, BoxError> {
        let conn = Arc::clone(&self.conn);
        let name = name.to_owned();
        self.store.runtime.run(async move {
            let row = conn
                .client
                .query_one(&conn.st.lock_checkpoint, &[&name])
                .await?;
            Ok(row.try_get::<_, i64>(0)? as u64)
        })
    }

    /// The projection's checkpoint as this transaction sees it (0: none).
    fn checkpoint_in(&mut self, name: &str) -> Result<u64, ReadError> {
        let conn = Arc::clone(&self.conn);
        let key = name.to_owned();
        let rows = self
            .store
            .runtime
            .run(async move { Ok(conn.client.query(&conn.st.load_checkpoint, &[&key]).await?) })
            .map_err(ReadError::Storage)?;
        match rows.first() {
            Some(row) => {
                row.try_get::<_, i64>(0)
                    .map(|p| p as u64)
                    .map_err(|e| ReadError::Corrupt {
                        at: Location::Checkpoint(name.to_owned()),
                        reason: e.to_string(),
                    })
            }
            None => Ok(0),
        }
    }

    fn save_checkpoint(&mut self, name: &str, position: u64) -> Result<(), BoxError> {
        let conn = Arc::clone(&self.conn);
        let name = name.to_owned();
        let position = to_i64(position);
        self.store
            .runtime
            .run(async move {
                Ok(conn
                    .client
                    .execute(&conn.st.save_checkpoint, &[&name, &position])
                    .await?)
            })
            .map(drop)
    }

    fn delete_checkpoint(&mut self, name: &str) -> Result<(), BoxError> {
        let conn = Arc::clone(&self.conn);
        let name = name.to_owned();
        self.store
            .runtime
            .run(async move {
                Ok(conn
                    .client
                    .execute(&conn.st.delete_checkpoint, &[&name])
                    .await?)
            })
            .map(drop)
    }

    /// Up to `count` events of the log from position `from`, as this transaction sees it.
    fn read_log(&mut self, from: u64, count: u64) -> Result<Vec<Row>, BoxError> {
        let conn = Arc::clone(&self.conn);
        let (from, count) = (to_i64(from), to_i64(count));
        self.store.runtime.run(async move {
            Ok(conn
                .client
                .query(&conn.st.read_all, &[&from, &count])
                .await?)
        })
    }

    /// The first failed statement's error, if one failed.
    fn take_failure(&mut self) -> Option<BoxError> {
        self.failed.take()
    }
}

impl Drop for SqlTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // Not committed: end it before the connection serves anyone else.
            let conn = Arc::clone(&self.conn);
            let _ = self
                .store
                .runtime
                .run(async move { Ok(conn.client.execute(&conn.st.rollback, &[]).await?) });
        }
        self.store.pool.release(Arc::clone(&self.conn));
    }
}

fn refs(params: &[Param]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// Feeds a [`SqlProjection`] from a [`PostgresStore`], one transaction per chunk of events
/// holding the read model's updates and the checkpoint: exactly once. A [`Runner`] over a
/// [`SqlFeed`]; its API (`catch_up`, `run_until`, `follow`, `rebuild`, `checkpoint_every`,
/// progress) is every runner's.
///
/// `S` is anything that lends the store: `&PostgresStore`, `Arc<PostgresStore>`,
/// `PostgresStore`.
pub type SqlRunner<S, P> = Runner<SqlFeed<S, P>>;

/// A [`SqlProjection`] with the store that holds its checkpoint: what a [`SqlRunner`] runs.
#[derive(Debug)]
pub struct SqlFeed<S, P> {
    store: S,
    projection: P,
}

impl<S: AsRef<PostgresStore>, P: SqlProjection> SqlRunner<S, P> {
    /// A runner feeding `projection` from `store`, 1000 log positions per transaction unless
    /// told otherwise.
    pub fn new(store: S, projection: P) -> Self {
        Runner::with_feed(SqlFeed { store, projection }, 1000)
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.feed.projection
    }

    /// The store.
    pub fn store(&self) -> &PostgresStore {
        self.feed.store.as_ref()
    }

    /// Reads the read model on one snapshot of the database, with the checkpoint it reflects
    /// (0: none): `read` runs in a read-only repeatable-read transaction.
    pub fn read<R>(
        &self,
        read: impl FnOnce(&mut SqlTransaction<'_>) -> Result<R, SqlError>,
    ) -> Result<(u64, R), ReadError> {
        let store = self.store();
        let name = self.feed.projection.name().to_owned();
        let mut tx =
            SqlTransaction::begin(store, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(ReadError::Storage)?;
        let checkpoint = tx.checkpoint_in(&name)?;
        let out = read(&mut tx).map_err(|e| ReadError::Storage(Box::new(e)))?;
        Ok((checkpoint, out))
    }
}

impl<S, P> Sealed for SqlFeed<S, P> {}

impl<S: AsRef<PostgresStore>, P: SqlProjection> SqlFeed<S, P> {
    /// The projection's name, checked to be one.
    fn name(&self) -> Result<String, ProjectionError<P::Error>> {
        let name = self.projection.name();
        checkpoint_name(name).map_err(|reason| {
            ProjectionError::Checkpoint(WriteError::InvalidInput {
                at: Location::Checkpoint(name.to_owned()),
                reason,
            })
        })?;
        Ok(name.to_owned())
    }
}

/// A failure of the database under a chunk of projection `name`.
fn storage<E: std::error::Error + 'static>(name: &str) -> impl Fn(BoxError) -> ProjectionError<E> {
    move |source| {
        ProjectionError::Checkpoint(WriteError::Storage {
            at: Location::Table(name.to_owned()),
            source,
        })
    }
}

impl<S: AsRef<PostgresStore>, P: SqlProjection> Feed for SqlFeed<S, P> {
    type Error = P::Error;

    fn store(&self) -> &dyn EventStore {
        self.store.as_ref()
    }

    fn name(&self) -> &str {
        self.projection.name()
    }

    /// Empties the read model (the projection's `reset`) and removes the checkpoint in one
    /// transaction. A crash during the rebuild that follows leaves a read model that matches
    /// its checkpoint; running again continues.
    fn reset(&mut self) -> Result<(), ProjectionError<P::Error>> {
        let name = self.name()?;
        let failed = storage::<P::Error>(&name);
        let mut tx = SqlTransaction::begin(self.store.as_ref(), "BEGIN").map_err(&failed)?;
        tx.lock_checkpoint(&name).map_err(&failed)?;
        let _ = self.projection.prepare(&mut tx);
        if let Some(e) = tx.take_failure() {
            return Err(failed(e));
        }
        let projection = &self.projection;
        // A panic leaves the read model as it was: the transaction rolls back as it drops.
        let reset =
            catch_unwind(AssertUnwindSafe(|| projection.reset(&mut tx))).map_err(|panic| {
                ProjectionError::ResetPanicked {
                    projection: name.clone(),
                    message: panic_message(&*panic),
                }
            })?;
        if let Some(e) = tx.take_failure() {
            return Err(failed(e));
        }
        reset.map_err(|source| ProjectionError::Reset {
            projection: name.clone(),
            source,
        })?;
        tx.delete_checkpoint(&name).map_err(&failed)?;
        tx.commit().map_err(&failed)
    }

    /// Applies one chunk in one transaction. When the projection refuses an event, the
    /// transaction is rolled back and the events before it are applied again and committed.
    fn advance(&mut self, chunk: &Chunk) -> Result<Advanced, ProjectionError<P::Error>> {
        let name = self.name()?;
        let failed = storage::<P::Error>(&name);
        let categories = self.projection.categories();
        // Set when an attempt met an event the projection refused: apply only what precedes it.
        let mut limit: Option<u64> = None;
        let mut refused: Option<ProjectionError<P::Error>> = None;
        loop {
            let mut tx = SqlTransaction::begin(self.store.as_ref(), "BEGIN").map_err(&failed)?;
            let from = tx.lock_checkpoint(&name).map_err(&failed)?;
            let _ = self.projection.prepare(&mut tx);
            if let Some(e) = tx.take_failure() {
                return Err(failed(e));
            }
            let end = chunk.end(from);
            // One record past the chunk is read, when there is one and it may be applied, to
            // learn whether there is more.
            let upto = chunk.read_limit(end).min(limit.unwrap_or(u64::MAX));
            let rows = tx
                .read_log(from.saturating_add(1), upto.saturating_sub(from))
                .map_err(&failed)?;
            let mut last = from;
            let mut more = false;
            let mut applied = 0u64;
            let mut failure = None;
            let mut refusal = None;
            for row in &rows {
                let e = event_ref(row)?;
                let position = e.position;
                if chunk.is_past_run(&e, applied) || limit.is_some_and(|l| position > l) {
                    break;
                }
                if position > end {
                    more = true;
                    break;
                }
                if reads::<P::Event>(categories, &e) {
                    let event = match e.decode::<P::Event>() {
                        Ok(event) => event,
                        Err(source) => {
                            failure = Some(ProjectionError::Decode {
                                projection: name.clone(),
                                position,
                                source,
                            });
                            break;
                        }
                    };
                    let projection = &self.projection;
                    let envelope = Envelope::new(&e, &event);
                    let result =
                        catch_unwind(AssertUnwindSafe(|| projection.apply(&mut tx, envelope)));
                    let result = match result {
                        Ok(result) => result,
                        Err(panic) => {
                            // As a refusal: rolled back, and what precedes it applied.
                            refusal = Some((
                                position,
                                ProjectionError::Panicked {
                                    projection: name.clone(),
                                    stream: e.stream.to_owned(),
                                    version: e.version,
                                    position,
                                    message: panic_message(&*panic),
                                },
                            ));
                            break;
                        }
                    };
                    if let Some(e) = tx.take_failure() {
                        return Err(failed(e));
                    }
                    if let Err(source) = result {
                        refusal = Some((
                            position,
                            ProjectionError::Apply {
                                projection: name.clone(),
                                stream: e.stream.to_owned(),
                                version: e.version,
                                position,
                                event_type: event.event_type().to_owned(),
                                source,
                            },
                        ));
                        break;
                    }
                    applied += 1;
                }
                last = position;
            }
            if let Some((position, error)) = refusal {
                // Rolled back as `tx` drops: the refused event's writes must not stay. Apply
                // what precedes it (nothing, if it came first).
                drop(tx);
                limit = Some(position - 1);
                refused = Some(error);
                continue;
            }
            if last != from {
                tx.save_checkpoint(&name, last).map_err(&failed)?;
            }
            tx.commit().map_err(&failed)?;
            let done = Advanced {
                from,
                to: last,
                applied,
                more,
            };
            return match refused.or(failure) {
                Some(error) => Err(error),
                None => Ok(done),
            };
        }
    }
}

impl AsRef<PostgresStore> for PostgresStore {
    fn as_ref(&self) -> &PostgresStore {
        self
    }
}
