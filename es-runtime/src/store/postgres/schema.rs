//! The tables of a store, created and checked at open, and every statement the store runs.
//!
//! The rule: values are always bound parameters; the only text spliced into SQL is the
//! schema name, which [`validate`] restricts to lowercase letters, digits and underscores
//! and which is quoted as an identifier besides.

use crate::error::BoxError;

/// The layout version this build reads and writes, kept in the `meta` table.
pub const FORMAT_VERSION: u32 = 2;

/// Checks a schema name: 1 to 63 bytes of `a-z`, `0-9` and `_`, not starting with a digit
/// or with `pg_` (reserved by PostgreSQL).
pub(super) fn validate(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "a schema name has 1 to 63 bytes; {name:?} has {}",
            name.len()
        ));
    }
    if !ok_chars || name.as_bytes()[0].is_ascii_digit() {
        return Err(format!(
            "a schema name has only a-z, 0-9 and _, and does not start with a digit: {name:?}"
        ));
    }
    if name.starts_with("pg_") {
        return Err(format!(
            "schema names starting with pg_ are PostgreSQL's: {name:?}"
        ));
    }
    Ok(())
}

/// The tables of the current format, in schema `s` (already validated). Run in one transaction.
pub(super) fn create_tables(s: &str) -> String {
    format!(
        r#"
CREATE TABLE "{s}".meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE "{s}".head (
    id           integer PRIMARY KEY CHECK (id = 1),
    position     bigint NOT NULL,
    timestamp_ns bigint NOT NULL
);
INSERT INTO "{s}".head VALUES (1, 0, 0);
CREATE TABLE "{s}".events (
    position     bigint PRIMARY KEY,
    stream       text COLLATE "C" NOT NULL,
    version      bigint NOT NULL,
    event_type   text NOT NULL,
    event_id     uuid NOT NULL,
    timestamp_ns bigint NOT NULL,
    metadata     bytea NOT NULL,
    payload      bytea NOT NULL,
    event_version integer NOT NULL DEFAULT 1,
    UNIQUE (stream, version)
);
CREATE TABLE "{s}".streams (
    stream   text COLLATE "C" PRIMARY KEY,
    version  bigint NOT NULL,
    position bigint NOT NULL
);
CREATE TABLE "{s}".snapshots (
    stream        text COLLATE "C" NOT NULL,
    version       bigint NOT NULL,
    state_version bigint NOT NULL,
    payload       bytea NOT NULL,
    PRIMARY KEY (stream, version)
);
CREATE TABLE "{s}".checkpoints (
    name     text COLLATE "C" PRIMARY KEY,
    position bigint NOT NULL
);
"#
    )
}

