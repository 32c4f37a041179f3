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

mod gate;
mod group;
mod headroom;
mod record;
mod tables;
mod tail;

pub use self::tables::{Entries, Table, TableFeed, TableProjection, TableRunner, TableView};

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use heed::types::{Bytes, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, PutFlags, RwTxn};
use heed::{RoTxn, WithoutTls};

use self::gate::{MapGate, Pass};
use self::group::GroupCommit;
use self::headroom::Headroom;
use self::tail::{Tail, Unreadable};
use crate::codec;
use crate::error::{AppendError, BoxError, OpenError, ReadError, WriteError};
use crate::event::{Clock, EventRef, ExpectedVersion, NewEvent, StreamId, SystemClock, Timestamp};
use crate::store::{AppendResult, EventStore, Snapshot, Visitor};
use crate::watch::HeadWatch;

/// The on-disk format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

const FORMAT_KEY: &[u8] = b"format";

/// The position up to which the `heads` database is up to date (u64 BE).
const HEADS_AT_KEY: &[u8] = b"heads_at";

/// The stream index holds the position of every `BLOCK`-th event of a stream (versions
/// `BLOCK`, `2 * BLOCK`, ...); the events in between are found through the back pointers
/// of the log records. See `docs/STORAGE.md` for why.
const BLOCK: u64 = 32;

/// How many events of a stream a read walks back over at most before visiting them: a multiple
/// of `BLOCK`, so that each chunk but the last ends at an indexed event.
const CHUNK: u64 = 8 * BLOCK;
const MIB: usize = 1 << 20;

type Position = U64<heed::byteorder::BigEndian>;
type LogDb = Database<'static, Position, Bytes>;
type BytesDb = Database<'static, Bytes, Bytes>;

/// When an acknowledged append is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed to disk (fsync) before the appends in it return. An
    /// acknowledged event survives a crash of the process and of the machine.
    #[default]
    Sync,
    /// Commits are written to the file system but not flushed. An acknowledged event survives a
    /// crash of the process, but the last commits may be lost if the machine loses power or
    /// the kernel crashes. The store stays consistent either way (LMDB never sees a partial
    /// commit).
    NoSync,
}

/// Options for opening an [`LmdbStore`].
///
/// ```
/// use es_runtime::store::lmdb::{Durability, LmdbOptions};
///
/// let dir = std::env::temp_dir().join(format!("es-doc-options-{}", std::process::id()));
/// let store = LmdbOptions::new()
///     .durability(Durability::NoSync)
///     .map_size(16 << 20)
///     .max_map_size(1 << 30)
///     .open(&dir)?;
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), es_runtime::OpenError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmdbOptions {
    durability: Durability,
    map_size: usize,
    max_map_size: usize,
    max_readers: u32,
    heads_every: u64,
    clock: Arc<dyn Clock>,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions::new()
    }
}

impl LmdbOptions {
    /// The defaults: [`Durability::Sync`], a 64 MiB map growing up to 1 TiB (64-bit targets;
    /// 1 GiB elsewhere), 126 concurrent readers, stream heads written every 4096 positions,
    /// the system clock.
    pub fn new() -> Self {
        let max = if cfg!(target_pointer_width = "64") {
            1 << 40
        } else {
            1 << 30
        };
        LmdbOptions {
            durability: Durability::Sync,
            map_size: 64 * MIB,
            max_map_size: max,
            max_readers: 126,
            heads_every: 4096,
            clock: Arc::new(SystemClock),
        }
    }

    /// When appends count as done (default [`Durability::Sync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The initial size of the memory map, in bytes (rounded up to a whole MiB; at least 1 MiB).
    /// The map grows when full, so this only saves early resizes. An existing store keeps the
    /// larger size it has grown to.
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.map_size = bytes;
        self
    }

    /// The largest the map may grow, in bytes: the store's size limit. Appends that would need
    /// more fail with [`AppendError::StoreFull`].
    pub fn max_map_size(mut self, bytes: usize) -> Self {
        self.max_map_size = bytes;
        self
    }

    /// How many read transactions may be open at once across every process using the
    /// directory (LMDB's reader table). Only applies when the environment is created.
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers;
        self
    }

    /// How far the log may run ahead of the stored stream heads, in positions (default 4096;
    /// at least 1).
    ///
    /// A stream's version and last position (its *head*) are written to the store only every
    /// this many positions, in one commit, and in between are taken from the records after
    /// that point (kept in memory). A group commit of appends to many streams then writes
    /// the log's pages alone instead of a page of heads per stream, which is most of the
    /// speed of many concurrent writers. The price is reading up to this many records when a
    /// process opens a store whose last writer did not close it (a crash), and a little
    /// memory per record. Nothing is lost either way: the heads are rebuilt from the log.
    pub fn heads_every(mut self, positions: u64) -> Self {
        self.heads_every = positions.max(1);
        self
    }

    /// The clock that stamps appended events.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// # Safety
    ///
    /// This function is safe to call, but LMDB hands out views into a memory map of the data
    /// file, and the store relies on the following for those views to stay valid (see heed's
    /// `EnvOpenOptions::open`):
    ///
    /// - the files in the directory are changed only through LMDB (this store, or another
    ///   program using LMDB with its lock file), never truncated or rewritten by other means
    ///   while open (the store's own zeros past the end of the data, below, are written
    ///   under LMDB's writer lock);
    /// - the directory is on a local file system (LMDB's lock does not work over NFS and
    ///   similar);
    /// - the same directory is not opened twice in one process (heed refuses, and this
    ///   function returns an error).
    ///
    /// The store itself makes sure the map is only resized when none of its transactions is
    /// open in this process, as LMDB requires.
    ///
    /// # Disk space
    ///
    /// On Linux, with [`Durability::Sync`], the data file is kept written with zeros ahead
    /// of LMDB's pages: when fewer than an eighth of their size (at least 128 KiB, at most
    /// 4 MiB) is left, zeros are written up to a quarter (at least 256 KiB, at most 8 MiB),
    /// never past the map size. LMDB writes a commit's new pages at the end of the file;
    /// when that makes the file longer, the commit's `fdatasync` must also write the file's
    /// size and block map, a second wait on the disk. Written ahead, a growing store commits
    /// faster (16–20% more appends per second with 64 callers, see BENCHMARKS.md); the
    /// commit that writes the zeros flushes them, so it takes longer by up to 8 MiB of
    /// writing. An append group of more than 64 KiB of payloads grows the file itself.
    /// Should writing ahead fail (a full disk), the zeros are taken back and the store goes on
    /// without.
    pub fn open(self, path: impl AsRef<Path>) -> Result<LmdbStore, OpenError> {
        LmdbStore::open_with(path.as_ref(), self, None)
    }
}

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
/// # Safety
///
/// LMDB's memory map shows through in the views passed to
/// [`read_stream_with`](EventStore::read_stream_with) and
/// [`read_all_with`](EventStore::read_all_with); see [`LmdbOptions::open`] for what the store
/// relies on to keep them valid.
pub struct LmdbStore {
    inner: Inner,
    commits: GroupCommit<Request, Result<AppendResult, AppendError>>,
    /// A directory to remove on drop (declared last: the environment closes first).
    _temporary: Option<TempDir>,
}

