//! How a store is opened: [`LmdbOptions`], [`Durability`], and what opening assumes.

use std::path::Path;
use std::sync::Arc;

use super::LmdbStore;
use super::env::MIB;
use crate::error::OpenError;
use crate::event::{Clock, SystemClock};

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
    pub(super) durability: Durability,
    pub(super) map_size: usize,
    pub(super) max_map_size: usize,
    pub(super) max_readers: u32,
    pub(super) heads_every: u64,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) read_only: bool,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions::new()
    }
}

impl LmdbOptions {
    /// The defaults: [`Durability::Sync`], a 64 MiB map growing up to 1 TiB (64-bit targets;
    /// 1 GiB elsewhere), 512 concurrent readers (twice the host's default pool of threads
    /// for async commands), stream heads written every 4096 positions,
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
            max_readers: 512,
            heads_every: 4096,
            clock: Arc::new(SystemClock),
            read_only: false,
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
    /// more fail with [`AppendError::StoreFull`](crate::AppendError::StoreFull).
    pub fn max_map_size(mut self, bytes: usize) -> Self {
        self.max_map_size = bytes;
        self
    }

    /// How many read transactions may be open at once across every process using the
    /// directory (LMDB's reader table; default 512). It is set by the first process to open
    /// the directory while no other has it open. A read beyond it waits for a slot to free
    /// up, for up to 10 seconds, then fails with
    /// [`ReadError::ReadersFull`](crate::ReadError::ReadersFull).
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

    /// Whether to open the store read-only (default `false`): to inspect a store on a
    /// read-only mount, in a directory this process may not write to, or a backup.
    ///
    /// A read-only store is opened with LMDB's `MDB_RDONLY`: nothing is created (a directory
    /// without a store is [`OpenError::ReadOnly`]), no format upgrade runs, the identity file
    /// is not written and no zeros are written ahead. Appends fail with
    /// [`AppendError::ReadOnly`](crate::AppendError::ReadOnly), snapshots, checkpoints and
    /// table writes with [`WriteError::ReadOnly`](crate::WriteError::ReadOnly). A format-2
    /// store reads as it is; a store that needs more than a mark to be read by this build
    /// (format 1, or no `tables` database) is [`OpenError::ReadOnly`] naming the upgrade.
    ///
    /// LMDB still takes a slot in the lock file's reader table, so that a writer in another
    /// process never reuses the pages a read looks at; on a read-only file system it cannot,
    /// and uses no lock (LMDB's rule for read-only media). When the lock file cannot be written
    /// for lack of permission, the store opens without a lock only if no process has the store
    /// open (none holds LMDB's lock on `lock.mdb`), and is [`OpenError::ReadOnly`] otherwise:
    /// a reader the writer cannot see could have pages rewritten under it. Such an open
    /// assumes that no writer starts while it is open; it is meant for a copy or a backup.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// # What the store assumes
    ///
    /// Opening is safe to call, but it is not safe whatever happens to the files later: LMDB
    /// maps `data.mdb` into memory, and the store hands out views straight into that map
    /// (the `&str` and `&[u8]` fields of [`EventRef`](crate::EventRef)). It assumes, and
    /// cannot check, that
    ///
    /// - the files in the directory are changed only through LMDB (this store, or another
    ///   program using LMDB with its lock file) while the store is open. A program that
    ///   truncates `data.mdb` makes the next access to the missing pages kill the process
    ///   (`SIGBUS`); one that rewrites pages in place changes memory behind a live `&[u8]`,
    ///   which is undefined behaviour in Rust, whatever the bytes are. heed makes its own
    ///   open `unsafe` for this reason;
    /// - the directory is on a local file system (LMDB's lock does not work over NFS and
    ///   similar, and two hosts writing at once corrupt the store).
    ///
    /// What the store does to keep the rest safe: every record carries a checksum that is
    /// checked, with its lengths and UTF-8, before a view is handed out, so that damage
    /// written before the read is a [`ReadError::Corrupt`](crate::ReadError::Corrupt) and
    /// never a panic or a bad slice; the map is replaced only while no transaction of the
    /// store is open in this process; the zeros written past the end of the data (below)
    /// are written under LMDB's writer lock, where no reader looks; and a second open of the
    /// same directory in one process is refused with an error (heed's check), so that no
    /// two maps of one file exist in a process.
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
