//! What the end-to-end tests share: the built `es` binary, and stores written by the bank and
//! voting examples' aggregates through the facade.

#![allow(dead_code)]

#[path = "../../../examples/bank/account.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod account;
#[path = "../../../examples/voting/poll.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod poll;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use es::prelude::*;
use es::{Metadata, WithMetadata};

use self::account::{BankAccount, BankAccountCommand};
use self::poll::{Poll, PollCommand};

/// Events the examples' store holds: alice's 121, bob's 3, carol's 1, the poll's 1,501.
pub(crate) const EVENTS: u64 = 121 + 3 + 1 + VOTES + 1;
pub(crate) const VOTES: u64 = 1500;
pub(crate) const CORRELATION: &str = "01890000-0000-7000-8000-000000000001";

/// The finished run of `es` with `args`.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Asserts the run succeeded, printing what it said otherwise.
    #[track_caller]
    pub(crate) fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Asserts the run failed with `code` and one line on stderr, no panic, no backtrace.
    #[track_caller]
    pub(crate) fn fails_with(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:#?}");
        assert!(self.stderr.starts_with("es: "), "{self:#?}");
        for never in ["panicked", "backtrace", "RUST_BACKTRACE", "internal error"] {
            assert!(!self.stderr.contains(never), "{self:#?}");
        }
        self
    }

    /// The lines of stdout, each parsed as JSON.
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

pub(crate) fn es_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_es"));
    c.env("RUST_BACKTRACE", "1");
    c
}

pub(crate) fn finished(out: Output) -> Run {
    assert_eq!(
        out.status.signal(),
        None,
        "es died of a signal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 errors"),
    }
}

/// Runs `es` with `args` to completion.
pub(crate) fn es<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    finished(es_command().args(args).output().expect("runs es"))
}

/// Writes the examples' aggregates into `store`: three bank accounts (alice's long enough for
/// a snapshot, bob's with metadata) and a lunch poll with its ballots.
pub(crate) fn write_examples<S: EventStore + 'static>(store: std::sync::Arc<S>) {
    let bank = Host::<BankAccount, _>::new(store.clone());
    bank.execute("alice", BankAccountCommand::Open { initial: 0 })
        .unwrap();
    for amount in 1..=120 {
        bank.execute("alice", BankAccountCommand::Deposit { amount })
            .unwrap();
    }
    let metadata = Metadata::default()
        .with_correlation_id(CORRELATION.parse().unwrap())
        .with("teller", "t-17");
    for command in [
        BankAccountCommand::Open { initial: 0 },
        BankAccountCommand::Deposit { amount: 100 },
        BankAccountCommand::Withdraw { amount: 10 },
    ] {
        bank.execute("bob", WithMetadata::new(command, metadata.clone()))
            .unwrap();
    }
    bank.execute("carol", BankAccountCommand::Open { initial: 5 })
        .unwrap();
    let polls = Host::<Poll, _>::new(store);
    let choices = ["pizza", "sushi", "tacos"];
    for n in 0..VOTES {
        let command = PollCommand::Cast {
            voter: format!("voter-{n}"),
            choice: choices[n as usize % 3].to_owned(),
        };
        polls.execute("lunch", command).unwrap();
    }
    polls.execute("lunch", PollCommand::Close).unwrap();
}

/// Writes the examples into a new LMDB store at `dir`.
pub(crate) fn write_lmdb(dir: &Path) {
    let store = LmdbOptions::new()
        .durability(Durability::NoSync)
        .open(dir)
        .unwrap();
    let store = std::sync::Arc::new(store);
    write_examples(store.clone());
    store.sync().unwrap();
}

/// Copies the files of a store directory as a backup would, without its lock file: a
/// process that has the store open must not open `lock.mdb` itself (closing it would drop
/// the process's LMDB locks, which are `fcntl` locks).
pub(crate) fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "lock.mdb" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Whether this process runs as root (where permission bits are not enforced).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