struct Inner {
    env: Env<WithoutTls>,
    log: LogDb,
    heads: BytesDb,
    index: BytesDb,
    snapshots: BytesDb,
    checkpoints: BytesDb,
    tables: BytesDb,
    meta: BytesDb,
    /// The stream heads of the records after the heads checkpoint (see `tail`).
    tail: Mutex<Tail>,
    heads_every: u64,
    /// This handle appended since it last wrote the heads: dropping it writes them.
    appended: AtomicBool,
    gate: MapGate,
    clock: Arc<dyn Clock>,
    max_map_size: usize,
    /// Zeros written ahead of the data, so that durable commits do not grow the file.
    headroom: Headroom,
    page_size: u64,
    path: PathBuf,
    /// Published after each commit of this handle; other processes' commits are found by
    /// subscribers re-reading the head now and then.
    watch: HeadWatch,
}

/// One write waiting to be committed: an append, or a snapshot riding in the same group so
/// that it shares the appends' fsync.
struct Request {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    /// The encoded metadata of each event.
    metadata: Vec<Vec<u8>>,
    /// For a snapshot: its version, encoded record and how many to keep. No events then.
    snapshot: Option<(u64, Vec<u8>, usize)>,
}

impl Request {
    /// About how many bytes the request adds to the store: its payloads, metadata and
    /// snapshot.
    fn bytes(&self) -> u64 {
        let events: usize = self.events.iter().map(|e| e.payload.len()).sum();
        let metadata: usize = self.metadata.iter().map(Vec::len).sum();
        let snapshot = self.snapshot.as_ref().map_or(0, |(_, s, _)| s.len());
        (events + metadata + snapshot) as u64
    }
}

impl Drop for LmdbStore {
    /// Writes the stream heads if this handle appended since they were last written, so the
    /// next open has no tail to read. A failure only costs that read.
    fn drop(&mut self) {
        if self._temporary.is_some() || !self.inner.appended.load(Ordering::Relaxed) {
            return;
        }
        if let Err(error) = self.inner.checkpoint_heads() {
            tracing::warn!(path = %self.inner.path.display(), %error, "could not write the stream heads on close");
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
            .field("path", &self.inner.path)
            .field("map_size", &self.inner.env.info().map_size)
            .field("max_map_size", &self.inner.max_map_size)
            .finish_non_exhaustive()
    }
}

/// Why a transaction did not go through.
enum Fail {
    /// LMDB ran out of map: grow it and retry.
    MapFull,
    /// Another process grew the map beyond ours: adopt its size and retry.
    MapResized,
    /// A stored record is not what this store writes.
    Corrupt {
        what: String,
        reason: String,
    },
    /// The file system is out of space.
    DiskFull(String),
    Other(heed::Error),
}

impl From<heed::Error> for Fail {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => Fail::MapFull,
            heed::Error::Mdb(MdbError::MapResized) => Fail::MapResized,
            e => Fail::Other(e),
        }
    }
}

impl Fail {
    /// Turns an I/O error of a write into a disk-full error when the file system of `path` is
    /// out of space. LMDB reports a short write as `EIO`, so the error code alone does not
    /// tell.
    fn check_disk_full(self, path: &Path) -> Fail {
        match self {
            Fail::Other(heed::Error::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Fail::DiskFull(e.to_string())
            }
            Fail::Other(heed::Error::Io(e)) if e.raw_os_error() == Some(libc::EIO) => {
                match free_space(path) {
                    Some(free) if free < 16 * MIB as u64 => Fail::DiskFull(format!(
                        "{e}, with {free} bytes left on the store's file system"
                    )),
                    _ => Fail::Other(heed::Error::Io(e)),
                }
            }
            other => other,
        }
    }

    /// A fresh error for one caller.
    fn to_box(&self) -> BoxError {
        match self {
            Fail::DiskFull(detail) => Box::new(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("the disk is full ({detail}); nothing acknowledged was lost"),
            )),
            Fail::Other(heed::Error::Io(e)) => Box::new(io::Error::new(e.kind(), e.to_string())),
            Fail::Other(e) => Box::new(io::Error::other(e.to_string())),
            Fail::Corrupt { what, reason } => Box::new(io::Error::other(format!(
                "corrupt data in {what}: {reason}"
            ))),
            Fail::MapFull => Box::new(io::Error::other("the map is full")),
            Fail::MapResized => Box::new(io::Error::other("the map was resized")),
        }
    }

    fn into_read_error(self) -> ReadError {
        match self {
            Fail::Corrupt { what, reason } => ReadError::Corrupt { what, reason },
            Fail::Other(heed::Error::Mdb(MdbError::Corrupted)) => ReadError::Corrupt {
                what: "the LMDB environment".to_owned(),
                reason: MdbError::Corrupted.to_string(),
            },
            other => ReadError::Storage(other.to_box()),
        }
    }
}

/// Bytes available to unprivileged users on the file system holding `path`.
#[cfg(not(unix))]
fn free_space(_path: &Path) -> Option<u64> {
    None
}

/// Bytes available to unprivileged users on the file system holding `path`.
#[cfg(unix)]
fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is writable memory of the right type.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types vary between platforms.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (stat.f_bavail as u64, stat.f_frsize as u64);
    Some(blocks.saturating_mul(size))
}

/// Growing the map failed.
enum GrowError {
    AtLimit,
    Failed(Fail),
}

