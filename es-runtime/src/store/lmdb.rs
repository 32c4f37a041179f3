//! [`LmdbStore`]: the durable embedded store, on LMDB through heed.
//!
//! One LMDB environment (a directory holding `data.mdb` and `lock.mdb`) per store. The
//! databases inside it and the byte layout of their keys and values are described in
//! `docs/STORAGE.md` of the source repository; a format version stored in the environment is checked at open.
//!
//! - **Durability.** An append returns once its transaction is committed and, with
//!   [`Durability::Sync`] (the default), fsynced.
//! - **Group commit.** Appends (and snapshots) arriving while a commit runs are committed
//!   together in the next transaction (see [`LmdbStore`]).
//! - **Readers never wait for writers**: reads run on an LMDB snapshot (MVCC).
//! - **The map grows** when LMDB reports it full, up to [`LmdbOptions::max_map_size`].
//! - **The data file is written ahead** of the data on Linux with [`Durability::Sync`], so
//!   that a commit does not also have to sync the file's new size (see [`LmdbOptions::open`]).
//! - **Several processes** may open the same directory; LMDB's lock serializes their writers,
//!   and positions and versions are always derived from the committed data.

#![deny(clippy::unnecessary_safety_doc)]

mod checkpoints;
mod commit;
mod datafile;
mod env;
mod fail;
mod gate;
mod headroom;
mod heads;
mod log;
mod open;
mod options;
mod pages;
mod read;
mod record;
mod schemas;
mod snapshots;
mod stats;
mod tables;
mod verify;

pub use self::open::FORMAT_VERSION;
pub use self::options::{Durability, LmdbOptions};
pub use self::stats::{DatabaseUse, LmdbStats};
pub use self::tables::{Entries, ReadOnlyTable, Table, TableFeed, TableProjection, TableRunner};
pub use self::verify::{Damage, VerifyReport, verify_path};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use heed::types::{Bytes, U64};
use heed::{Database, RoTxn, RwTxn, WithoutTls};

use self::commit::{Append, Import, Outcome, SnapshotWrite, Write};
use self::env::{Environment, Reader};
use self::fail::Fail;
use self::heads::Tail;
use self::log::LogForward;
use crate::error::{AppendError, Location, OpenError, ReadError, WriteError};
use crate::event::{Clock, ExpectedVersion, NewEvent, RecordedEvent, StreamId, Timestamp};
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::store::{
    AppendResult, EventStore, GroupQueue, ImportResult, Snapshot, StreamHead, Visitor,
};
use crate::watch::HeadWatch;

type Position = U64<heed::byteorder::BigEndian>;
type LogDb = Database<'static, Position, Bytes>;
type BytesDb = Database<'static, Bytes, Bytes>;

