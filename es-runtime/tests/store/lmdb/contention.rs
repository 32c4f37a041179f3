//! Several processes executing commands on a few shared accounts through hosts with the
//! default options: conflicts are retried inside the host, none reaches a caller.
//!
//! With the store's defaults (durable commits), 3,000 commands from 5 processes of 4 threads
//! over 10 accounts met 264 and 270 conflicts in two runs with 3 retries and no pause between
//! them. `ES_CONTENTION_COMMANDS` sets the commands per thread (150), `ES_CONTENTION_NOSYNC`
//! drops the fsyncs.
//!
//! The children are this test binary run again with `ES_CONTENTION_CHILD` set; the `child`
//! test dispatches on it and is a no-op otherwise.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use es_runtime::{Durability, EventStore, ExecuteError, Host, LmdbOptions};

use crate::common::{Account, AccountCommand};

const ROLE: &str = "ES_CONTENTION_CHILD";
const DIR: &str = "ES_CONTENTION_DIR";
const PROCESSES: u64 = 5;
const THREADS: u64 = 4;
/// Commands per thread; `ES_CONTENTION_COMMANDS` overrides it for a longer run.
fn commands() -> u64 {
    std::env::var("ES_CONTENTION_COMMANDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150)
}
const ACCOUNTS: u64 = 10;

/// The store's default options; `ES_CONTENTION_NOSYNC` set: without fsync.
fn options() -> LmdbOptions {
    if std::env::var_os("ES_CONTENTION_NOSYNC").is_some() {
        LmdbOptions::new().durability(Durability::NoSync)
    } else {
        LmdbOptions::new()
    }
}

#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = std::env::var(DIR).expect("the store directory");
    let process: u64 = role.parse().expect("the process number");
    let (conflicts, other) = hammer(Path::new(&dir), process);
    println!("counts: {conflicts} {other}");
    std::process::exit(0);
}

/// Runs `THREADS × COMMANDS` deposits over `ACCOUNTS` accounts; returns the conflicts and the
/// other errors seen.
fn hammer(dir: &Path, process: u64) -> (u64, u64) {
    let store = Arc::new(options().open(dir).unwrap());
    let host = Host::<Account, _>::new(Arc::clone(&store));
    let conflicts = AtomicU64::new(0);
    let other = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (host, conflicts, other) = (&host, &conflicts, &other);
            s.spawn(move || {
                let mut rng = crate::common::Rng(process * 1000 + t + 1);
                for _ in 0..commands() {
                    let account = rng.next() % ACCOUNTS;
                    match host.execute(account, AccountCommand::Deposit(1)) {
                        Ok(_) => {}
                        Err(ExecuteError::Conflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let _ = writeln!(std::io::stderr(), "process {process}: {e}");
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (conflicts.into_inner(), other.into_inner())
}

#[test]
fn five_processes_on_ten_accounts_see_no_conflict_with_the_default_retries() {
    let dir = tempfile::tempdir().unwrap();
    drop(options().open(dir.path()).unwrap());
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "lmdb::contention::child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ROLE, p.to_string())
                .env(DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawns a child process")
        })
        .collect();
    let (mut conflicts, mut other) = (0, 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a child failed: {:?}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .split("counts: ")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap_or_else(|| panic!("no counts in {text:?}"));
        let mut words = line.split(' ').map(|w| w.parse::<u64>().unwrap());
        conflicts += words.next().unwrap();
        other += words.next().unwrap();
    }
    let commands = PROCESSES * THREADS * commands();
    let store = options().open(dir.path()).unwrap();
    let events = store.head_position().unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "contention: {commands} commands, {conflicts} conflicts, {other} other errors, \
         {events} events, {:.1?}",
        started.elapsed()
    );
    assert_eq!(other, 0);
    assert_eq!(
        events,
        commands - conflicts,
        "every command that succeeded is stored once"
    );
    assert_eq!(conflicts, 0, "conflicts reached callers");
}
