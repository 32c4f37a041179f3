//! The LMDB environment of a store: its transactions, and the one loop that grows the map.
//!
//! Every transaction is opened inside the map gate (see `gate`), so that the map is only
//! resized while none is open in this process. A write that finds the map full grows it and
//! runs again; one that finds another process grew it adopts the new size and runs again.
//! Both happen in [`Environment::retry`], for appends and every other write alike.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use heed::{Env, EnvInfo, MdbError, RoTxn, RwTxn, WithoutTls};

use super::datafile::Presence;
use super::fail::Fail;
use super::gate::{MapGate, Pass, Refusal};
use super::headroom::Headroom;
use crate::error::{Location, ReadError, WriteError};

pub(super) const MIB: usize = 1 << 20;

/// How long a read waits for a slot of LMDB's reader table when all are taken.
pub(super) const READER_WAIT: Duration = Duration::from_secs(10);

pub(super) fn round_to_mib(bytes: usize) -> usize {
    // Past the last whole MiB, the last whole MiB: LMDB wants a multiple of the page size.
    bytes
        .div_ceil(MIB)
        .checked_mul(MIB)
        .unwrap_or(usize::MAX / MIB * MIB)
}

/// How many times one write adopts another process's map size before it gives up.
const MAX_RESIZES: u32 = 64;

/// The environment, with what keeps its map valid and growing.
pub(super) struct Environment {
    // Declared first: this process's presence ends before it lets go of LMDB's lock.
    presence: Option<Presence>,
    env: Env<WithoutTls>,
    gate: MapGate,
    max_map_size: usize,
    /// Zeros written ahead of the data, so that durable commits do not grow the file.
    headroom: Headroom,
    page_size: u64,
    path: PathBuf,
    /// Opened with `MDB_RDONLY`: every write transaction is refused before LMDB is asked.
    read_only: bool,
}

/// A read transaction with the pass that keeps the map from being resized under it.
pub(super) struct Reader<'a> {
    // Declared first: the transaction ends before the pass is returned.
    pub(super) txn: RoTxn<'a, WithoutTls>,
    _pass: Pass<'a>,
}

/// A write transaction with the pass that keeps the map from being resized under it.
pub(super) struct Writer<'a> {
    // Declared first: the transaction ends before the pass is returned.
    pub(super) txn: RwTxn<'a>,
    _pass: Pass<'a>,
}

impl Writer<'_> {
    pub(super) fn commit(self) -> Result<(), Fail> {
        Ok(self.txn.commit()?)
    }
}

/// Why [`Environment::retry`] gave up.
pub(super) enum Stopped {
    /// The map is as large as it may grow, and the write does not fit.
    Full,
    /// Anything else (a full disk told apart from other I/O errors).
    Failed(Fail),
}

/// Growing the map failed.
enum GrowError {
    AtLimit,
    Failed(Fail),
}

impl Environment {
    /// `env`, opened on directory `path`; `durable`: whether its commits fsync (and so gain
    /// from zeros written ahead).
    pub(super) fn new(
        env: Env<WithoutTls>,
        path: &Path,
        max_map_size: usize,
        durable: bool,
        read_only: bool,
    ) -> Environment {
        let page_size = u64::from(env.unnamed_database_stat().page_size);
        Environment {
            presence: None,
            env,
            gate: MapGate::default(),
            max_map_size,
            headroom: Headroom::new(path, durable && !read_only),
            page_size,
            path: path.to_owned(),
            read_only,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Holds `presence` for as long as the environment is open.
    pub(super) fn holding(mut self, presence: Option<Presence>) -> Self {
        self.presence = presence;
        self
    }

    pub(super) fn max_map_size(&self) -> usize {
        self.max_map_size
    }

    pub(super) fn info(&self) -> EnvInfo {
        self.env.info()
    }

    /// The statistics of LMDB's main database (the one naming the others).
    pub(super) fn main_stat(&self) -> heed::DatabaseStat {
        self.env.unnamed_database_stat()
    }

    pub(super) fn force_sync(&self) -> heed::Result<()> {
        self.env.force_sync()
    }

    /// A read transaction, adopting another process's map size first when needed.
    ///
    /// When every slot of LMDB's reader table is taken, the read waits for one (up to
    /// [`READER_WAIT`], backing off from 50 µs to 10 ms), then fails with
    /// [`ReadError::ReadersFull`].
    pub(super) fn reader(&self) -> Result<Reader<'_>, ReadError> {
        let mut waiting: Option<(Instant, Duration)> = None;
        loop {
            let pass = self.gate.enter();
            match self.env.read_txn() {
                Ok(txn) => return Ok(Reader { txn, _pass: pass }),
                Err(e) => match Fail::from(e) {
                    Fail::MapResized => {
                        drop(pass);
                        self.adopt_map_size().map_err(Fail::into_read_error)?;
                    }
                    Fail::Other(heed::Error::Mdb(MdbError::ReadersFull)) => {
                        // Not holding the pass while waiting: a resize may go on meanwhile.
                        drop(pass);
                        let (since, pause) =
                            waiting.get_or_insert((Instant::now(), Duration::from_micros(50)));
                        if since.elapsed() >= READER_WAIT {
                            return Err(ReadError::ReadersFull {
                                slots: self.env.info().maximum_number_of_readers,
                                waited: since.elapsed(),
                            });
                        }
                        std::thread::sleep(*pause);
                        *pause = (*pause * 2).min(Duration::from_millis(10));
                    }
                    other => return Err(other.into_read_error()),
                },
            }
        }
    }

    /// A write transaction, once per attempt of [`retry`](Self::retry). `writing`: about how
    /// many bytes it adds (asked only when the store writes ahead of its data).
    pub(super) fn writer(&self, writing: impl FnOnce() -> u64) -> Result<Writer<'_>, Fail> {
        if self.read_only {
            return Err(Fail::ReadOnly);
        }
        let pass = self.gate.enter();
        let txn = self.env.write_txn()?;
        self.keep_headroom(writing);
        Ok(Writer { txn, _pass: pass })
    }