/// A durable event store in an LMDB environment.
///
/// ```
/// use es_runtime::store::lmdb::LmdbStore;
/// use es_runtime::{EventStore, ExpectedVersion, NewEvent, StreamId};
///
/// let dir = std::env::temp_dir().join(format!("es-doc-store-{}", std::process::id()));
/// let stream = StreamId::new("account", 42)?;
/// {
///     let store = LmdbStore::open(&dir)?;
///     store.append(&stream, ExpectedVersion::NoStream, vec![NewEvent::raw("Opened", vec![0x80])])?;
/// }
/// let store = LmdbStore::open(&dir)?; // reopened: the event is still there
/// assert_eq!(store.stream_version(&stream)?, 1);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), es_runtime::Error>(())
/// ```
///
/// # Group commit
///
/// Appends from many threads are committed in groups: the first appender to find no commit in
/// progress commits at once, and appenders arriving meanwhile are committed together by the
/// next one, in one write transaction and one fsync. Each append is checked against its own
/// expected version in arrival order (an append sees the effect of earlier appends in its
/// group) and fails alone. Snapshots take the same path, so a snapshot saved while appends
/// commit shares their next transaction and fsync.
///
/// # Bad data
///
/// Every stored record carries a checksum. A damaged event, stream head or index entry makes
/// reads return [`ReadError::Corrupt`] naming the stream, version and position (never a
/// panic); a stream read stops at the damaged event's chunk (up to 256 events), while the
/// global log reads up to it. A damaged snapshot makes [`load_snapshot`](EventStore::load_snapshot) return
/// [`ReadError::Corrupt`] naming the stream and snapshot version: the host ignores it with a
/// warning and rebuilds the aggregate from its events, and the next snapshot saved replaces
/// it as the latest. A damaged record among those written since the stream heads were last
/// stored (see [`LmdbOptions::heads_every`]) also hides the version of any stream it may
/// belong to: reading such a stream by version, or appending to it, fails with an error
/// naming the damaged position.
///
/// # The memory map
///
/// LMDB's memory map shows through in the views passed to
/// [`read_stream_with`](EventStore::read_stream_with) and
/// [`read_all_with`](EventStore::read_all_with); see [`LmdbOptions::open`] for what the store
/// assumes about its files to keep them valid.
pub struct LmdbStore {
    inner: Inner,
    commits: GroupQueue<Write, Outcome>,
    /// A directory to remove on drop (declared last: the environment closes first).
    _temporary: Option<TempDir>,
}

/// What the store's parts share: the environment, its databases, and the state kept beside
/// them. Its parts live in the modules named after them (`commit`, `heads`, `read`,
/// `snapshots`, `checkpoints`); tables use only the narrow API at the end of this file.
struct Inner {
    env: Environment,
    log: LogDb,
    heads: BytesDb,
    index: BytesDb,
    snapshots: BytesDb,
    checkpoints: BytesDb,
    tables: BytesDb,
    meta: BytesDb,
    /// The recorded schemas (see `schemas`); `None` in a store opened read-only that has none.
    schemas: Option<BytesDb>,
    /// The stream heads of the records after the heads checkpoint (see `heads`).
    tail: Mutex<Tail>,
    heads_every: u64,
    /// The store was written by format 2 or older: its snapshots' checksums do not cover
    /// their keys (see `record`).
    legacy: bool,
    /// The stream heads are of format 4 or older (a store opened read-only, not upgraded):
    /// no checksums, no links (see `record::read_plain_head`).
    plain_heads: bool,
    /// This handle appended since it last wrote the heads: dropping it writes them.
    appended: AtomicBool,
    clock: Arc<dyn Clock>,
    /// Published after each commit of this handle; other processes' commits are found by
    /// subscribers re-reading the head now and then.
    watch: HeadWatch,
}

impl Drop for LmdbStore {
    /// Writes the stream heads if this handle appended since they were last written, so the
    /// next open has no tail to read. A failure only costs that read.
    fn drop(&mut self) {
        if self._temporary.is_some() || !self.inner.appended.load(Ordering::Relaxed) {
            return;
        }
        if let Err(error) = self.inner.checkpoint_heads() {
            tracing::warn!(path = %self.inner.env.path().display(), %error, "could not write the stream heads on close");
        }
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.inner.env.path())
            .field("map_size", &self.map_size())
            .field("max_map_size", &self.inner.env.max_map_size())
            .finish_non_exhaustive()
    }
}

impl LmdbStore {
    /// Opens (creating if needed) the store in directory `path` with default
    /// [`LmdbOptions`]; see [`LmdbOptions::open`] for what the store assumes about its files.
    pub fn open(path: impl AsRef<Path>) -> Result<LmdbStore, OpenError> {
        LmdbOptions::new().open(path)
    }

