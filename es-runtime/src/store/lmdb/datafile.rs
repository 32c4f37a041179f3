//! What the data file must be before LMDB maps it: checked with plain file I/O, so that a
//! damaged or cut file is an error at open instead of a fault on the first touch of a
//! missing page.
//!
//! LMDB keeps two meta pages at the start of `data.mdb` (pages 0 and 1); the newer one (by
//! transaction id) says which page is the last one in use. A file shorter than that page's
//! end was truncated: mapping it would turn every access past its end into `SIGBUS`. A meta
//! page that is not LMDB's was overwritten: LMDB would silently fall back to the other one,
//! an older commit. Beside the data, the store keeps an identity file, written when the
//! store is created, so that an empty or missing data file in a directory that held a store
//! is told from a new store.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The name of the data file LMDB keeps in a store's directory.
pub(super) const DATA_FILE: &str = "data.mdb";

/// The name of LMDB's lock file in a store's directory.
const LOCK_FILE: &str = "lock.mdb";

/// The name of the file that marks a directory as holding a store.
pub(super) const IDENTITY_FILE: &str = "es-store";

/// What the identity file says.
const IDENTITY: &[u8] = b"es event store (LMDB); the data is in data.mdb\n";

/// LMDB's magic number, first in a meta page's body.
const MAGIC: u32 = 0xBEEF_C0DE;

/// Where a meta page's body starts: after the page header (page number, padding, flags,
/// lower and upper bounds).
const META_AT: usize = 16;

/// The layout of LMDB's meta body on 64-bit targets: magic (4), data version (4), map
/// address (8), map size (8), two database records of 48 bytes (the first one's leading
/// `u32` is the page size), last page number (8), transaction id (8).
const PAGE_SIZE_AT: usize = META_AT + 24;
const LAST_PAGE_AT: usize = META_AT + 120;
const TXN_AT: usize = META_AT + 128;
const META_END: usize = TXN_AT + 8;

/// LMDB's page flag of a meta page.
const P_META: u16 = 0x08;

/// What is wrong with a store's data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DataFileProblem {
    /// The directory holds a store (its identity file), but no data file.
    Missing,
    /// The directory holds a store, but its data file is empty.
    Empty,
    /// A meta page is not LMDB's (overwritten, or not an LMDB file at all).
    BadMeta { page: u64, reason: String },
    /// The file is shorter than the pages LMDB's newer meta page says are in use.
    Truncated { length: u64, required: u64 },
}

impl fmt::Display for DataFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataFileProblem::Missing => write!(
                f,
                "{DATA_FILE} is missing from a directory that held a store (it has `{IDENTITY_FILE}`); \
                 restore it, or remove the directory to start a new store"
            ),
            DataFileProblem::Empty => write!(
                f,
                "{DATA_FILE} is empty in a directory that held a store (it has `{IDENTITY_FILE}`); \
                 restore it, or remove the directory to start a new store"
            ),
            DataFileProblem::BadMeta { page, reason } => {
                write!(f, "{DATA_FILE} is damaged: meta page {page} {reason}")
            }
            DataFileProblem::Truncated { length, required } => write!(
                f,
                "{DATA_FILE} is truncated: it has {length} bytes, and LMDB's meta page says its \
                 pages take {required} bytes"
            ),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataFile {
    /// No data file, and no store was ever here: LMDB creates one.
    New,
    /// A data file that LMDB may map.
    Sound {
        /// Whether the identity file is missing (a store created by an older build).
        unmarked: bool,
    },
}

/// Checks the data file in `dir` before LMDB opens it.
pub(super) fn check(dir: &Path) -> Result<DataFile, Checked> {
    let marked = dir.join(IDENTITY_FILE).exists();
    let mut file = match File::open(dir.join(DATA_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return if marked {
                Err(Checked::Problem(DataFileProblem::Missing))
            } else {
                Ok(DataFile::New)
            };
        }
        Err(e) => return Err(Checked::Io(e)),
    };
    let length = file.metadata().map_err(Checked::Io)?.len();
    if length == 0 {
        return if marked {
            Err(Checked::Problem(DataFileProblem::Empty))
        } else {
            // A file LMDB itself left empty (a crash inside its very first open): it starts
            // over, which loses nothing.
            Ok(DataFile::New)
        };
    }
    let mut first = vec![0; META_END];
    read_up_to(&mut file, &mut first).map_err(Checked::Io)?;
    if length < META_END as u64 {
        return Err(Checked::Problem(DataFileProblem::Truncated {
            length,
            required: 2 * 4096,
        }));
    }
    let page_size = meta(&first, 0)?.page_size;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(Checked::Problem(DataFileProblem::BadMeta {
            page: 0,
            reason: format!("gives a page size of {page_size} bytes"),
        }));
    }
    let meta0 = meta(&first, 0)?;
    let at_least = meta0
        .last_page
        .saturating_add(1)
        .saturating_mul(page_size)
        .max(2 * page_size);
    if length < 2 * page_size {
        return Err(Checked::Problem(DataFileProblem::Truncated {
            length,
            required: at_least,
        }));
    }
    let mut second = vec![0; META_END];
    file.seek(SeekFrom::Start(page_size)).map_err(Checked::Io)?;
    read_up_to(&mut file, &mut second).map_err(Checked::Io)?;
    let metas = [meta0, meta(&second, 1)?];
    let newer = metas
        .iter()
        .max_by_key(|m| m.txn)
        .copied()
        .unwrap_or(metas[0]);
    let required = newer
        .last_page
        .checked_add(1)
        .and_then(|n| n.checked_mul(page_size))
        .ok_or_else(|| {
            Checked::Problem(DataFileProblem::BadMeta {
                page: u64::from(newer.txn != metas[0].txn),
                reason: format!("gives a last page of {}", newer.last_page),
            })
        })?;
    if length < required {
        return Err(Checked::Problem(DataFileProblem::Truncated {
            length,
            required,
        }));
    }
    Ok(DataFile::Sound { unmarked: !marked })
}