    /// Runs `attempt` until it goes through: the map is grown when LMDB finds it full, and
    /// takes the size another process grew it to when LMDB says so, and `attempt` runs
    /// again. When the map may grow no more, `at_limit` either makes the next attempt
    /// smaller and answers `true` (run it), or answers `false` (give up with
    /// [`Stopped::Full`]).
    pub(super) fn retry<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, Fail>,
        mut at_limit: impl FnMut() -> bool,
    ) -> Result<T, Stopped> {
        // A map resized again and again is not another process growing the store (each
        // growth at least doubles it): it is a data file shared outside LMDB's lock. Bounded,
        // so that such a store fails instead of spinning.
        let mut resized = 0u32;
        loop {
            let seen = self.env.info().map_size;
            let failed = match attempt() {
                Ok(out) => return Ok(out),
                Err(Fail::MapFull) => match self.grow(seen) {
                    Ok(()) => continue,
                    Err(GrowError::AtLimit) if at_limit() => continue,
                    Err(GrowError::AtLimit) => return Err(Stopped::Full),
                    Err(GrowError::Failed(f)) => f,
                },
                Err(Fail::MapResized) if resized >= MAX_RESIZES => {
                    Fail::Other(heed::Error::Io(io::Error::other(format!(
                        "the map was resized under this write {resized} times: is the data file \
                         written by a process that does not share this store's lock file?"
                    ))))
                }
                Err(Fail::MapResized) => match self.adopt_map_size() {
                    Ok(()) => {
                        resized += 1;
                        continue;
                    }
                    Err(f) => f,
                },
                Err(other) => other.check_disk_full(&self.path),
            };
            return Err(Stopped::Failed(failed));
        }
    }

    /// Runs a write transaction that commits when `f` answers `true` and aborts otherwise,
    /// growing the map and running `f` again when it is full. `at` names the write in
    /// errors.
    pub(super) fn transact<T>(
        &self,
        at: &dyn Fn() -> Location,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<(T, bool), Fail>,
    ) -> Result<T, WriteError> {
        let attempt = || {
            let mut writer = self.writer(|| 0)?;
            let (out, commit) = f(&mut writer.txn)?;
            if commit {
                writer.commit()?;
            }
            Ok(out)
        };
        self.retry(attempt, || false)
            .map_err(|stopped| match stopped {
                Stopped::Full => WriteError::StoreFull {
                    at: at(),
                    limit: self.max_map_size as u64,
                },
                Stopped::Failed(failed) => failed.into_write_error(at()),
            })
    }

    /// Takes the map size another process grew the environment to.
    fn adopt_map_size(&self) -> Result<(), Fail> {
        if let Err(refusal) = self.gate.may_resize() {
            return Err(Fail::Other(heed::Error::Io(io::Error::other(
                match refusal {
                    Refusal::HoldsThis => {
                        "another process grew the store while this thread was reading it; retry"
                    }
                    Refusal::HoldsLater => {
                        "another process grew the store while this thread was reading a store \
                     opened after it; retry"
                    }
                },
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
        if let Err(refusal) = self.gate.may_resize() {
            return Err(GrowError::Failed(Fail::Other(heed::Error::Io(
                io::Error::other(match refusal {
                    Refusal::HoldsThis => {
                        "the store is full and cannot grow while this thread reads it"
                    }
                    Refusal::HoldsLater => {
                        "the store is full and cannot grow while this thread reads a store \
                         opened after it"
                    }
                }),
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

    /// Keeps zeros written ahead of the data file's last page (see `headroom`). Called with
    /// a write transaction open: LMDB's writer lock keeps every other writer (of any process)
    /// out of the file's end meanwhile.
    fn keep_headroom(&self, writing: impl FnOnce() -> u64) {
        if !self.headroom.is_on() {
            return;
        }
        let info = self.env.info();
        let used = (info.last_page_number as u64 + 1).saturating_mul(self.page_size);
        self.headroom.keep(used, info.map_size as u64, writing());
    }
}