/// Creates the schema and its tables if missing, under a lock that serializes the opens of
/// one schema; returns the format version found (this build's, for a new schema).
pub(super) async fn migrate(
    config: tokio_postgres::Config,
    schema: String,
) -> Result<u32, BoxError> {
    let (mut client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let s = schema.as_str();
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('es schema ' || $1::text))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(r#"CREATE SCHEMA IF NOT EXISTS "{s}""#))
        .await?;
    let exists = |table: &str| format!(r#""{s}".{table}"#);
    let found: Option<String> = tx
        .query_one("SELECT to_regclass($1)::text", &[&exists("meta")])
        .await?
        .try_get(0)?;
    let format = if found.is_some() {
        let row = tx
            .query_opt(
                &format!(r#"SELECT value FROM "{s}".meta WHERE key = $1"#),
                &[&"format"],
            )
            .await?;
        match row {
            Some(row) => u32::try_from(row.try_get::<_, i64>(0)?).unwrap_or(u32::MAX),
            None => 0,
        }
    } else {
        let events: Option<String> = tx
            .query_one("SELECT to_regclass($1)::text", &[&exists("events")])
            .await?
            .try_get(0)?;
        if events.is_some() {
            // Tables of this store without a format version: not a layout this build wrote.
            0
        } else {
            tx.batch_execute(&create_tables(s)).await?;
            tx.execute(
                &format!(r#"INSERT INTO "{s}".meta (key, value) VALUES ($1, $2)"#),
                &[&"format", &i64::from(FORMAT_VERSION)],
            )
            .await?;
            FORMAT_VERSION
        }
    };
    let mut format = format;
    if format == 1 {
        // Format 2 stores each event's version (of its type's shape). Format 1's events are
        // version 1, which the column's default gives them without rewriting a row.
        tx.batch_execute(&format!(
            r#"ALTER TABLE "{s}".events ADD COLUMN event_version integer NOT NULL DEFAULT 1"#
        ))
        .await?;
        tx.execute(
            &format!(r#"UPDATE "{s}".meta SET value = $2 WHERE key = $1"#),
            &[&"format", &i64::from(FORMAT_VERSION)],
        )
        .await?;
        format = FORMAT_VERSION;
    }
    if format == FORMAT_VERSION {
        tx.batch_execute(&super::schemas::create_table(s)).await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(format)
}

/// The SQL of every prepared statement, for schema `s`.
#[derive(Debug)]
pub(super) struct Sql {
    pub(super) begin: String,
    pub(super) commit: String,
    pub(super) rollback: String,
    pub(super) lock_head: String,
    pub(super) versions: String,
    pub(super) write_group: String,
    pub(super) head: String,
    pub(super) stream_version: String,
    pub(super) read_stream: String,
    pub(super) read_all: String,
    pub(super) save_snapshot: String,
    pub(super) trim_snapshots: String,
    pub(super) snapshots: String,
    pub(super) snapshot_before: String,
    pub(super) save_checkpoint: String,
    pub(super) load_checkpoint: String,
    pub(super) lock_checkpoint: String,
    pub(super) delete_checkpoint: String,
    pub(super) import_group: String,
    pub(super) checkpoints: String,
}

impl Sql {
    pub(super) fn new(s: &str) -> Sql {
        const EVENT: &str = "position, stream, version, event_type, event_id, timestamp_ns, metadata, payload, \
             event_version";
        Sql {
            begin: "BEGIN".to_owned(),
            commit: "COMMIT".to_owned(),
            rollback: "ROLLBACK".to_owned(),
            lock_head: format!(
                r#"SELECT position, timestamp_ns FROM "{s}".head WHERE id = 1 FOR UPDATE"#
            ),
            versions: format!(
                r#"SELECT stream, version FROM "{s}".streams WHERE stream = ANY($1::text[])"#
            ),
            // The group's rows, stream heads and log head in one statement, which fails
            // (aborting its transaction, so that a COMMIT sent behind it rolls back) unless
            // it wrote exactly the rows planned: the head moves only from the position it
            // was planned after ($15) and from a timestamp no later than the group's, and
            // each stream only from the version it was planned from ($14; 0: no stream).
            // The head's update comes first, so that as PostgreSQL runs the statement the head
            // row is taken before any stream's row.
            write_group: format!(
                r#"WITH h AS (
                       UPDATE "{s}".head SET position = $12, timestamp_ns = $6::int8
                       WHERE id = 1 AND position = $15::int8 AND timestamp_ns <= $6::int8
                       RETURNING 1),
                   e AS (
                       INSERT INTO "{s}".events ({EVENT})
                       SELECT p, st, v, t, i, $6::int8, m, d, ev
                       FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::uuid[],
                                   $7::bytea[], $8::bytea[], $13::int4[])
                            AS u(p, st, v, t, i, m, d, ev)
                       RETURNING 1),
                   u AS (
                       SELECT * FROM unnest($9::text[], $10::int8[], $11::int8[], $14::int8[])
                            AS u(st, v, p, b)),
                   si AS (
                       INSERT INTO "{s}".streams (stream, version, position)
                       SELECT st, v, p FROM u WHERE b = 0
                       ON CONFLICT (stream) DO NOTHING
                       RETURNING 1),
                   su AS (
                       UPDATE "{s}".streams AS t SET version = u.v, position = u.p
                       FROM u WHERE u.b > 0 AND t.stream = u.st AND t.version = u.b
                       RETURNING 1),
                   n AS (
                       SELECT (SELECT count(*) FROM h) AS h, (SELECT count(*) FROM e) AS e,
                              (SELECT count(*) FROM si) + (SELECT count(*) FROM su) AS s)
                   SELECT CASE
                       WHEN h = 1 AND e = cardinality($1::int8[])
                            AND s = cardinality($9::text[]) THEN 0
                       ELSE format('the group wrote %s of %s events, %s of %s stream heads '
                                   'and %s of 1 log heads; nothing was committed',
                                   e, cardinality($1::int8[]), s, cardinality($9::text[]),
                                   h)::int
                   END
                   FROM n"#
            ),
            head: format!(r#"SELECT position FROM "{s}".head WHERE id = 1"#),
            stream_version: format!(r#"SELECT version FROM "{s}".streams WHERE stream = $1"#),
            // A stream's versions are contiguous: bounding the page's range as well as its
            // length keeps every plan to the page's rows (without statistics, the planner
            // would otherwise sort the stream's whole rest for each page).
            read_stream: format!(
                r#"SELECT {EVENT} FROM "{s}".events
                   WHERE stream = $1 AND version >= $2 AND version < $2 + $3
                   ORDER BY version LIMIT $3"#
            ),
            read_all: format!(
                r#"SELECT {EVENT} FROM "{s}".events
                   WHERE position >= $1 ORDER BY position LIMIT $2"#
            ),
            save_snapshot: format!(
                r#"INSERT INTO "{s}".snapshots (stream, version, state_version, payload)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (stream, version) DO UPDATE
                   SET state_version = excluded.state_version, payload = excluded.payload"#
            ),
            trim_snapshots: format!(
                r#"DELETE FROM "{s}".snapshots WHERE stream = $1 AND version < (
                       SELECT version FROM "{s}".snapshots WHERE stream = $1
                       ORDER BY version DESC OFFSET $2 LIMIT 1)"#
            ),
            snapshots: format!(
                r#"SELECT version, state_version, payload FROM "{s}".snapshots
                   WHERE stream = $1 ORDER BY version"#
            ),
            snapshot_before: format!(
                r#"SELECT version, state_version, payload FROM "{s}".snapshots
                   WHERE stream = $1 AND version < $2 ORDER BY version DESC LIMIT 1"#
            ),
            save_checkpoint: format!(
                r#"INSERT INTO "{s}".checkpoints (name, position) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET position = excluded.position"#
            ),
            load_checkpoint: format!(r#"SELECT position FROM "{s}".checkpoints WHERE name = $1"#),
            // Creates the row if missing and locks it either way (an upsert locks the row it
            // finds), returning the position as it was.
            lock_checkpoint: format!(
                r#"INSERT INTO "{s}".checkpoints AS c (name, position) VALUES ($1, 0)
                   ON CONFLICT (name) DO UPDATE SET position = c.position
                   RETURNING position"#
            ),
            delete_checkpoint: format!(r#"DELETE FROM "{s}".checkpoints WHERE name = $1"#),
            // As `write_group`, with a timestamp per event ($6) and the last one for the head
            // ($14): imported events keep theirs.
            import_group: format!(
                r#"WITH e AS (
                       INSERT INTO "{s}".events ({EVENT})
                       SELECT p, st, v, t, i, ts, m, d, ev
                       FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::uuid[],
                                   $6::int8[], $7::bytea[], $8::bytea[], $13::int4[])
                            AS u(p, st, v, t, i, ts, m, d, ev)
                       RETURNING 1),
                   s AS (
                       INSERT INTO "{s}".streams (stream, version, position)
                       SELECT * FROM unnest($9::text[], $10::int8[], $11::int8[])
                       ON CONFLICT (stream) DO UPDATE
                       SET version = excluded.version, position = excluded.position
                       RETURNING 1),
                   h AS (
                       UPDATE "{s}".head SET position = $12, timestamp_ns = $14::int8
                       WHERE id = 1 RETURNING 1),
                   n AS (
                       SELECT (SELECT count(*) FROM e) AS e, (SELECT count(*) FROM s) AS s,
                              (SELECT count(*) FROM h) AS h)
                   SELECT CASE
                       WHEN e = cardinality($1::int8[]) AND s = cardinality($9::text[])
                            AND h = 1 THEN 0
                       ELSE format('the import wrote %s of %s events, %s of %s stream heads '
                                   'and %s of 1 log heads; nothing was committed',
                                   e, cardinality($1::int8[]), s, cardinality($9::text[]),
                                   h)::int
                   END
                   FROM n"#
            ),
            checkpoints: format!(r#"SELECT name, position FROM "{s}".checkpoints ORDER BY name"#),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["es", "es_store_1", "_x", "a".repeat(63).as_str()] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1es",
            "Es",
            "es-store",
            "es store",
            "es\"; DROP TABLE x; --",
            "pg_catalog",
            "é",
            "a".repeat(64).as_str(),
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }
}
