//! Why a transaction did not go through, and how that reaches callers.

use std::io;
use std::path::Path;

use heed::MdbError;

use crate::error::{BoxError, Location, ReadError, WriteError};

/// Less free space than this on the store's file system makes an I/O error of a write a full
/// disk.
const LOW_SPACE: u64 = 16 << 20;

/// Why a transaction did not go through.
pub(super) enum Fail {
    /// LMDB ran out of map: grow it and retry.
    MapFull,
    /// Another process grew the map beyond ours: adopt its size and retry.
    MapResized,
    /// A stored record is not what this store writes.
    Corrupt {
        at: Location,
        reason: String,
    },
    /// The caller asked for what the store cannot take.
    Invalid {
        at: Location,
        reason: String,
    },
    /// The file system is out of space.
    DiskFull(String),
    /// The store was opened read-only.
    ReadOnly,
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
    pub(super) fn check_disk_full(self, path: &Path) -> Fail {
        match self {
            Fail::Other(heed::Error::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Fail::DiskFull(e.to_string())
            }
            Fail::Other(heed::Error::Io(e)) if e.raw_os_error() == Some(libc::EIO) => {
                match free_space(path) {
                    Some(free) if free < LOW_SPACE => Fail::DiskFull(format!(
                        "{e}, with {free} bytes left on the store's file system"
                    )),
                    _ => Fail::Other(heed::Error::Io(e)),
                }
            }
            other => other,
        }
    }

    /// A fresh error for one caller.
    pub(super) fn to_box(&self) -> BoxError {
        match self {
            Fail::DiskFull(detail) => Box::new(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("the disk is full ({detail}); nothing acknowledged was lost"),
            )),
            Fail::Other(heed::Error::Io(e)) => Box::new(io::Error::new(e.kind(), e.to_string())),
            Fail::Other(e) => Box::new(io::Error::other(e.to_string())),
            Fail::Corrupt { at, reason } => {
                Box::new(io::Error::other(format!("corrupt data in {at}: {reason}")))
            }
            Fail::Invalid { at, reason } => Box::new(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid input for {at}: {reason}"),
            )),
            Fail::ReadOnly => Box::new(io::Error::new(
                io::ErrorKind::ReadOnlyFilesystem,
                "the store is open read-only",
            )),
            Fail::MapFull => Box::new(io::Error::other("the map is full")),
            Fail::MapResized => Box::new(io::Error::other("the map was resized")),
        }
    }

    pub(super) fn into_read_error(self) -> ReadError {
        match self {
            Fail::Corrupt { at, reason } => ReadError::Corrupt { at, reason },
            Fail::Invalid { at, reason } => ReadError::InvalidInput { at, reason },
            Fail::Other(heed::Error::Mdb(MdbError::Corrupted)) => ReadError::Corrupt {
                at: Location::Store,
                reason: format!("the LMDB environment: {}", MdbError::Corrupted),
            },
            other => ReadError::Storage(other.to_box()),
        }
    }

    /// The error of a write to `at` that did not go through (`at` is what the write was
    /// about; an invalid input names its own place).
    pub(super) fn into_write_error(self, at: Location) -> WriteError {
        match self {
            Fail::Invalid { at, reason } => WriteError::InvalidInput { at, reason },
            Fail::ReadOnly => WriteError::ReadOnly { at },
            other => WriteError::Storage {
                at,
                source: other.to_box(),
            },
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

pub(super) fn read_failed(e: heed::Error) -> ReadError {
    Fail::from(e).into_read_error()
}

/// A [`ReadError::Corrupt`], logged.
pub(super) fn corrupt(at: impl FnOnce() -> Location, reason: impl Into<String>) -> ReadError {
    let (at, reason) = (at(), reason.into());
    tracing::warn!(%at, %reason, "corrupt record in the LMDB store");
    ReadError::Corrupt { at, reason }
}
