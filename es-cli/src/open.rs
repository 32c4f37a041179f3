//! Opening the store named on the command line: an LMDB directory, opened read-only, or a
//! PostgreSQL connection string.
//!
//! The rule: inspecting a store never creates one; only the commands that write (`import`,
//! the target of `copy`) open a store writable, creating it if it is missing. A directory without a store is refused
//! before LMDB is asked, and a PostgreSQL schema without the store's tables is refused before
//! [`PostgresOptions::open`] (which would create them) runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use es_runtime::{EventStore, LmdbOptions, LmdbStore, PostgresOptions, PostgresStore};

use crate::error::{CliError, Result};

/// An open store.
// One per run of the tool: the stores' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Store {
    Lmdb(LmdbStore),
    Postgres(PostgresStore),
}

/// What the first argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    Lmdb(PathBuf),
    Postgres { url: String, schema: String },
}

impl Location {
    /// A connection string (`postgres://`, `postgresql://`, or libpq's `key=value` pairs) is a
    /// PostgreSQL store; anything else is a directory.
    pub(crate) fn parse(spec: &str, schema: &str) -> Location {
        let pairs = ["host=", "dbname=", "user=", "port="];
        let is_url = spec.starts_with("postgres://") || spec.starts_with("postgresql://");
        if is_url
            || pairs
                .iter()
                .any(|p| spec.split_whitespace().any(|w| w.starts_with(p)))
        {
            Location::Postgres {
                url: spec.to_owned(),
                schema: schema.to_owned(),
            }
        } else {
            Location::Lmdb(PathBuf::from(spec))
        }
    }
}

impl Store {
    pub(crate) fn open(location: &Location) -> Result<Store> {
        match location {
            Location::Lmdb(path) => {
                check_lmdb_dir(path)?;
                Ok(Store::Lmdb(LmdbOptions::new().read_only(true).open(path)?))
            }
            Location::Postgres { url, schema } => {
                check_schema(url, schema)?;
                let store = PostgresOptions::new(url.clone())
                    .schema(schema.clone())
                    .max_connections(2)
                    .open()?;
                Ok(Store::Postgres(store))
            }
        }
    }

    /// Opens the store to write into it, creating an LMDB directory or a PostgreSQL schema
    /// (with its tables) when there is none.
    pub(crate) fn open_writable(location: &Location) -> Result<Store> {
        match location {
            Location::Lmdb(path) => {
                if let Ok(m) = std::fs::metadata(path)
                    && !m.is_dir()
                {
                    return Err(CliError::cannot_open(format_args!(
                        "no store at {}: a store is a directory, and this is not one",
                        path.display()
                    )));
                }
                Ok(Store::Lmdb(LmdbOptions::new().open(path)?))
            }
            Location::Postgres { url, schema } => {
                // Reached and a connection string first, so that the error is the tool's
                // one line rather than a pool's retries.
                probe(url, schema)?;
                let store = PostgresOptions::new(url.clone())
                    .schema(schema.clone())
                    .max_connections(2)
                    .open()?;
                Ok(Store::Postgres(store))
            }
        }
    }

    pub(crate) fn events(&self) -> &dyn EventStore {
        match self {
            Store::Lmdb(s) => s,
            Store::Postgres(s) => s,
        }
    }

    /// The store, for a person: its path or server, never a password.
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::Lmdb(s) if s.is_read_only() => {
                format!("{} (LMDB, read-only)", s.path().display())
            }
            Store::Lmdb(s) => format!("{} (LMDB)", s.path().display()),
            Store::Postgres(s) => format!("{} (PostgreSQL)", s.describe()),
        }
    }

    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Store::Lmdb(_) => "lmdb",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// Refuses a path that holds no LMDB store, saying what is there instead.
pub(crate) fn check_lmdb_dir(path: &Path) -> Result<()> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::cannot_open(
            format_args!("no store at {shown}: no such directory"),
        )),
        Err(e) => Err(CliError::cannot_open(format_args!(
            "cannot open the store at {shown}: {e}"
        ))),
        Ok(m) if !m.is_dir() => Err(CliError::cannot_open(format_args!(
            "no store at {shown}: a store is a directory, and this is not one"
        ))),
        Ok(_) => Ok(()),
    }
}

/// Refuses a schema without the store's tables, so that looking does not create them.
fn check_schema(url: &str, schema: &str) -> Result<()> {
    if probe(url, schema)? {
        Ok(())
    } else {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            CliError::cannot_open(format_args!("not a PostgreSQL connection string: {e}"))
        })?;
        Err(CliError::cannot_open(format_args!(
            "no store in schema {schema:?} of {} (name the store's schema with --schema)",
            describe_server(&config)
        )))
    }
}

/// Connects to the server and says whether `schema` holds a store's tables.
fn probe(url: &str, schema: &str) -> Result<bool> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        CliError::cannot_open(format_args!("not a PostgreSQL connection string: {e}"))
    })?;
    let server = describe_server(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format_args!("cannot start the I/O runtime: {e}")))?;
    let found = runtime.block_on(async {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, 'events'))::text",
                &[&schema],
            )
            .await;
        drop(client);
        let _ = connection.await;
        row.map(|row| row.get::<_, Option<String>>(0).is_some())
    });
    match found {
        Ok(found) => Ok(found),
        Err(e) => Err(CliError::cannot_open(format_args!(
            "cannot connect to {server}: {}",
            crate::error::one_line(&error_chain(&e))
        ))),
    }
}

/// An error and its sources, as tokio-postgres says only "error connecting to server" at
/// the top.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The server and database of a connection string, without its password.
fn describe_server(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}
