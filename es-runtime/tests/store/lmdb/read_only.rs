//! A store opened read-only: on a read-only mount (a tmpfs remounted read-only, when the
//! tests run as root and may mount), or in a directory the process may not write to (run as
//! an unprivileged user through `runuser`, otherwise).

use std::path::Path;
use std::process::Command;

use es_runtime::store::Snapshot;
use es_runtime::{
    AppendError, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, OpenError,
    StreamId, WriteError,
};

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
        // A child process forked by another test holds this process's open files until it
        // executes: the mount is busy meanwhile.
        let mut tries = 0;
        let out = loop {
            let out = Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(self.0.path())
                .output()
                .unwrap();
            tries += 1;
            if out.status.success() || tries == 50 {
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(
            out.status.success(),
            "remounting read-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Opens `dir` read-only, checks it reads `expected` events and refuses every write.
fn read_only_reads_and_refuses_writes(dir: &Path, expected: &[es_runtime::RecordedEvent]) {
    let store = LmdbOptions::new().read_only(true).open(dir).unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.read_all(0, usize::MAX).unwrap(), expected);
    let id = StreamId::new("account", 0).unwrap();
    assert_eq!(store.stream_version(&id).unwrap(), 1);
    let refused = store
        .append(
            &id,
            ExpectedVersion::Any,
            vec![NewEvent::raw("X", vec![0xc0])],
        )
        .unwrap_err();
    assert!(
        matches!(refused, AppendError::ReadOnly { .. }),
        "{refused:?}"
    );
    let refused = store.save_checkpoint("p", 1).unwrap_err();
    assert!(
        matches!(refused, WriteError::ReadOnly { .. }),
        "{refused:?}"
    );
    let snapshot = Snapshot {
        version: 1,
        state_version: 1,
        payload: vec![0xc0],
    };
    let refused = store.save_snapshot(&id, snapshot, 1).unwrap_err();
    assert!(
        matches!(refused, WriteError::ReadOnly { .. }),
        "{refused:?}"
    );
    store.sync().unwrap();
}

#[test]
fn a_read_only_open_refuses_writes_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_some(dir.path());
    read_only_reads_and_refuses_writes(dir.path(), &written);
    // Still readable and writable as before.
    assert_eq!(
        LmdbStore::open(dir.path())
            .unwrap()
            .read_all(0, usize::MAX)
            .unwrap(),
        written
    );

    let empty = dir.path().join("nothing");
    let refused = LmdbOptions::new().read_only(true).open(&empty).unwrap_err();
    assert!(matches!(refused, OpenError::ReadOnly { .. }), "{refused:?}");
    assert!(!empty.exists(), "a read-only open creates no directory");
}

const CHILD_DIR: &str = "ES_TEST_READ_ONLY_DIR";
const CHILD_EXPECT: &str = "ES_TEST_READ_ONLY_EXPECT";

/// The child's side: opens the store named by the environment read-only, as the user it runs as.
#[test]
fn child_read_only_open() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    match std::env::var(CHILD_EXPECT).unwrap().as_str() {
        "refused" => {
            let refused = LmdbOptions::new().read_only(true).open(dir).unwrap_err();
            assert!(matches!(refused, OpenError::ReadOnly { .. }), "{refused:?}");
            assert!(refused.to_string().contains("another process"), "{refused}");
        }
        _ => {
            let writable = LmdbStore::open(dir).unwrap_err();
            eprintln!("a writable open: {writable}");
            let store = LmdbOptions::new().read_only(true).open(dir).unwrap();
            assert_eq!(store.read_all(0, usize::MAX).unwrap().len(), 5);
            let id = StreamId::new("account", 0).unwrap();
            let refused = store
                .append(
                    &id,
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("X", vec![0xc0])],
                )
                .unwrap_err();
            assert!(
                matches!(refused, AppendError::ReadOnly { .. }),
                "{refused:?}"
            );
        }
    }
    println!("child-ok");
}

/// Runs [`child_read_only_open`] in a child process as user `nobody` (or as this user, when it
/// is not root), expecting `expect`.
fn run_child(dir: &Path, expect: &str) {
    let exe = std::env::current_exe().unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = command
        .args([
            "--exact",
            "lmdb::read_only::child_read_only_open",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_EXPECT, expect)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child-ok"),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_store_in_a_directory_this_user_may_not_write_opens_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    write_some(&dir);
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(parent.path(), 0o755);
    for file in std::fs::read_dir(&dir).unwrap() {
        mode(&file.unwrap().path(), 0o644);
    }
    mode(&dir, 0o555);
    {
        // While a process has it open, a reader that cannot take a reader slot is refused.
        let _live = LmdbStore::open(&dir).unwrap();
        run_child(&dir, "refused");
    }
    run_child(&dir, "read");
    mode(&dir, 0o755);
}

#[test]
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
    let refused = LmdbStore::open(&dir).unwrap_err();
    assert!(refused.to_string().contains("Read-only"), "{refused}");
    read_only_reads_and_refuses_writes(&dir, &written);
}

/// Damage to LMDB's main database that hides one of the store's databases (here `index`,
/// whose name in the main database's leaf node is changed) is damage in a store of the
/// current format: never advice to open it writable, which would create the database empty.
#[test]
fn a_database_hidden_by_a_damaged_main_database_is_damage_not_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let data = dir.path().join("data.mdb");
    let mut file = std::fs::read(&data).unwrap();
    // A node of a named database: flags F_SUBDATA (2), a key of 5 bytes, the name.
    let node = [&[2u8, 0, 5, 0][..], b"index"].concat();
    let mut found = 0;
    for at in 0..file.len() - node.len() {
        if file[at..at + node.len()] == node[..] {
            file[at + node.len() - 1] = b'y';
            found += 1;
        }
    }
    assert!(found >= 1, "the main database names `index`");
    std::fs::write(&data, &file).unwrap();
    match LmdbOptions::new().read_only(true).open(dir.path()) {
        Err(OpenError::Damaged { reason, .. }) => {
            assert!(reason.contains("`index` database is missing"), "{reason}");
            assert!(!reason.contains("writable"), "{reason}");
        }
        other => panic!("expected damage, got {other:?}"),
    }
}