    /// A store in a fresh directory under the system's temporary directory, removed when the
    /// store is dropped. For tests and examples.
    pub fn temporary(options: LmdbOptions) -> Result<LmdbStore, OpenError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = Timestamp::from(std::time::SystemTime::now()).as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "es-lmdb-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000_007
        ));
        LmdbStore::open_with(&dir, options, Some(TempDir(dir.clone())))
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        self.inner.env.path()
    }

    /// Whether the store was opened read-only ([`LmdbOptions::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.inner.env.is_read_only()
    }

    /// The current size of the memory map in bytes (the store's current size limit, grown on
    /// demand up to [`LmdbOptions::max_map_size`]).
    pub fn map_size(&self) -> usize {
        self.inner.env.info().map_size
    }

    /// Queues a write for the group commit and waits for its outcome; `failed` is the
    /// write's outcome should its group's commit panic.
    fn submit(&self, write: Write, failed: impl FnOnce() -> Outcome) -> Outcome {
        self.commits
            .submit(write, |group| self.inner.commit_group(group), failed)
    }

    /// Flushes every commit to disk; useful after appending with [`Durability::NoSync`].
    /// A read-only store has nothing to flush.
    pub fn sync(&self) -> Result<(), WriteError> {
        if self.is_read_only() {
            return Ok(());
        }
        self.inner
            .env
            .force_sync()
            .map_err(|e| WriteError::Storage {
                at: Location::Store,
                source: Box::new(e),
            })
    }

    fn open_with(
        path: &Path,
        options: LmdbOptions,
        temporary: Option<TempDir>,
    ) -> Result<LmdbStore, OpenError> {
        Ok(LmdbStore {
            inner: open::open(path, options)?,
            commits: GroupQueue::default(),
            _temporary: temporary,
        })
    }
}

/// The narrow API through which tables (and the other parts) reach the environment.
impl Inner {
    /// A read transaction.
    fn reader(&self) -> Result<Reader<'_>, ReadError> {
        self.env.reader()
    }

    /// Runs a write transaction, growing the map and retrying when it is full.
    fn write<T>(
        &self,
        at: &dyn Fn() -> Location,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, Fail>,
    ) -> Result<T, WriteError> {
        self.env.transact(at, |txn| f(txn).map(|out| (out, true)))
    }

    /// Runs a write transaction that commits when `f` answers `true` and aborts otherwise,
    /// growing the map and running `f` again when it is full.
    fn transact<T>(
        &self,
        at: &dyn Fn() -> Location,
        f: impl FnMut(&mut RwTxn<'_>) -> Result<(T, bool), Fail>,
    ) -> Result<T, WriteError> {
        self.env.transact(at, f)
    }

    /// The database of every projection's table.
    fn table_db(&self) -> BytesDb {
        self.tables
    }

    /// Reads positions `from..=upto` of the log forwards (see [`LogForward`]).
    fn log_forward<'t>(
        &self,
        txn: &'t RoTxn<'t, WithoutTls>,
        from: u64,
        upto: u64,
    ) -> heed::Result<LogForward<'t>> {
        LogForward::new(self.log, self.meta, txn, from, upto)
    }
}

