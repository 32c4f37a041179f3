//! A lock file deleted or replaced while a process has the store open: the next process to
//! open the store is refused with one typed error instead of becoming a second writer.
//!
//! The writer is this test binary run again with `ES_LOCKFILE_CHILD` set; the `child` test
//! dispatches on it and is a no-op otherwise.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use es_runtime::{EventStore, ExpectedVersion, LmdbOptions, NewEvent, OpenError, StreamId};

const ROLE: &str = "ES_LOCKFILE_CHILD";
const DIR: &str = "ES_LOCKFILE_DIR";

fn append(store: &impl EventStore, n: u64) {
    let stream = StreamId::new("writer", 1).unwrap();
    for _ in 0..n {
        store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::raw("Wrote", vec![0xc0])],
            )
            .unwrap();
    }
}

/// Opens the store, appends 100 events, says so, waits for a line, appends 100 more; or,
/// with the role `open`, opens it read-only and says how that went.
#[test]
fn child() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let dir = std::env::var(DIR).expect("the store directory");
    if std::env::var(ROLE).as_deref() == Ok("open") {
        match LmdbOptions::new().read_only(true).open(Path::new(&dir)) {
            Ok(store) => println!("opened at {}", store.head_position().unwrap()),
            Err(e) => println!("failed: {e}"),
        }
        std::process::exit(0);
    }
    let store = LmdbOptions::new().open(Path::new(&dir)).unwrap();
    append(&store, 100);
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    append(&store, 100);
    println!("done {}", store.head_position().unwrap());
    std::process::exit(0);
}

fn child_process(role: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "lmdb::lockfile::child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .env(DIR, dir);
    c
}

/// A process that opens the store while another has it open keeps LMDB's lock for as long
/// as it has the store open (testing the other's lock must not close a descriptor of the
/// lock file, which would drop this process's `fcntl` locks), so that once the other is gone
/// the next process to open the store finds it in use through its own lock file.
#[test]
fn a_store_opened_beside_another_process_keeps_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = child_process("1", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("ready"))
    );
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    writeln!(writer.stdin.take().unwrap()).unwrap();
    assert!(lines.map_while(Result::ok).any(|l| l.contains("done 200")));
    assert!(writer.wait().unwrap().success());
    // Only this process has the store open now.
    let out = child_process("open", dir.path()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("opened at 200"), "{said}");
    assert_eq!(store.head_position().unwrap(), 200);
}

fn refused_while_a_writer_runs(replace: fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lmdb::lockfile::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .env(DIR, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("ready")),
        "the writer started"
    );
    replace(dir.path());
    for read_only in [false, true] {
        let err = LmdbOptions::new()
            .read_only(read_only)
            .open(dir.path())
            .expect_err("a second writer past the lock");
        assert!(
            matches!(err, OpenError::LockFileReplaced { .. }),
            "read_only {read_only}: {err:?}"
        );
        assert!(err.to_string().contains("deleted or replaced"), "{err}");
    }
    // The writer goes on, alone, and nothing it acknowledged is lost.
    writeln!(writer.stdin.take().unwrap()).unwrap();
    assert!(
        lines.map_while(Result::ok).any(|l| l.contains("done 200")),
        "the writer finished"
    );
    assert!(writer.wait().unwrap().success());
    let store = LmdbOptions::new().open(dir.path()).unwrap();
    assert_eq!(store.head_position().unwrap(), 200);
    assert_eq!(store.read_all(1, usize::MAX).unwrap().len(), 200);
}

#[test]
fn a_lock_file_deleted_under_a_writer_refuses_the_next_open() {
    refused_while_a_writer_runs(|dir| std::fs::remove_file(dir.join("lock.mdb")).unwrap());
}

#[test]
fn a_lock_file_replaced_under_a_writer_refuses_the_next_open() {
    refused_while_a_writer_runs(|dir| {
        let copy = dir.join("lock.mdb.copy");
        std::fs::copy(dir.join("lock.mdb"), &copy).unwrap();
        std::fs::rename(&copy, dir.join("lock.mdb")).unwrap();
    });
}