impl LmdbStore {
    /// Opens (creating if needed) the store in directory `path` with default
    /// [`LmdbOptions`]; see [`LmdbOptions::open`] for the conditions LMDB relies on.
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
        &self.inner.path
    }

    /// The current size of the memory map in bytes (the store's current size limit, grown on
    /// demand up to [`LmdbOptions::max_map_size`]).
    pub fn map_size(&self) -> usize {
        self.inner.env.info().map_size
    }

    /// Queues a write for the group commit and waits for its outcome.
    fn submit(&self, request: Request) -> Result<AppendResult, AppendError> {
        self.commits.submit(
            request,
            |group| self.inner.commit_group(group),
            |r| {
                Err(AppendError::Storage {
                    stream: r.stream.to_string(),
                    source: Box::new(io::Error::other("the commit panicked")),
                })
            },
        )
    }

    /// Flushes every commit to disk; useful after appending with [`Durability::NoSync`].
    pub fn sync(&self) -> Result<(), WriteError> {
        self.inner
            .env
            .force_sync()
            .map_err(|e| WriteError::Storage {
                what: "a sync of the store".to_owned(),
                source: Box::new(e),
            })
    }

    fn open_with(
        path: &Path,
        options: LmdbOptions,
        temporary: Option<TempDir>,
    ) -> Result<LmdbStore, OpenError> {
        let storage = |e: &dyn fmt::Display| OpenError::Storage {
            path: path.display().to_string(),
            source: Box::new(io::Error::other(e.to_string())),
        };
        std::fs::create_dir_all(path).map_err(|e| OpenError::Storage {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
        let max_map_size = round_to_mib(options.max_map_size.max(MIB));
        // LMDB takes the configured size even when the environment had grown larger (down to
        // the size of the data); start from the data file's size so a reopened store does not
        // have to grow again at once.
        let existing = std::fs::metadata(path.join("data.mdb")).map_or(0, |m| m.len());
        let existing = usize::try_from(existing).unwrap_or(usize::MAX);
        let map_size = round_to_mib(options.map_size.max(MIB))
            .min(max_map_size)
            .max(round_to_mib(existing));
        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options
            .map_size(map_size)
            .max_dbs(8)
            .max_readers(options.max_readers.max(1));
        if options.durability == Durability::NoSync {
            // SAFETY: NO_SYNC only drops the flush at commit; LMDB stays consistent, and the
            // documented trade-off is losing the last commits on a machine crash.
            unsafe {
                env_options.flags(EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: the conditions are documented on `LmdbOptions::open`: the files are only
        // changed through LMDB, the file system is local, and heed refuses a second open of the
        // same directory in this process.
        let env = unsafe { env_options.open(path) }.map_err(|e| storage(&e))?;
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
                let found = meta
                    .get(txn, FORMAT_KEY)?
                    .map(|v| v.try_into().map(u32::from_be_bytes).unwrap_or(u32::MAX));
                match found {
                    Some(FORMAT_VERSION) => {}
                    // Format 1 wrote every head in each commit: they are up to date.
                    Some(1) => {
                        let last = log.last(txn)?.map_or(0, |(p, _)| p);
                        meta.put(txn, HEADS_AT_KEY, &last.to_be_bytes())?;
                        meta.put(txn, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                    }
                    Some(other) => return Ok(CommitOrAbort::Abort(other)),
                    // A store with events but no format version is not one this build wrote.
                    None if log.len(txn)? > 0 => return Ok(CommitOrAbort::Abort(0)),
                    None => {
                        meta.put(txn, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                        meta.put(txn, HEADS_AT_KEY, &0u64.to_be_bytes())?;
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
                )))
            })
            .map_err(|e| storage(&e))?;
        let (log, heads, index, snapshots, checkpoints, tables, meta) = match opened {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(found) => {
                return Err(OpenError::UnsupportedFormat {
                    path: path.display().to_string(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        };
        let head = {
            let txn = env.read_txn().map_err(|e| storage(&e))?;
            log.last(&txn)
                .map_err(|e| storage(&e))?
                .map_or(0, |(p, _)| p)
        };
        let page_size = u64::from(env.unnamed_database_stat().page_size);
        tracing::debug!(path = %path.display(), map_size, max_map_size, "opened LMDB store");
        Ok(LmdbStore {
            inner: Inner {
                env,
                log,
                heads,
                index,
                snapshots,
                checkpoints,
                tables,
                meta,
                tail: Mutex::new(Tail::new(0)),
                heads_every: options.heads_every,
                appended: AtomicBool::new(false),
                gate: MapGate::default(),
                clock: options.clock,
                max_map_size,
                headroom: Headroom::new(path, options.durability == Durability::Sync),
                page_size,
                path: path.to_owned(),
                watch: HeadWatch::new(head),
            },
            commits: GroupCommit::default(),
            _temporary: temporary,
        })
    }
}

fn round_to_mib(bytes: usize) -> usize {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

/// A read transaction with the pass that keeps the map from being resized under it.
struct Reader<'a> {
    // Declared first: the transaction ends before the pass is returned.
    txn: RoTxn<'a, WithoutTls>,
    _pass: Pass<'a>,
}

impl Inner {
    fn reader(&self) -> Result<Reader<'_>, ReadError> {
        loop {
            let pass = self.gate.enter();
            match self.env.read_txn() {
                Ok(txn) => return Ok(Reader { txn, _pass: pass }),
                Err(e) => match Fail::from(e) {
                    Fail::MapResized => {
                        drop(pass);
                        self.adopt_map_size().map_err(Fail::into_read_error)?;
                    }
                    other => return Err(other.into_read_error()),
                },
            }
        }
    }

    /// Takes the map size another process grew the environment to.
    fn adopt_map_size(&self) -> Result<(), Fail> {
        if MapGate::held_by_this_thread() {
            return Err(Fail::Other(heed::Error::Io(io::Error::other(
                "another process grew the store while this thread was reading it; retry",
            ))));
        }
        // SAFETY: `exclusive` runs this with no transaction of this store open in this
        // process, and heed allows no other handle on the environment here.
        self.gate
            .exclusive(|| unsafe { self.env.resize(0) })
            .map_err(Fail::from)
    }

    /// Grows the map after a `MapFull` seen with the map at `seen` bytes.
    fn grow(&self, seen: usize) -> Result<(), GrowError> {
        if MapGate::held_by_this_thread() {
            return Err(GrowError::Failed(Fail::Other(heed::Error::Io(
                io::Error::other("the store is full and cannot grow while this thread reads it"),
            ))));
        }
        self.gate.exclusive(|| {
            let current = self.env.info().map_size;
            if current > seen {
                return Ok(()); // someone grew it meanwhile
            }
            if current >= self.max_map_size {
                return Err(GrowError::AtLimit);
            }
            // Double, in steps of at most 1 GiB.
            let step = current.clamp(MIB, 1 << 30);
            let new = round_to_mib(current.saturating_add(step)).min(self.max_map_size);
            tracing::info!(path = %self.path.display(), from = current, to = new, "growing the LMDB map");
            // SAFETY: `exclusive` runs this with no transaction of this store open in this
            // process, and heed allows no other handle on the environment here.
            unsafe { self.env.resize(new) }.map_err(|e| GrowError::Failed(e.into()))
        })
    }

    /// Keeps zeros written ahead of the data file's last page (see `headroom`). Call it with
    /// a write transaction open: LMDB's writer lock keeps every other writer out of the file's
    /// end meanwhile. `group`: the appends the transaction writes (none for other writes).
    fn keep_headroom(&self, group: &[Request]) {
        if !self.headroom.is_on() {
            return;
        }
        let info = self.env.info();
        let used = (info.last_page_number as u64 + 1).saturating_mul(self.page_size);
        let writing = group.iter().map(Request::bytes).sum();
        self.headroom.keep(used, info.map_size as u64, writing);
    }

    /// Runs a write transaction, growing the map and retrying when it is full.
    fn write<T>(
        &self,
        what: &dyn Fn() -> String,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, Fail>,
    ) -> Result<T, WriteError> {
        self.transact(what, |txn| f(txn).map(|out| (out, true)))
    }

    /// Runs a write transaction that commits when `f` answers `true` and aborts otherwise,
    /// growing the map and running `f` again when it is full.
    fn transact<T>(
        &self,
        what: &dyn Fn() -> String,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<(T, bool), Fail>,
    ) -> Result<T, WriteError> {
        loop {
            let seen = self.env.info().map_size;
            let attempt = (|| {
                let _pass = self.gate.enter();
                let mut txn = self.env.write_txn()?;
                self.keep_headroom(&[]);
                let (out, commit) = f(&mut txn)?;
                if commit {
                    txn.commit()?;
                }
                Ok(out)
            })();
            let failed = match attempt {
                Ok(out) => return Ok(out),
                Err(Fail::MapFull) => match self.grow(seen) {
                    Ok(()) => continue,
                    Err(GrowError::AtLimit) => {
                        return Err(WriteError::StoreFull {
                            what: what(),
                            limit: self.max_map_size as u64,
                        });
                    }
                    Err(GrowError::Failed(f)) => f,
                },
                Err(Fail::MapResized) => match self.adopt_map_size() {
                    Ok(()) => continue,
                    Err(f) => f,
                },
                Err(other) => other.check_disk_full(&self.path),
            };
            return Err(WriteError::Storage {
                what: what(),
                source: failed.to_box(),
            });
        }
    }

    /// The version of `stream` and the position of its last event, as `txn` sees them.
    fn head_in(&self, txn: &RoTxn<'_>, stream: &str) -> Result<(u64, u64), Fail> {
        let (h, p) = self.tail_window(txn)?;
        if h < p {
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, txn, h, p)?;
            let found = if tail.covers(h, p) {
                tail.latest(stream, h, p).map_err(unreadable)?
            } else {
                // A transaction older than the index (two checkpoints ago): read its tail.
                drop(tail);
                self.scan_tail(txn, stream, h, p)?
            };
            if let Some(head) = found {
                return Ok(head);
            }
        }
        self.stored_head(txn, stream)
    }

    /// The heads checkpoint and the last position, as `txn` sees them: the tail is `(h, p]`.
    fn tail_window(&self, txn: &RoTxn<'_>) -> Result<(u64, u64), Fail> {
        let p = self.log.last(txn)?.map_or(0, |(p, _)| p);
        Ok((self.heads_at(txn, p)?, p))
    }

    /// The heads checkpoint as `txn` sees it, for a log whose last position is `p`.
    fn heads_at(&self, txn: &RoTxn<'_>, p: u64) -> Result<u64, Fail> {
        let h = match self.meta.get(txn, HEADS_AT_KEY)? {
            None => 0,
            Some(value) => record::read_position(value).ok_or_else(|| Fail::Corrupt {
                what: "the heads checkpoint".to_owned(),
                reason: format!("{} bytes instead of 8", value.len()),
            })?,
        };
        // Never past the log, even if records were removed behind LMDB's back.
        Ok(h.min(p))
    }

    fn lock_tail(&self) -> MutexGuard<'_, Tail> {
        // The index is consistent between any two of its calls, so a poisoned lock is too.
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the tail index up to what `txn` sees: checkpoint `h`, log up to `p`.
    fn index_tail(&self, tail: &mut Tail, txn: &RoTxn<'_>, h: u64, p: u64) -> Result<(), Fail> {
        tail.observe(h);
        if tail.upto() >= p {
            return Ok(());
        }
        for item in self.log.range(txn, &(tail.upto() + 1..=p))? {
            let (position, value) = item?;
            while tail.upto() + 1 < position {
                let missing = tail.upto() + 1;
                tail.add_unreadable(missing, "the log has no record there".to_owned());
            }
            match record::decode_event(position, value) {
                Ok(e) => tail.add(position, e.stream, e.version),
                Err(reason) => tail.add_unreadable(position, reason),
            }
        }
        Ok(())
    }

    /// The latest record of `stream` in `(h, p]`, read from the log, newest first.
    fn scan_tail(
        &self,
        txn: &RoTxn<'_>,
        stream: &str,
        h: u64,
        p: u64,
    ) -> Result<Option<(u64, u64)>, Fail> {
        for item in self.log.rev_range(txn, &(h + 1..=p))? {
            let (position, value) = item?;
            let e = record::decode_event(position, value)
                .map_err(|reason| unreadable(Unreadable(position, reason)))?;
            if e.stream == stream {
                return Ok(Some((e.version, position)));
            }
        }
        Ok(None)
    }

    /// The head of `stream` in the `heads` database (as of the heads checkpoint).
    fn stored_head(&self, txn: &RoTxn<'_>, stream: &str) -> Result<(u64, u64), Fail> {
        match self.heads.get(txn, stream.as_bytes())? {
            None => Ok((0, 0)),
            Some(value) => record::read_head(value).ok_or_else(|| Fail::Corrupt {
                what: format!("the head of stream {stream:?}"),
                reason: format!("{} bytes instead of 16", value.len()),
            }),
        }
    }

    /// Writes the head of every stream of the tail `(h, p]` (as `tail` has them, overridden
    /// by `newer`) and moves the checkpoint to `to`.
    fn write_heads(
        &self,
        txn: &mut RwTxn<'_>,
        tail: &Tail,
        (h, p): (u64, u64),
        newer: &HashMap<&str, (u64, u64)>,
        to: u64,
    ) -> Result<(), Fail> {
        let older = tail
            .heads(h, p)
            .map_err(unreadable)?
            .filter(|(stream, ..)| !newer.contains_key(stream));
        let newest = newer.iter().map(|(&s, &(v, pos))| (s, v, pos));
        for (stream, version, position) in older.chain(newest) {
            self.heads.put(
                txn,
                stream.as_bytes(),
                &record::head_value(version, position),
            )?;
        }
        self.meta.put(txn, HEADS_AT_KEY, &to.to_be_bytes())?;
        Ok(())
    }

    /// Writes the heads of the whole tail (so that the next open reads no tail).
    fn checkpoint_heads(&self) -> Result<(), WriteError> {
        let to = self.write(&|| "a checkpoint of the stream heads".to_owned(), |txn| {
            let (h, p) = self.tail_window(txn)?;
            if h == p {
                return Ok(None);
            }
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, txn, h, p)?;
            if !tail.covers(h, p) {
                return Ok(None);
            }
            self.write_heads(txn, &tail, (h, p), &HashMap::new(), p)?;
            Ok(Some(p))
        })?;
        if let Some(to) = to {
            self.lock_tail().observe(to);
        }
        Ok(())
    }

    /// Writes a snapshot record and drops all but the newest `keep` of the stream's.
    fn put_snapshot(
        &self,
        txn: &mut RwTxn<'_>,
        stream: &str,
        version: u64,
        value: &[u8],
        keep: usize,
    ) -> Result<(), Fail> {
        let db = self.snapshots;
        let mut key = Vec::new();
        record::stream_key(&mut key, stream, version);
        db.put(txn, &key, value)?;
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        record::stream_key(&mut lo, stream, 0);
        record::stream_key(&mut hi, stream, u64::MAX);
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut old = Vec::new();
        for (i, entry) in db.rev_range(txn, &range)?.enumerate() {
            let (k, _) = entry?;
            if i >= keep {
                old.push(k.to_vec());
            }
        }
        for k in old {
            db.delete(txn, &k)?;
        }
        Ok(())
    }

    /// Commits a group of appends, growing the map as needed. One outcome per request.
    fn commit_group(&self, group: &[Request]) -> Vec<Result<AppendResult, AppendError>> {
        let mut may_checkpoint = true;
        loop {
            let seen = self.env.info().map_size;
            let failed = match self.try_commit(group, may_checkpoint) {
                Ok(outcomes) => return outcomes,
                Err(Fail::MapFull) => match self.grow(seen) {
                    Ok(()) => continue,
                    // Writing the heads as well does not fit: the append alone may.
                    Err(GrowError::AtLimit) if may_checkpoint => {
                        may_checkpoint = false;
                        continue;
                    }
                    // The group does not fit; some of its appends alone may.
                    Err(GrowError::AtLimit) if group.len() > 1 => {
                        return group
                            .iter()
                            .flat_map(|r| self.commit_group(std::slice::from_ref(r)))
                            .collect();
                    }
                    Err(GrowError::AtLimit) => {
                        return vec![Err(AppendError::StoreFull {
                            stream: group[0].stream.to_string(),
                            limit: self.max_map_size as u64,
                        })];
                    }
                    Err(GrowError::Failed(f)) => f,
                },
                Err(Fail::MapResized) => match self.adopt_map_size() {
                    Ok(()) => continue,
                    Err(f) => f,
                },
                Err(other) => other.check_disk_full(&self.path),
            };
            tracing::error!(path = %self.path.display(), error = %failed.to_box(), "commit failed");
            return group
                .iter()
                .map(|r| {
                    Err(AppendError::Storage {
                        stream: r.stream.to_string(),
                        source: failed.to_box(),
                    })
                })
                .collect();
        }
    }

    /// One attempt at committing a group in one write transaction.
    /// `may_checkpoint`: whether this commit may also write the stream heads, when due.
    fn try_commit(
        &self,
        group: &[Request],
        may_checkpoint: bool,
    ) -> Result<Vec<Result<AppendResult, AppendError>>, Fail> {
        let _pass = self.gate.enter();
        let mut txn = self.env.write_txn()?;
        self.keep_headroom(group);
        // Positions and timestamps continue from the committed log, which another process may
        // have extended since our last commit.
        let (mut last_position, last_timestamp) = match self.log.last(&txn)? {
            Some((p, value)) => {
                let t = record::event_timestamp(value).ok_or_else(|| Fail::Corrupt {
                    what: format!("the log record at position {p}"),
                    reason: "the record is too short for its header".to_owned(),
                })?;
                (p, t)
            }
            None => (0, Timestamp(0)),
        };
        let timestamp = self.clock.now().max(last_timestamp);
        // The log's last record was read above: only the checkpoint is left to read.
        let start = last_position;
        let h = self.heads_at(&txn, start)?;
        let window = (h, start);
        {
            let mut tail = self.lock_tail();
            self.index_tail(&mut tail, &txn, h, start)?;
            if !tail.covers(h, start) {
                // Only if the checkpoint went backwards (edited from outside): index afresh.
                *tail = Tail::new(h);
                self.index_tail(&mut tail, &txn, h, start)?;
            }
        }
        // While this transaction holds LMDB's write lock, no checkpoint moves and no record is
        // added, so the index's entries in `(h, start]` stay put: it is locked per lookup only,
        // and readers wait for a lookup at most, never for the whole write.
        let mut newer: HashMap<&str, (u64, u64)> = HashMap::new();
        let mut key = Vec::new();
        let mut buf = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let mut wrote = false;
        let mut appended = false;
        for request in group {
            let stream = request.stream.as_str();
            if let Some((version, value, keep)) = &request.snapshot {
                self.put_snapshot(&mut txn, stream, *version, value, *keep)?;
                wrote = true;
                outcomes.push(Ok(AppendResult::new(0, 0, 0, timestamp)));
                continue;
            }
            let found = match newer.get(stream) {
                Some(&head) => Ok(Some(head)),
                None if h == start => Ok(None),
                None => self.lock_tail().latest(stream, h, start),
            };
            let (current, mut previous) = match found {
                Ok(Some(head)) => head,
                Ok(None) => self.stored_head(&txn, stream)?,
                // This stream's version is unknown; the rest of the group carries on.
                Err(e) => {
                    outcomes.push(Err(AppendError::Storage {
                        stream: stream.to_owned(),
                        source: unreadable(e).to_box(),
                    }));
                    continue;
                }
            };
            if !request.expected.matches(current) {
                outcomes.push(Err(AppendError::WrongExpectedVersion {
                    stream: stream.to_owned(),
                    expected: request.expected,
                    actual: current,
                }));
                continue;
            }
            let first_position = last_position + 1;
            for (i, (event, metadata)) in request.events.iter().zip(&request.metadata).enumerate() {
                let version = current + 1 + i as u64;
                let position = last_position + 1;
                record::encode_event(
                    &mut buf,
                    position,
                    &record::EventParts {
                        stream,
                        version,
                        previous,
                        timestamp,
                        event_id: event.event_id,
                        event_type: &event.event_type,
                        metadata,
                        payload: &event.payload,
                    },
                )
                .map_err(|reason| Fail::Other(heed::Error::Io(io::Error::other(reason))))?;
                self.log
                    .put_with_flags(&mut txn, PutFlags::APPEND, &position, &buf)?;
                if version.is_multiple_of(BLOCK) {
                    record::stream_key(&mut key, stream, version);
                    self.index
                        .put(&mut txn, &key, &record::position_value(position))?;
                }
                previous = position;
                last_position = position;
            }
            if !request.events.is_empty() {
                let version = current + request.events.len() as u64;
                newer.insert(stream, (version, previous));
                wrote = true;
                appended = true;
            }
            outcomes.push(Ok(AppendResult::new(
                current + 1,
                first_position,
                request.events.len() as u64,
                timestamp,
            )));
        }
        // Bring the stored heads up to date every `heads_every` positions. A damaged record in
        // the tail keeps them where they are (the heads after it cannot be known); appends to
        // the streams whose heads are known go on, with a longer tail.
        let checkpoint = may_checkpoint && appended && last_position - h >= self.heads_every;
        let checkpoint = checkpoint
            && {
                let tail = self.lock_tail();
                match tail.readable(h, start) {
                    Ok(()) => {
                        self.write_heads(&mut txn, &tail, window, &newer, last_position)?;
                        true
                    }
                    Err(Unreadable(position, reason)) => {
                        tracing::warn!(path = %self.path.display(), position, %reason, "a damaged record in the log's tail keeps the stream heads from being stored");
                        false
                    }
                }
            };
        if !wrote {
            return Ok(outcomes);
        }
        txn.commit()?;
        {
            let mut tail = self.lock_tail();
            for (request, outcome) in group.iter().zip(&outcomes) {
                if let Ok(r) = outcome {
                    for i in 0..r.count {
                        tail.add(
                            r.first_position + i,
                            request.stream.as_str(),
                            r.first_version + i,
                        );
                    }
                }
            }
            if checkpoint {
                tail.observe(last_position);
            }
        }
        if checkpoint {
            self.appended.store(false, Ordering::Relaxed);
        } else if appended {
            self.appended.store(true, Ordering::Relaxed);
        }
        self.watch.publish(last_position);
        Ok(outcomes)
    }
}

/// Reads log records by position, walking backwards with one cursor while the positions are
/// consecutive (a stream written in batches) and seeking otherwise.
#[derive(Default)]
struct LogWalker<'t> {
    cursor: Option<(u64, heed::RoRevRange<'t, Position, Bytes>)>,
}

impl<'t> LogWalker<'t> {
    fn get(
        &mut self,
        inner: &Inner,
        txn: &'t RoTxn<'t, WithoutTls>,
        position: u64,
    ) -> heed::Result<Option<&'t [u8]>> {
        let cursor = match &mut self.cursor {
            Some((next, cursor)) if *next == position => cursor,
            _ => {
                &mut self
                    .cursor
                    .insert((position, inner.log.rev_range(txn, &(..=position))?))
                    .1
            }
        };
        match cursor.next().transpose()? {
            Some((found, value)) if found == position => {
                if let Some((next, _)) = &mut self.cursor {
                    *next = position.wrapping_sub(1);
                }
                Ok(Some(value))
            }
            _ => {
                self.cursor = None;
                Ok(None)
            }
        }
    }
}

/// Reads the log forwards, decoding each record, from a position up to another.
///
/// The records are read in chunks, each from its last record back to its first, and handed out
/// in order. LMDB fills a page from its end, so records of increasing positions lie at
/// decreasing addresses: a forward read walks memory downwards, which the CPU does not fetch
/// ahead, while a backward read walks it upwards. Reading a 100,000-event log this way, checking
/// each record's checksum, took a third of the time of a forward read (see BENCHMARKS.md).
pub(super) struct LogForward<'t> {
    txn: &'t RoTxn<'t, WithoutTls>,
    log: LogDb,
    /// The first position not read yet, `None` once there is nothing more to read.
    next: Option<u64>,
    upto: u64,
    size: u64,
    /// The records read and not yet handed out, last first.
    ahead: Vec<(u64, Result<EventRef<'t>, String>)>,
    /// An error met reading the chunk in `ahead`, handed out after the records before it.
    failed: Option<heed::Error>,
}

/// The most records a chunk of [`LogForward`] holds. The first chunk holds a sixteenth of it,
/// and each next one twice the one before, so a reader that stops early reads little ahead.
const LOG_CHUNK: u64 = 256;

impl<'t> LogForward<'t> {
    /// Reads positions `from..=upto` of `log` in `txn`, or up to the log's last record if it
    /// comes first.
    pub(super) fn new(
        log: LogDb,
        txn: &'t RoTxn<'t, WithoutTls>,
        from: u64,
        upto: u64,
    ) -> heed::Result<Self> {
        let last = log.last(txn)?.map_or(0, |(p, _)| p);
        Ok(LogForward {
            txn,
            log,
            next: Some(from.max(1)),
            upto: upto.min(last),
            size: LOG_CHUNK / 16,
            ahead: Vec::new(),
            failed: None,
        })
    }

    /// Reads the next chunk into `ahead`, or an error reading it into `failed`.
    fn read_chunk(&mut self, first: u64) {
        let last = first.saturating_add(self.size - 1).min(self.upto);
        self.next = last.checked_add(1);
        self.size = (self.size * 2).min(LOG_CHUNK);
        let range = first..=last;
        let failed = match self.log.rev_range(self.txn, &range) {
            Ok(records) => self.decode_all(records),
            Err(e) => Some(e),
        };
        if failed.is_some() {
            // Rare: read the chunk again forwards, so that the records before the failing one
            // are still handed out first.
            self.ahead.clear();
            self.failed = match self.log.range(self.txn, &range) {
                Ok(records) => self.decode_all(records),
                Err(e) => Some(e),
            };
            self.ahead.reverse();
        }
    }

    /// Decodes `records` onto `ahead` until one fails to read, and returns that failure.
    fn decode_all(
        &mut self,
        records: impl Iterator<Item = heed::Result<(u64, &'t [u8])>>,
    ) -> Option<heed::Error> {
        for item in records {
            match item {
                Ok((position, value)) => self
                    .ahead
                    .push((position, record::decode_event(position, value))),
                Err(e) => return Some(e),
            }
        }
        None
    }
}

impl<'t> Iterator for LogForward<'t> {
    /// A record's position and the record decoded, or why it does not decode.
    type Item = heed::Result<(u64, Result<EventRef<'t>, String>)>;

    fn next(&mut self) -> Option<Self::Item> {
        // Positions have no gaps, but a chunk may come back empty over a damaged log's hole:
        // read on to `upto`, which is at most the last record.
        while self.ahead.is_empty() && self.failed.is_none() {
            match self.next {
                Some(first) if first <= self.upto => self.read_chunk(first),
                _ => return None,
            }
        }
        match self.ahead.pop() {
            Some(record) => Some(Ok(record)),
            None => {
                // Nothing is read after an error.
                self.next = None;
                self.failed.take().map(Err)
            }
        }
    }
}

/// Checks what can be checked before queueing, so that a bad event fails only its own append.
fn prepare(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Request, AppendError> {
    let invalid = |reason: String| AppendError::Storage {
        stream: stream.to_string(),
        source: Box::new(io::Error::new(io::ErrorKind::InvalidInput, reason)),
    };
    let mut metadata = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        if e.event_type.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "event {} of the batch has a type name of {} bytes; the limit is {}",
                i + 1,
                e.event_type.len(),
                u16::MAX
            )));
        }
        let m = codec::encode_metadata(&e.metadata);
        if u32::try_from(m.len()).is_err() {
            return Err(invalid(format!(
                "event {} of the batch has more than 4 GiB of metadata",
                i + 1
            )));
        }
        metadata.push(m);
    }
    Ok(Request {
        stream: stream.clone(),
        expected,
        events,
        metadata,
        snapshot: None,
    })
}

fn corrupt(what: impl FnOnce() -> String, reason: impl Into<String>) -> ReadError {
    let (what, reason) = (what(), reason.into());
    tracing::warn!(%what, %reason, "corrupt record in the LMDB store");
    ReadError::Corrupt { what, reason }
}

/// A tail record that could not be read: the versions of the streams it may belong to are
/// unknown.
fn unreadable(Unreadable(position, reason): Unreadable) -> Fail {
    Fail::Corrupt {
        what: format!("the log record at position {position}"),
        reason: format!(
            "{reason}; it was written after the stream heads were last stored, so the version \
             of any stream that may have an event there is unknown"
        ),
    }
}

fn read_failed(e: heed::Error) -> ReadError {
    Fail::from(e).into_read_error()
}

fn checkpoint_key(name: &str) -> Result<&[u8], String> {
    if name.is_empty() || name.len() > 500 {
        return Err(format!(
            "a checkpoint name has 1 to 500 bytes; this one has {}",
            name.len()
        ));
    }
    Ok(name.as_bytes())
}

impl EventStore for LmdbStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let request = prepare(stream, expected, events)?;
        self.submit(request)
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        let r = self.inner.reader()?;
        self.inner
            .head_in(&r.txn, stream.as_str())
            .map(|(version, _)| version)
            .map_err(Fail::into_read_error)
    }

    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let inner = &self.inner;
        let r = inner.reader()?;
        let name = stream.as_str();
        let (head_version, head_position) =
            inner.head_in(&r.txn, name).map_err(Fail::into_read_error)?;
        let mut lo = from.max(1);
        if lo > head_version {
            return Ok(());
        }
        let mut key = Vec::new();
        let mut log = LogWalker::default();
        let mut chunk = Vec::with_capacity(CHUNK as usize);
        // Chunk by chunk in version order: find the chunk's last event (in the index, or the
        // head for the last chunk), walk the back pointers down to the chunk's first wanted
        // version, then visit the chunk forwards. Walking back also reads memory upwards (LMDB
        // fills a page from its end), which the CPU prefetches well. The first chunk ends at
        // the first indexed version, so that a short read walks back at most one block; each
        // next one `CHUNK` further.
        let mut chunk_end = lo.div_ceil(BLOCK).saturating_mul(BLOCK);
        loop {
            let (end_version, end_position) = if chunk_end <= head_version {
                record::stream_key(&mut key, name, chunk_end);
                let value = inner.index.get(&r.txn, &key).map_err(read_failed)?;
                let position = value.and_then(record::read_position).ok_or_else(|| {
                    corrupt(
                        || format!("event {chunk_end} of stream {name:?}"),
                        "the stream index has no valid entry for it",
                    )
                })?;
                (chunk_end, position)
            } else {
                (head_version, head_position)
            };
            chunk.clear();
            let (mut version, mut position) = (end_version, end_position);
            loop {
                let what = || format!("event {version} of stream {name:?} (position {position})");
                let value = log
                    .get(inner, &r.txn, position)
                    .map_err(read_failed)?
                    .ok_or_else(|| corrupt(what, "the log has no such position"))?;
                let (event, previous) = record::decode_in_stream(position, value, name)
                    .map_err(|reason| corrupt(what, reason))?;
                // A record of this stream lends `name` itself: no second comparison.
                if !std::ptr::eq(event.stream, name) || event.version != version {
                    return Err(corrupt(
                        what,
                        format!(
                            "the log holds event {} of stream {:?} there",
                            event.version, event.stream
                        ),
                    ));
                }
                chunk.push(event);
                if version == lo {
                    break;
                }
                if previous == 0 || previous >= position {
                    return Err(corrupt(what, "its link to the previous event is broken"));
                }
                version -= 1;
                position = previous;
            }
            for event in chunk.drain(..).rev() {
                if visitor(event).is_break() {
                    return Ok(());
                }
            }
            if end_version >= head_version {
                return Ok(());
            }
            lo = end_version + 1;
            chunk_end = end_version.saturating_add(CHUNK);
        }
    }

    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        let r = self.inner.reader()?;
        let records =
            LogForward::new(self.inner.log, &r.txn, from, u64::MAX).map_err(read_failed)?;
        for item in records {
            let (position, event) = item.map_err(read_failed)?;
            let event =
                event.map_err(|reason| corrupt(|| format!("at position {position}"), reason))?;
            if visitor(event) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }

    fn head_watch(&self) -> Option<&HeadWatch> {
        Some(&self.inner.watch)
    }

    fn head_position(&self) -> Result<u64, ReadError> {
        let r = self.inner.reader()?;
        Ok(self
            .inner
            .log
            .last(&r.txn)
            .map_err(read_failed)?
            .map_or(0, |(p, _)| p))
    }

    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        let what = || {
            format!(
                "snapshot {} of stream {:?}",
                snapshot.version,
                stream.as_str()
            )
        };
        let mut value = Vec::new();
        record::encode_snapshot(&mut value, snapshot.state_version, &snapshot.payload);
        let request = Request {
            stream: stream.clone(),
            expected: ExpectedVersion::Any,
            events: Vec::new(),
            metadata: Vec::new(),
            snapshot: Some((snapshot.version, value, keep.max(1))),
        };
        // Queued with the appends: when a commit is running, the snapshot shares the next
        // group's transaction and fsync instead of paying for its own.
        let outcome = self.submit(request);
        match outcome {
            Ok(_) => Ok(()),
            Err(AppendError::StoreFull { limit, .. }) => Err(WriteError::StoreFull {
                what: what(),
                limit,
            }),
            Err(AppendError::Storage { source, .. }) => Err(WriteError::Storage {
                what: what(),
                source,
            }),
            Err(other) => Err(WriteError::Storage {
                what: what(),
                source: Box::new(other),
            }),
        }
    }

    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        let r = self.inner.reader()?;
        let name = stream.as_str();
        let mut key = Vec::new();
        record::stream_key(&mut key, name, u64::MAX);
        let Some((k, v)) = self
            .inner
            .snapshots
            .get_lower_than_or_equal_to(&r.txn, &key)
            .map_err(read_failed)?
        else {
            return Ok(None);
        };
        let Some(version) = record::key_version(k, name) else {
            return Ok(None);
        };
        decode_snapshot(name, version, v).map(Some)
    }

    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        let r = self.inner.reader()?;
        let name = stream.as_str();
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        record::stream_key(&mut lo, name, 0);
        record::stream_key(&mut hi, name, u64::MAX);
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut out = Vec::new();
        for entry in self
            .inner
            .snapshots
            .range(&r.txn, &range)
            .map_err(read_failed)?
        {
            let (k, v) = entry.map_err(read_failed)?;
            let version = record::key_version(k, name).unwrap_or_default();
            out.push(decode_snapshot(name, version, v)?);
        }
        Ok(out)
    }

    fn load_snapshot_before(
        &self,
        stream: &StreamId,
        below: u64,
    ) -> Result<Option<Snapshot>, ReadError> {
        let r = self.inner.reader()?;
        let name = stream.as_str();
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        record::stream_key(&mut lo, name, 0);
        record::stream_key(&mut hi, name, below);
        let range = (Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
        for entry in self
            .inner
            .snapshots
            .rev_range(&r.txn, &range)
            .map_err(read_failed)?
        {
            let (k, v) = entry.map_err(read_failed)?;
            let Some(version) = record::key_version(k, name) else {
                continue;
            };
            match decode_snapshot(name, version, v) {
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(error) => {
                    tracing::warn!(%stream, version, %error, "skipping a damaged snapshot");
                }
            }
        }
        Ok(None)
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        let what = || format!("the checkpoint of projection {name:?}");
        let key = checkpoint_key(name).map_err(|reason| WriteError::Storage {
            what: what(),
            source: Box::new(io::Error::new(io::ErrorKind::InvalidInput, reason)),
        })?;
        self.inner.write(&what, |txn| {
            self.inner
                .checkpoints
                .put(txn, key, &position.to_be_bytes())?;
            Ok(())
        })
    }

    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        let key = checkpoint_key(name).map_err(|reason| {
            ReadError::Storage(Box::new(io::Error::new(
                io::ErrorKind::InvalidInput,
                reason,
            )))
        })?;
        let r = self.inner.reader()?;
        match self
            .inner
            .checkpoints
            .get(&r.txn, key)
            .map_err(read_failed)?
        {
            None => Ok(None),
            Some(v) => record::read_position(v).map(Some).ok_or_else(|| {
                corrupt(
                    || format!("checkpoint of projection {name:?}"),
                    format!("{} bytes instead of 8", v.len()),
                )
            }),
        }
    }
}

