//! Recorded schemas in table `aggregate_schemas`: per aggregate name, every schema a host
//! recorded, by revision.
//!
//! The rule: one statement checks the newest revision of a name and inserts the next one
//! only when its text differs; the primary key makes two processes that race on one name
//! record one revision each time, the loser reading the winner's row on its next attempt.
//! The table is created (if missing) by every open, in the open's transaction: a store of the
//! current format written before it existed gains it without a format change.

use super::{PostgresStore, to_i64};
use crate::error::{BoxError, Location, ReadError, WriteError};
use crate::event::Timestamp;
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::store::schemas;

/// How many times a save runs its statement when a racing process took the revision.
const ATTEMPTS: usize = 8;

/// The table, for schema `s`: run at every open.
pub(super) fn create_table(s: &str) -> String {
    format!(
        r#"CREATE TABLE IF NOT EXISTS "{s}".aggregate_schemas (
    name        text COLLATE "C" NOT NULL,
    revision    integer NOT NULL,
    recorded_ns bigint NOT NULL,
    schema      text NOT NULL,
    PRIMARY KEY (name, revision)
)"#
    )
}

/// The statements on the table, for schema `s`.
#[derive(Debug)]
pub(super) struct SchemaSql {
    save: String,
    list: String,
    lock: String,
    import: String,
}

impl SchemaSql {
    pub(super) fn new(s: &str) -> SchemaSql {
        SchemaSql {
            save: format!(
                r#"WITH newest AS (
                       SELECT revision, schema FROM "{s}".aggregate_schemas
                       WHERE name = $1 ORDER BY revision DESC LIMIT 1)
                   INSERT INTO "{s}".aggregate_schemas (name, revision, recorded_ns, schema)
                   SELECT $1, COALESCE((SELECT revision FROM newest), 0) + 1, $2, $3
                   WHERE NOT EXISTS (SELECT 1 FROM newest WHERE schema = $3)
                   ON CONFLICT (name, revision) DO NOTHING
                   RETURNING revision"#
            ),
            list: format!(
                r#"SELECT name, revision, recorded_ns, schema FROM "{s}".aggregate_schemas
                   ORDER BY name, revision"#
            ),
            // Saves wait behind an import, which sees every record there is.
            lock: format!(r#"LOCK TABLE "{s}".aggregate_schemas IN SHARE ROW EXCLUSIVE MODE"#),
            import: format!(
                r#"INSERT INTO "{s}".aggregate_schemas (name, revision, recorded_ns, schema)
                   SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[])"#
            ),
        }
    }
}

impl PostgresStore {
    pub(super) fn save_schema_row(
        &self,
        schema: &OwnedSchema,
    ) -> Result<Option<RecordedSchema>, WriteError> {
        let (name, json) = schemas::prepare(schema)?;
        let at = || Location::Schema(name.to_owned());
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let sql = self.schema_sql.save.clone();
            let (n, text) = (name.to_owned(), json.clone());
            let inserted = self
                .pool
                .with(&self.runtime, move |conn| async move {
                    let rows = conn
                        .client
                        .query(&sql, &[&n, &to_i64(now.0), &text])
                        .await?;
                    Ok(rows.first().map(|r| r.try_get::<_, i32>(0)).transpose()?)
                })
                .map_err(|source| WriteError::Storage { at: at(), source })?;
            match inserted {
                Some(revision) => {
                    return Ok(Some(RecordedSchema::new(
                        name.to_owned(),
                        revision as u32,
                        now,
                        json,
                    )));
                }
                None => {
                    // Either the newest is this schema, or a racing process took the next
                    // revision: the newest as it is now tells which.
                    let newest = self
                        .schema_rows()
                        .map_err(|e| WriteError::Storage {
                            at: at(),
                            source: Box::new(e),
                        })?
                        .into_iter()
                        .rfind(|r| r.name == name);
                    if newest.is_some_and(|r| r.json == json) {
                        return Ok(None);
                    }
                }
            }
        }
        Err(WriteError::Storage {
            at: at(),
            source: format!("other processes kept recording schemas of {name:?}; try again").into(),
        })
    }

    pub(super) fn import_schema_rows(
        &self,
        records: Vec<RecordedSchema>,
    ) -> Result<u64, WriteError> {
        if records.is_empty() {
            return Ok(0);
        }
        let at = Location::Schema(records[0].name.clone());
        schemas::to_import(&[], records.clone())?;
        let (lock, list, import) = (
            self.schema_sql.lock.clone(),
            self.schema_sql.list.clone(),
            self.schema_sql.import.clone(),
        );
        self.pool
            .with(&self.runtime, move |conn| async move {
                let c = &conn.client;
                let attempt = async {
                    c.batch_execute("BEGIN").await?;
                    c.batch_execute(&lock).await?;
                    let mut held = Vec::new();
                    for row in c.query(&list, &[]).await? {
                        held.push(RecordedSchema::new(
                            row.try_get(0)?,
                            row.try_get::<_, i32>(1)? as u32,
                            Timestamp(row.try_get::<_, i64>(2)? as u64),
                            row.try_get(3)?,
                        ));
                    }
                    let taken = match schemas::to_import(&held, records) {
                        Ok(taken) => taken,
                        Err(refused) => return Ok(Err(refused)),
                    };
                    let names: Vec<&str> = taken.iter().map(|r| r.name.as_str()).collect();
                    let revisions: Vec<i32> = taken
                        .iter()
                        .map(|r| i32::try_from(r.revision).unwrap_or(i32::MAX))
                        .collect();
                    let times: Vec<i64> = taken.iter().map(|r| to_i64(r.recorded_at.0)).collect();
                    let texts: Vec<&str> = taken.iter().map(|r| r.json.as_str()).collect();
                    c.execute(&import, &[&names, &revisions, &times, &texts])
                        .await?;
                    c.batch_execute("COMMIT").await?;
                    Ok::<_, BoxError>(Ok(taken.len() as u64))
                };
                let done = attempt.await;
                if !matches!(done, Ok(Ok(_))) {
                    // Refused or failed: end the transaction before the connection is reused.
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                done
            })
            .map_err(|source| WriteError::Storage { at, source })?
    }

    pub(super) fn schema_rows(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        let sql = self.schema_sql.list.clone();
        let rows = self
            .pool
            .with(&self.runtime, move |conn| async move {
                Ok(conn.client.query(&sql, &[]).await?)
            })
            .map_err(ReadError::Storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = || -> Result<RecordedSchema, tokio_postgres::Error> {
                Ok(RecordedSchema::new(
                    row.try_get(0)?,
                    row.try_get::<_, i32>(1)? as u32,
                    Timestamp(row.try_get::<_, i64>(2)? as u64),
                    row.try_get(3)?,
                ))
            };
            out.push(read().map_err(|e| ReadError::Corrupt {
                at: Location::Schema(row.try_get(0).unwrap_or_default()),
                reason: e.to_string(),
            })?);
        }
        schemas::sort(&mut out);
        Ok(out)
    }
}
