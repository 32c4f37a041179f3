//! A store opened read-only: on a read-only mount (a tmpfs remounted read-only, when the
//! tests run as root and may mount), or in a directory the process may not write to (run as
//! an unprivileged user through `runuser`, otherwise).

use std::path::Path;
use std::process::Command;

use es_runtime::{EventStore, ExpectedVersion, LmdbStore, NewEvent, StreamId};

fn write_some(dir: &Path) -> Vec<es_runtime::RecordedEvent> {
    let store = LmdbStore::open(dir).unwrap();
    for n in 0..5 {
        let id = StreamId::new("account", n).unwrap();
        store
            .append(
                &id,
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("Opened", vec![0xc0])],
            )
            .unwrap();
    }
    store.read_all(0, usize::MAX).unwrap()
}

/// A tmpfs mounted on a fresh directory, unmounted on drop; `None` when this process may not
/// mount.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs() -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        ok.then_some(Mount(dir))
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.0.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remounting read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
#[ignore = "there is no read-only open"]
fn a_store_on_a_read_only_mount_opens_read_only_and_refuses_writes() {
    let Some(mount) = Mount::tmpfs() else {
        eprintln!("skipped: this process may not mount a tmpfs");
        return;
    };
    let dir = mount.0.path().join("store");
    let written = write_some(&dir);
    mount.remount_read_only();
    assert!(
        std::fs::write(mount.0.path().join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    let store = LmdbStore::open(&dir).unwrap();
    assert_eq!(store.read_all(0, usize::MAX).unwrap(), written);
}