impl EventStore for LmdbStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        if self.is_read_only() {
            return Err(AppendError::ReadOnly {
                stream: stream.clone(),
            });
        }
        let append = Append::new(stream, expected, events)?;
        self.submit(Write::Append(append), || {
            Outcome::Append(Err(AppendError::Storage {
                stream: stream.clone(),
                source: "the commit panicked".into(),
            }))
        })
        .into_append()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        let r = self.inner.reader()?;
        self.inner
            .head_in(&r.txn, stream)
            .map(|(version, _)| version)
            .map_err(Fail::into_read_error)
    }

    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        self.inner.read_stream(stream, from, visitor)
    }

    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        self.inner.read_all(from, visitor)
    }

    fn head_watch(&self) -> Option<&HeadWatch> {
        Some(&self.inner.watch)
    }

    fn streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, ReadError> {
        let r = self.inner.reader()?;
        self.inner
            .list_streams(&r.txn, category, after, limit)
            .map_err(Fail::into_read_error)
    }

    fn head_position(&self) -> Result<u64, ReadError> {
        let r = self.inner.reader()?;
        log::last_position(self.inner.log, self.inner.meta, &r.txn).map_err(fail::read_failed)
    }

    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        if self.is_read_only() {
            return Err(WriteError::ReadOnly {
                at: Location::Snapshot {
                    stream: stream.clone(),
                    version: snapshot.version,
                },
            });
        }
        let (mut key, mut value) = (Vec::new(), Vec::new());
        record::stream_key(&mut key, stream.as_str(), snapshot.version);
        record::encode_snapshot(&mut value, &key, snapshot.state_version, &snapshot.payload);
        let version = snapshot.version;
        let write = SnapshotWrite {
            stream: stream.clone(),
            version,
            value,
            keep: keep.max(1),
        };
        // Queued with the appends: when a commit is running, the snapshot shares the next
        // group's transaction and fsync instead of paying for its own.
        self.submit(Write::Snapshot(write), || {
            Outcome::Snapshot(Err(WriteError::Storage {
                at: Location::Snapshot {
                    stream: stream.clone(),
                    version,
                },
                source: "the commit panicked".into(),
            }))
        })
        .into_snapshot()
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        self.inner.load_snapshot(stream)
    }

    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        self.inner.snapshots(stream)
    }

    fn load_snapshot_before(
        &self,
        stream: &StreamId,
        below: u64,
    ) -> Result<Option<Snapshot>, ReadError> {
        self.inner.load_snapshot_before(stream, below)
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        self.inner.save_checkpoint(name, position)
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        self.inner.load_checkpoint(name)
    }

    fn save_schema(&self, schema: &OwnedSchema) -> Result<Option<RecordedSchema>, WriteError> {
        self.inner.save_schema(schema)
    }

    fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        self.inner.schemas()
    }

    fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
        self.inner.import_schemas(records)
    }

    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        self.inner.checkpoints()
    }

    fn import(&self, events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
        if let (true, Some(first)) = (self.is_read_only(), events.first()) {
            return Err(AppendError::ReadOnly {
                stream: first.stream.clone(),
            });
        }
        let Some(import) = Import::new(events)? else {
            return Ok(ImportResult::new(
                self.head_position().map_or(1, |h| h + 1),
                0,
            ));
        };
        let stream = import.stream().clone();
        self.submit(Write::Import(import), || {
            Outcome::Import(Err(AppendError::Storage {
                stream,
                source: "the commit panicked".into(),
            }))
        })
        .into_import()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn the_store_is_send_sync_and_static() {
        assert_send_sync_static::<LmdbStore>();
        assert_send_sync_static::<Arc<dyn EventStore>>();
    }

    #[test]
    fn input_the_store_cannot_take_is_invalid_input_naming_where_it_was_to_go() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let stream = StreamId::new("acc", 1).unwrap();
        let long_type = "T".repeat(usize::from(u16::MAX) + 1);
        let refused = store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::raw(long_type, vec![0xc0])],
            )
            .unwrap_err();
        match &refused {
            AppendError::InvalidInput { stream: s, reason } => {
                assert_eq!(s, &stream);
                assert!(reason.contains("type name"), "{reason}");
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
        assert_eq!(store.stream_version(&stream).unwrap(), 0);

        let name = "n".repeat(501);
        let at = Location::Checkpoint(name.clone());
        match store.save_checkpoint(&name, 1).unwrap_err() {
            WriteError::InvalidInput { at: found, .. } => assert_eq!(found, at),
            other => panic!("expected invalid input, got {other:?}"),
        }
        match store.load_checkpoint(&name).unwrap_err() {
            ReadError::InvalidInput { at: found, .. } => assert_eq!(found, at),
            other => panic!("expected invalid input, got {other:?}"),
        }
        match store.read_table("", |_| ()).unwrap_err() {
            ReadError::InvalidInput { at: found, .. } => {
                assert_eq!(found, Location::Table(String::new()))
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
}