/// Leaves the identity file in `dir`.
pub(super) fn mark(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join(IDENTITY_FILE), IDENTITY)
}

/// Whether a process holds LMDB's lock on the lock file of the store in `dir`: every process
/// with the environment open keeps a shared lock on its first byte. A missing lock file is
/// used by none.
#[cfg(unix)]
pub(super) fn lock_in_use(dir: &Path) -> io::Result<bool> {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(file) => lock_file_in_use(&file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`lock_in_use`] through a descriptor of the lock file that this process keeps open.
///
/// Closing any descriptor of a file drops every `fcntl` lock the process holds on it, and
/// LMDB's locks on `lock.mdb` are `fcntl` locks (the one that says the process uses the
/// store, and those that say its reader slots are live). A process with the store open
/// must therefore never close a descriptor of `lock.mdb` of its own while the environment
/// is open: [`join`] keeps the one it tests through in the [`Presence`].
#[cfg(unix)]
fn lock_file_in_use(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `flock` is a valid value of the plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 0;
    lock.l_len = 1;
    // SAFETY: `file` is open, and `lock` is a valid `flock` that F_GETLK fills in.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}

/// A shared `flock` on the data file, held while a store has it open through LMDB's lock.
/// LMDB locks only its lock file; this lock says that a process has the data file open, so
/// that a lock file deleted or replaced under it is seen by the next process that opens the
/// store: it finds the data file in use and the lock file that it opened used by no one.
#[derive(Debug)]
pub(super) struct Presence {
    _file: File,
    /// The lock file, when it was opened to test it: kept open with the environment, as
    /// closing it would drop LMDB's locks (see [`lock_file_in_use`]).
    _lock: Option<File>,
}

/// The lock file in `dir` is not the one the processes using the data file hold.
#[derive(Debug)]
pub(super) struct LockReplaced;

/// Joins the processes that have the store in `dir` open: checks that, if any has its data
/// file open, some process (not this one) holds the lock file that this process opened, and
/// takes a shared lock on the data file. Called with the environment open, so that this
/// process holds LMDB's lock before its presence shows, and drops it only after.
#[cfg(unix)]
pub(super) fn join(dir: &Path) -> io::Result<Result<Presence, LockReplaced>> {
    use std::os::fd::AsRawFd;
    let file = File::open(dir.join(DATA_FILE))?;
    let fd = file.as_raw_fd();
    // A child process between its fork and its exec shares the flock of a store its parent
    // has just closed, but not the parent's LMDB lock: a replaced lock file is seen for
    // longer than that before it is believed.
    let mut lock: Option<File> = None;
    let mut tries = 0;
    loop {
        // SAFETY: `fd` is open; flock only takes or tests an advisory lock on it.
        let others = if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            false
        } else {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e);
            }
            true
        };
        if !others {
            break;
        }
        if lock.is_none() {
            match File::open(dir.join(LOCK_FILE)) {
                Ok(file) => lock = Some(file),
                // A missing lock file is used by none.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(file) = &lock
            && lock_file_in_use(file)?
        {
            break;
        }
        tries += 1;
        if tries == 20 {
            return Ok(Err(LockReplaced));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: as above; converts this descriptor's lock (if any) to a shared one, waiting
    // for none: other holders have shared locks only.
    if unsafe { libc::flock(fd, libc::LOCK_SH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Ok(Presence {
        _file: file,
        _lock: lock,
    }))
}

/// Joins the processes that have the store open: nothing is checked on this platform.
#[cfg(not(unix))]
pub(super) fn join(dir: &Path) -> io::Result<Result<Presence, LockReplaced>> {
    Ok(Ok(Presence {
        _file: File::open(dir.join(DATA_FILE))?,
        _lock: None,
    }))
}

/// Whether a process holds LMDB's lock on the lock file: not known on this platform, so
/// assumed.
#[cfg(not(unix))]
pub(super) fn lock_in_use(_dir: &Path) -> io::Result<bool> {
    Ok(true)
}

/// Why [`check`] stopped.
#[derive(Debug)]
pub(super) enum Checked {
    Problem(DataFileProblem),
    Io(io::Error),
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u64,
    last_page: u64,
    txn: u64,
}

/// The meta body of page `page`, whose bytes start `bytes`.
fn meta(bytes: &[u8], page: u64) -> Result<Meta, Checked> {
    let bad = |reason: &str| {
        Checked::Problem(DataFileProblem::BadMeta {
            page,
            reason: reason.to_owned(),
        })
    };
    let Some(bytes) = bytes.get(..META_END) else {
        return Err(bad("is cut short"));
    };
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    if u32_at(META_AT) != MAGIC {
        return Err(bad(
            "has no LMDB magic number (not an LMDB file, or overwritten)",
        ));
    }
    if u16_at(10) & P_META == 0 || u64_at(0) != page {
        return Err(bad("has a page header that is not a meta page's"));
    }
    Ok(Meta {
        page_size: u64::from(u32_at(PAGE_SIZE_AT)),
        last_page: u64_at(LAST_PAGE_AT),
        txn: u64_at(TXN_AT),
    })
}

/// Fills `buf` from `file` as far as the file goes (the rest stays zero).
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match file.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