fn decode_snapshot(stream: &str, version: u64, value: &[u8]) -> Result<Snapshot, ReadError> {
    let (state_version, payload) = record::decode_snapshot(value).map_err(|reason| {
        corrupt(
            || format!("snapshot {version} of stream {stream:?}"),
            reason,
        )
    })?;
    Ok(Snapshot {
        version,
        state_version,
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn appends_in_one_group_see_each_other_in_order_and_fail_alone() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let b = StreamId::new("acc", 2).unwrap();
        let request = |stream: &StreamId, expected, n: usize| {
            let events = (0..n).map(|_| NewEvent::raw("E", vec![0xc0])).collect();
            prepare(stream, expected, events).unwrap()
        };
        let group = [
            request(&a, ExpectedVersion::NoStream, 2),
            request(&a, ExpectedVersion::Exact(2), 1),
            request(&b, ExpectedVersion::Exists, 1),
            request(&a, ExpectedVersion::Exact(2), 1),
            request(&a, ExpectedVersion::Exact(3), 0),
            request(&b, ExpectedVersion::NoStream, 3),
            request(&a, ExpectedVersion::Any, 1),
        ];
        let outcomes = store.inner.commit_group(&group);
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                Ok(r) => Ok((r.first_version, r.first_position, r.count)),
                Err(AppendError::WrongExpectedVersion { actual, .. }) => Err(*actual),
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                Ok((1, 1, 2)),
                Ok((3, 3, 1)),
                Err(0),
                Err(3),
                Ok((4, 4, 0)),
                Ok((1, 4, 3)),
                Ok((4, 7, 1)),
            ]
        );
        let timestamps: Vec<_> = outcomes.iter().flatten().map(|r| r.timestamp).collect();
        assert!(timestamps.windows(2).all(|w| w[0] == w[1]), "one commit");
        assert_eq!(store.stream_version(&a).unwrap(), 4);
        assert_eq!(store.stream_version(&b).unwrap(), 3);
        assert_eq!(store.head_position().unwrap(), 7);
    }

    #[test]
    fn a_snapshot_rides_in_a_group_of_appends() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let events = vec![NewEvent::raw("E", vec![0xc0]); 3];
        let append = prepare(&a, ExpectedVersion::NoStream, events).unwrap();
        let snapshot = |version: u64, payload: u8| {
            let mut value = Vec::new();
            record::encode_snapshot(&mut value, 1, &[payload]);
            Request {
                stream: a.clone(),
                expected: ExpectedVersion::Any,
                events: Vec::new(),
                metadata: Vec::new(),
                snapshot: Some((version, value, 2)),
            }
        };
        let wrong = prepare(
            &a,
            ExpectedVersion::NoStream,
            vec![NewEvent::raw("E", vec![0xc0])],
        )
        .unwrap();
        let group = [
            snapshot(1, 1),
            append,
            snapshot(2, 2),
            wrong,
            snapshot(3, 3),
        ];
        let outcomes = store.inner.commit_group(&group);
        assert!(outcomes[0].is_ok() && outcomes[1].is_ok() && outcomes[2].is_ok());
        assert!(matches!(
            outcomes[3],
            Err(AppendError::WrongExpectedVersion { actual: 3, .. })
        ));
        assert!(outcomes[4].is_ok());
        // Keep-last-2 applied inside the group; the appends are all there.
        let kept: Vec<u64> = store
            .snapshots(&a)
            .unwrap()
            .iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(kept, [2, 3]);
        assert_eq!(store.load_snapshot(&a).unwrap().unwrap().payload, [3]);
        assert_eq!(store.stream_version(&a).unwrap(), 3);
    }

    #[test]
    fn a_reader_older_than_the_tail_index_scans_the_log_for_its_heads() {
        let store = LmdbStore::temporary(LmdbOptions::new().heads_every(2)).unwrap();
        let a = StreamId::new("acc", 1).unwrap();
        let b = StreamId::new("acc", 2).unwrap();
        let append = |stream: &StreamId| {
            store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("E", vec![0xc0])],
                )
                .unwrap()
        };
        append(&a); // 1, then b at 2 takes the heads checkpoint to 2
        append(&b);
        append(&a); // 3: a's version 2, in the tail (2, 3]
        let txn = store.inner.env.read_txn().unwrap();
        let window = store.inner.tail_window(&txn).ok().unwrap();
        assert_eq!(window, (2, 3));
        assert_eq!(store.inner.head_in(&txn, a.as_str()).ok(), Some((2, 3)));
        // Two more checkpoints (at 4 and 6) while the reader stays open, written from another
        // thread as another caller would: the index forgets everything up to 4.
        std::thread::scope(|s| {
            s.spawn(|| {
                append(&a);
                append(&b);
                append(&a);
            });
        });
        assert_eq!(store.stream_version(&a).unwrap(), 4);
        assert!(!store.inner.lock_tail().covers(window.0, window.1));
        // The old reader still sees a at version 2 and b at version 1, read from its log.
        assert_eq!(store.inner.head_in(&txn, a.as_str()).ok(), Some((2, 3)));
        assert_eq!(store.inner.head_in(&txn, b.as_str()).ok(), Some((1, 2)));
        let unknown = StreamId::new("acc", 3).unwrap();
        assert_eq!(
            store.inner.head_in(&txn, unknown.as_str()).ok(),
            Some((0, 0))
        );
    }

    #[test]
    fn the_store_is_send_sync_and_static() {
        assert_send_sync_static::<LmdbStore>();
        assert_send_sync_static::<Arc<dyn EventStore>>();
    }
}
