//! Opening a store: the environment, its databases, and the check (or upgrade) of the
//! on-disk format.
//!
//! A store of another format version, or with events but no version, is refused before
//! anything is written, so that an older build never misreads a newer layout. Older formats
//! are upgraded in place, each step in its own arm of [`upgrade`]: format 1 wrote every stream
//! head in every commit, so the heads checkpoint is set to its last position; format 2's
//! checksums did not cover the keys, so the store is marked as holding such records, which
//! stay readable as they are (their tag says so; see `record`); format 3's records have no
//! event shape version, and read as version 1 through their tag; format 4's stream heads had
//! no checksums, and are rewritten with them (and with the links between them).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};

use super::datafile::{self, Checked, DataFile, DataFileProblem};
use super::env::{Environment, MIB, round_to_mib};
use super::heads::{Tail, checksum_heads, new_heads};
use super::options::{Durability, LmdbOptions};
use super::record::HEADS_AT_KEY;
use super::{Inner, Position};
use crate::error::OpenError;
use crate::watch::HeadWatch;

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 5;

const FORMAT_KEY: &[u8] = b"format";

/// Present in a store upgraded from format 2 or older: its snapshots may have checksums that
/// do not cover their keys.
const LEGACY_KEY: &[u8] = b"legacy_checksums";

/// Upgrades a store of format `from` (older than [`FORMAT_VERSION`]) in place, one format
/// at a time.
fn upgrade(
    txn: &mut heed::RwTxn<'_>,
    from: u32,
    log: &Database<Position, Bytes>,
    heads: &Database<Bytes, Bytes>,
    meta: &Database<Bytes, Bytes>,
) -> heed::Result<()> {
    for format in from..FORMAT_VERSION {
        match format {
            // Format 1 wrote every head in each commit: they are up to date.
            1 => {
                let last = log.last(txn)?.map_or(0, |(p, _)| p);
                meta.put(txn, HEADS_AT_KEY, &last.to_be_bytes())?;
            }
            // Format 2's records and snapshots have checksums of their values alone.
            2 => meta.put(txn, LEGACY_KEY, &[1])?,
            // Format 4 adds a record tag holding the event's shape version; format 3's
            // records stay readable as they are, as events of version 1.
            3 => {}
            // Format 5 checksums the stream heads and links each to the key before it.
            4 => checksum_heads(txn, heads)?,
            _ => unreachable!("no upgrade from format {format}"),
        }
    }
    meta.put(txn, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
}

/// Joins the processes using the store (see `datafile::join`), refusing a lock file that
/// is not theirs.
fn joined(path: &Path) -> Result<datafile::Presence, OpenError> {
    match datafile::join(path) {
        Ok(Ok(presence)) => Ok(presence),
        Ok(Err(datafile::LockReplaced)) => Err(OpenError::LockFileReplaced {
            path: path.display().to_string(),
        }),
        Err(e) => Err(OpenError::Storage {
            path: path.display().to_string(),
            source: Box::new(e),
        }),
    }
}

/// Why LMDB did not open the environment, said in the store's terms.
fn env_failed(
    path: &Path,
    e: heed::Error,
    options: &LmdbOptions,
    map_size: usize,
    max_map_size: usize,
) -> OpenError {
    let path = path.display().to_string();
    match e {
        heed::Error::EnvAlreadyOpened => OpenError::Storage {
            path,
            source: Box::new(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "it is already open in this process (with any options); share the open store, \
                 or drop it before opening the directory again",
            )),
        },
        heed::Error::Io(e) if e.raw_os_error() == Some(libc::ENOMEM) => OpenError::Storage {
            path,
            source: Box::new(io::Error::other(format!(
                "cannot map {map_size} bytes ({e}): the map starts at LmdbOptions::map_size \
                 ({} bytes), rounded up to a whole MiB (down, past the last one), at most max_map_size ({max_map_size} \
                 bytes) and at least the data file; it must fit in the address space",
                options.map_size
            ))),
        },
        e => OpenError::Storage {
            path,
            source: Box::new(io::Error::other(e.to_string())),
        },
    }
}

