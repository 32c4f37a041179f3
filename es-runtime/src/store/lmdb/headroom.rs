//! Zeroed space kept written ahead of LMDB's last page.
//!
//! LMDB writes a commit's new pages past the end of `data.mdb`, so nearly every commit of a
//! growing store makes the file longer. A longer file is a change of its inode, and
//! `fdatasync` then writes the inode as well: a second synchronous write, waiting on the disk,
//! in every durable commit. With zeros written ahead of the data, commits write inside the
//! file and, on file systems that overwrite in place (ext4, XFS), their `fdatasync` flushes
//! the data pages alone. The zeros are not synced on their own: the next durable commit
//! (normally the one that wrote them) flushes them with its pages.
//!
//! The zeros are written only past the file's end and only while this process holds LMDB's
//! writer lock (inside a write transaction, before its pages are written): no writer of any
//! process writes there meanwhile, and LMDB never reads a page past the last one it wrote
//! (`mdb_env_copy` copies up to that page too). Linux only: elsewhere LMDB's sync may flush
//! the file's metadata anyway (macOS's `F_FULLFSYNC`).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The least headroom kept: small stores (tests, examples) write little ahead.
const LEAST: u64 = 256 << 10;

/// The most headroom kept, however large the store. It bounds what one commit writes in
/// zeros (about half of it, or all of it the first time after opening a store that has none).
const MOST: u64 = 8 << 20;

/// A commit writing more than this many bytes grows the file itself: one more write of the
/// inode is little next to its pages, and zeros written ahead of them would be written twice.
const LARGE: u64 = 64 << 10;

/// How far ahead of `used` bytes (LMDB's pages, free ones included) the file is written when
/// it is extended: a quarter of them within `LEAST..=MOST`, so that a growing store extends
/// its file a few times per doubling. It is extended again once less than half of that is
/// left.
fn room(used: u64) -> u64 {
    (used / 4).clamp(LEAST, MOST)
}

#[derive(Debug)]
pub(super) struct Headroom {
    /// `data.mdb`, open for writing; `None` when there is nothing to gain (no fsync at commit)
    /// or writing ahead failed once.
    file: Mutex<Option<File>>,
    /// The file's length after the last extension, or as last seen: until the data comes
    /// within half a headroom of it, a commit needs no system call here.
    end: AtomicU64,
    /// Whether `file` is there, read without its lock: a store that does not write ahead
    /// pays nothing per commit.
    on: AtomicBool,
}

impl Headroom {
    /// Headroom for the environment in `dir`; a no-op unless `durable` (commits fsync).
    pub(super) fn new(dir: &Path, durable: bool) -> Headroom {
        let file = if durable && cfg!(target_os = "linux") {
            // Failing to open only costs the gain.
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("data.mdb"))
                .ok()
        } else {
            None
        };
        Headroom {
            on: AtomicBool::new(file.is_some()),
            file: Mutex::new(file),
            end: AtomicU64::new(0),
        }
    }

    /// Whether it writes ahead at all (durable, on Linux, and no write has failed).
    pub(super) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Makes sure the file extends well past `used` bytes of LMDB pages, without going past
    /// `limit` (the map size), for a commit about to add about `writing` bytes (0 when
    /// unknown). Call it with a write transaction open, before writing in it.
    pub(super) fn keep(&self, used: u64, limit: u64, writing: u64) {
        if writing > LARGE {
            return;
        }
        let wanted = used.saturating_add(room(used) / 2).min(limit);
        if self.end.load(Ordering::Relaxed) >= wanted {
            return;
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = file.as_mut() else {
            return;
        };
        let target = used.saturating_add(room(used)).min(limit);
        match extend(f, wanted, target) {
            Ok(end) => self.end.store(end, Ordering::Relaxed),
            Err(error) => {
                // Commits still work, they only write the inode again: say so once.
                tracing::warn!(%error, "could not write ahead in the data file; commits will grow it instead");
                *file = None;
                self.on.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// Writes zeros from the file's end up to `target` unless it already reaches `wanted`.
/// Returns the file's length. On failure the file is cut back to where it ended, so that the
/// space is there for the commit; the error says whether that failed too.
fn extend(f: &mut File, wanted: u64, target: u64) -> io::Result<u64> {
    let len = f.metadata()?.len();
    if len >= wanted {
        return Ok(len);
    }
    let written = (|| {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        f.seek(SeekFrom::Start(len))?;
        let mut at = len;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            f.write_all(&ZEROS[..n])?;
            at += n as u64;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(target),
        Err(e) => match f.set_len(len) {
            Ok(()) => Err(e),
            Err(cut) => Err(io::Error::new(
                e.kind(),
                format!("{e}; cutting the file back to {len} bytes failed too: {cut}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headroom_is_a_quarter_of_the_data_within_bounds() {
        assert_eq!(room(0), LEAST);
        assert_eq!(room(4 << 20), 1 << 20);
        assert_eq!(room(1 << 40), MOST);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn zeros_are_written_past_the_end_only_when_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.mdb");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let headroom = Headroom::new(dir.path(), true);
        // A large commit grows the file itself.
        headroom.keep(8192, 1 << 30, LARGE + 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        headroom.keep(8192, 1 << 30, LARGE);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, 8192 + LEAST);
        assert!(
            bytes[..8192].iter().all(|&b| b == 7),
            "the data is untouched"
        );
        assert!(bytes[8192..].iter().all(|&b| b == 0));
        // Within half a headroom of the end, nothing more is written.
        headroom.keep(8192 + LEAST / 2, 1 << 30, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192 + LEAST);
        // Nearer the end, the file is extended again, never past the limit.
        headroom.keep(8192 + LEAST, 8192 + LEAST + 4096, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192 + LEAST + 4096);
    }

    #[test]
    fn without_fsync_at_commit_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.mdb");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let headroom = Headroom::new(dir.path(), false);
        assert!(!headroom.is_on());
        headroom.keep(8192, 1 << 30, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_failed_write_turns_writing_ahead_off() {
        // Every write to /dev/full fails with "no space left on device".
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let headroom = Headroom {
            file: Mutex::new(Some(full)),
            end: AtomicU64::new(0),
            on: AtomicBool::new(true),
        };
        headroom.keep(8192, 1 << 30, 0);
        assert!(headroom.file.lock().unwrap().is_none(), "turned off");
        assert!(!headroom.is_on());
        assert_eq!(headroom.end.load(Ordering::Relaxed), 0);
        // Off, it does nothing (and does not fail again).
        headroom.keep(1 << 20, 1 << 30, 0);
        assert!(headroom.file.lock().unwrap().is_none());
    }
}