/// Opens (creating if needed) the environment in `path` and checks its format.
pub(super) fn open(path: &Path, options: LmdbOptions) -> Result<Inner, OpenError> {
    let storage = |e: &dyn fmt::Display| OpenError::Storage {
        path: path.display().to_string(),
        source: Box::new(io::Error::other(e.to_string())),
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
        return Err(OpenError::NotADirectory {
            path: path.display().to_string(),
        });
    }
    if !options.read_only {
        std::fs::create_dir_all(path).map_err(|e| OpenError::Storage {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
    }
    let data_file = match datafile::check(path) {
        Ok(found) => found,
        Err(Checked::Problem(DataFileProblem::Truncated { length, required })) => {
            return Err(OpenError::Truncated {
                path: path.display().to_string(),
                length,
                required,
            });
        }
        Err(Checked::Problem(problem)) => {
            return Err(OpenError::Damaged {
                path: path.display().to_string(),
                reason: problem.to_string(),
            });
        }
        Err(Checked::Io(e)) => {
            return Err(OpenError::Storage {
                path: path.display().to_string(),
                source: Box::new(e),
            });
        }
    };
    let max_map_size = round_to_mib(options.max_map_size.max(MIB));
    // LMDB takes the configured size even when the environment had grown larger (down to
    // the size of the data); start from the data file's size so a reopened store does not
    // have to grow again at once.
    let existing = std::fs::metadata(path.join("data.mdb")).map_or(0, |m| m.len());
    let existing = usize::try_from(existing).unwrap_or(usize::MAX);
    let map_size = round_to_mib(options.map_size.max(MIB))
        .min(max_map_size)
        .max(round_to_mib(existing));
    if options.read_only {
        return open_read_only(path, options, data_file, map_size, max_map_size);
    }
    let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
    env_options
        .map_size(map_size)
        .max_dbs(16)
        .max_readers(options.max_readers.max(1));
    if options.durability == Durability::NoSync {
        // SAFETY: NO_SYNC only drops the flush at commit; LMDB stays consistent, and the
        // documented trade-off is losing the last commits on a machine crash.
        unsafe {
            env_options.flags(EnvFlags::NO_SYNC);
        }
    }
    // SAFETY: heed refuses a second open of the same directory in this process. That the
    // files are changed only through LMDB and lie on a local file system cannot be checked:
    // it is what the store assumes, said plainly on `LmdbOptions::open`.
    let env = unsafe { env_options.open(path) }
        .map_err(|e| env_failed(path, e, &options, map_size, max_map_size))?;
    // Before anything is written: a process using the data file through another lock file
    // would be a second writer that LMDB's writer lock does not keep out.
    let presence = joined(path)?;
    let txn = env.write_txn().map_err(|e| storage(&e))?;
    let opened = env
        .create_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
            let log: Database<Position, Bytes> = opener.create_database(txn, Some("log"))?;
            let heads: Database<Bytes, Bytes> = opener.create_database(txn, Some("heads"))?;
            let index: Database<Bytes, Bytes> = opener.create_database(txn, Some("index"))?;
            let snapshots: Database<Bytes, Bytes> =
                opener.create_database(txn, Some("snapshots"))?;
            let checkpoints: Database<Bytes, Bytes> =
                opener.create_database(txn, Some("checkpoints"))?;
            let meta: Database<Bytes, Bytes> = opener.create_database(txn, Some("meta"))?;
            let tables: Database<Bytes, Bytes> = opener.create_database(txn, Some("tables"))?;
            // Created in a store of any format: it adds records and changes none.
            let schemas: Database<Bytes, Bytes> = opener.create_database(txn, Some("schemas"))?;
            let found = meta
                .get(txn, FORMAT_KEY)?
                .map(|v| v.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX));
            match found {
                Some(FORMAT_VERSION) => {}
                Some(old @ 1..FORMAT_VERSION) => upgrade(txn, old, &log, &heads, &meta)?,
                Some(other) => return Ok(CommitOrAbort::Abort(other)),
                // A store with events but no format version is not one this build wrote.
                None if log.len(txn)? > 0 => return Ok(CommitOrAbort::Abort(0)),
                None => {
                    meta.put(txn, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                    meta.put(txn, HEADS_AT_KEY, &0u64.to_be_bytes())?;
                    new_heads(txn, &heads)?;
                }
            }
            Ok(CommitOrAbort::Commit((
                log,
                heads,
                index,
                snapshots,
                checkpoints,
                tables,
                meta,
                schemas,
            )))
        })
        .map_err(|e| storage(&e))?;
    let (log, heads, index, snapshots, checkpoints, tables, meta, schemas) = match opened {
        CommitOrAbort::Commit(dbs) => dbs,
        CommitOrAbort::Abort(found) => {
            return Err(OpenError::UnsupportedFormat {
                path: path.display().to_string(),
                found,
                supported: FORMAT_VERSION,
            });
        }
    };
    let (head, legacy) = {
        let txn = env.read_txn().map_err(|e| storage(&e))?;
        let head = log
            .last(&txn)
            .map_err(|e| storage(&e))?
            .map_or(0, |(p, _)| p);
        let legacy = meta
            .get(&txn, LEGACY_KEY)
            .map_err(|e| storage(&e))?
            .is_some();
        (head, legacy)
    };
    if data_file != (DataFile::Sound { unmarked: false }) {
        // A new store, or one created by a build that left no identity file.
        datafile::mark(path).map_err(|e| OpenError::Storage {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
    }
    tracing::debug!(path = %path.display(), map_size, max_map_size, "opened LMDB store");
    let dbs = Dbs {
        log,
        heads,
        index,
        snapshots,
        checkpoints,
        tables,
        meta,
        schemas: Some(schemas),
    };
    let env = Environment::new(
        env,
        path,
        max_map_size,
        options.durability == Durability::Sync,
        false,
    )
    .holding(Some(presence));
    Ok(inner(env, dbs, options, head, legacy, false))
}

/// The databases of a store.
struct Dbs {
    log: Database<'static, Position, Bytes>,
    heads: Database<'static, Bytes, Bytes>,
    index: Database<'static, Bytes, Bytes>,
    snapshots: Database<'static, Bytes, Bytes>,
    checkpoints: Database<'static, Bytes, Bytes>,
    tables: Database<'static, Bytes, Bytes>,
    meta: Database<'static, Bytes, Bytes>,
    schemas: Option<Database<'static, Bytes, Bytes>>,
}

fn inner(
    env: Environment,
    dbs: Dbs,
    options: LmdbOptions,
    head: u64,
    legacy: bool,
    plain_heads: bool,
) -> Inner {
    Inner {
        env,
        log: dbs.log,
        heads: dbs.heads,
        index: dbs.index,
        snapshots: dbs.snapshots,
        checkpoints: dbs.checkpoints,
        tables: dbs.tables,
        meta: dbs.meta,
        schemas: dbs.schemas,
        tail: Mutex::new(Tail::new(0)),
        heads_every: options.heads_every,
        legacy,
        plain_heads,
        appended: AtomicBool::new(false),
        clock: options.clock,
        watch: HeadWatch::new(head),
    }
}

/// Why a read-only open found no `name` database. Only a store of an older format may lack
/// one (a writable open creates it); in a store whose format is current, or whose format
/// cannot be read, the database was lost to damage to LMDB's main database (which names
/// them), and advice to write into the store would be wrong.
fn missing_database(path: &Path, name: &str, format: Option<u32>) -> OpenError {
    match format {
        Some(old @ 1..FORMAT_VERSION) => OpenError::ReadOnly {
            path: path.display().to_string(),
            reason: format!(
                "it has no `{name}` database, as a store of format version {old} may not; \
                 open it writable once to upgrade it"
            ),
        },
        Some(FORMAT_VERSION) => OpenError::Damaged {
            path: path.display().to_string(),
            reason: format!(
                "its `{name}` database is missing though its format (version \
                 {FORMAT_VERSION}) has one: LMDB's main database, which names the databases, \
                 is damaged"
            ),
        },
        _ => OpenError::Damaged {
            path: path.display().to_string(),
            reason: format!(
                "its `{name}` database is missing and its format cannot be read: LMDB's main \
                 database, which names the databases, is damaged"
            ),
        },
    }
}

/// Opens the store in `path` read-only (see [`LmdbOptions::read_only`]): with `MDB_RDONLY`,
/// nothing created or upgraded.
fn open_read_only(
    path: &Path,
    options: LmdbOptions,
    data_file: DataFile,
    map_size: usize,
    max_map_size: usize,
) -> Result<Inner, OpenError> {
    let refused = |reason: String| OpenError::ReadOnly {
        path: path.display().to_string(),
        reason,
    };
    let storage = |e: &dyn fmt::Display| OpenError::Storage {
        path: path.display().to_string(),
        source: Box::new(io::Error::other(e.to_string())),
    };
    if data_file == DataFile::New {
        return Err(refused(format!(
            "there is no store in it (no {})",
            datafile::DATA_FILE
        )));
    }
    let open = |no_lock: bool| {
        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options
            .map_size(map_size)
            .max_dbs(16)
            .max_readers(options.max_readers.max(1));
        // SAFETY: READ_ONLY makes LMDB refuse every write. NO_LOCK is asked for only when
        // no process holds LMDB's lock on the lock file (checked below), so that no writer
        // can reuse the pages this store reads; the rest is what `LmdbOptions::open` says.
        unsafe {
            env_options.flags(if no_lock {
                EnvFlags::READ_ONLY | EnvFlags::NO_LOCK
            } else {
                EnvFlags::READ_ONLY
            });
            env_options.open(path)
        }
    };
    let mut presence = None;
    let env = match open(false) {
        Ok(env) => {
            presence = Some(joined(path)?);
            env
        }
        Err(heed::Error::Io(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
            // The lock file cannot be written: read without it, unless a process uses it.
            if datafile::lock_in_use(path).map_err(|e| storage(&e))? {
                return Err(refused(format!(
                    "its lock file cannot be written ({e}) and another process has the store \
                     open; a reader the writer does not see could have pages rewritten under \
                     it. Open it from a user that may write lock.mdb, or stop the other process"
                )));
            }
            open(true).map_err(|e| storage(&e))?
        }
        Err(e) => return Err(env_failed(path, e, &options, map_size, max_map_size)),
    };
    let txn = env.read_txn().map_err(|e| storage(&e))?;
    let opened = env
        .open_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
            // The stored format, when a database is missing: whether it may be missing.
            let format = || {
                let meta = opener
                    .open_database::<Bytes, Bytes>(txn, Some("meta"))
                    .ok()??;
                let value = meta.get(txn, FORMAT_KEY).ok()??;
                value.try_into().ok().map(u32::from_be_bytes)
            };
            macro_rules! named {
                ($name:literal) => {
                    match opener.open_database::<Bytes, Bytes>(txn, Some($name))? {
                        Some(db) => db,
                        None => return Ok(CommitOrAbort::Abort(($name, format()))),
                    }
                };
            }
            let Some(log) = opener.open_database::<Position, Bytes>(txn, Some("log"))? else {
                return Ok(CommitOrAbort::Abort(("log", format())));
            };
            // Missing in a store no writable open of this build has opened yet: no schemas.
            let schemas = opener.open_database::<Bytes, Bytes>(txn, Some("schemas"))?;
            Ok(CommitOrAbort::Commit((
                log,
                named!("heads"),
                named!("index"),
                named!("snapshots"),
                named!("checkpoints"),
                named!("tables"),
                named!("meta"),
                schemas,
            )))
        })
        .map_err(|e| storage(&e))?;
    let opened = match opened {
        CommitOrAbort::Commit(dbs) => dbs,
        CommitOrAbort::Abort((name, format)) => return Err(missing_database(path, name, format)),
    };
    let (log, heads, index, snapshots, checkpoints, tables, meta, schemas) = opened;
    let (head, legacy, plain_heads) = {
        let txn = env.read_txn().map_err(|e| storage(&e))?;
        let found = meta
            .get(&txn, FORMAT_KEY)
            .map_err(|e| storage(&e))?
            .map(|v| v.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX));
        let marked = meta
            .get(&txn, LEGACY_KEY)
            .map_err(|e| storage(&e))?
            .is_some();
        let (legacy, plain_heads) = match found {
            Some(FORMAT_VERSION) => (marked, false),
            // Formats 3 and 4 differ in their records' tags (which say how to read them) and
            // in their stream heads, read as they are, unchecked.
            Some(3 | 4) => (marked, true),
            // Format 2 differs in its checksums too, which its records' tags tell.
            Some(2) => (true, true),
            Some(1) => {
                return Err(refused(format!(
                    "it has format version 1, which needs an upgrade to format {FORMAT_VERSION} (its \
                     stream heads checkpoint); open it writable once"
                )));
            }
            other => {
                return Err(OpenError::UnsupportedFormat {
                    path: path.display().to_string(),
                    found: other.unwrap_or(0),
                    supported: FORMAT_VERSION,
                });
            }
        };
        let head = log
            .last(&txn)
            .map_err(|e| storage(&e))?
            .map_or(0, |(p, _)| p);
        (head, legacy, plain_heads)
    };
    tracing::debug!(path = %path.display(), map_size, "opened LMDB store read-only");
    let dbs = Dbs {
        log,
        heads,
        index,
        snapshots,
        checkpoints,
        tables,
        meta,
        schemas,
    };
    let env = Environment::new(env, path, max_map_size, false, true).holding(presence);
    Ok(inner(env, dbs, options, head, legacy, plain_heads))
}
