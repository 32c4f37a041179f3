//! Commands over an LMDB store run in a child process: this program again, with the same
//! arguments and its standard input, output and error, so that damage to LMDB's own pages
//! which makes a reader fault (`SIGBUS` on a page past a truncated file's end, `SIGSEGV` on a
//! page number out of the map, an assertion's abort) ends the child, and the tool lives on to
//! report it as damage (exit status 4, one line).
//!
//! The rule: the parent only waits and reports. The child's exit status is the tool's; a
//! child killed by a fault is damage; a child stopped by Ctrl-C or SIGTERM ends the tool the
//! same way. `verify` has its own child (it reports the fault inside its report), and
//! `tail --follow` reads in-process: it runs until stopped, and a signal meant for it (a
//! SIGTERM sent to the tool alone) must reach the process that reads.

use std::ffi::OsString;
use std::io::{IsTerminal as _, Read as _, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use crate::cli::{Cli, Command as Cmd};
use crate::commands::verify::signal_name;
use crate::error::Exit;
use crate::open::Location;

/// Set in the child's environment: it runs the command itself.
const CHILD: &str = "__ES_READER_CHILD";

/// For the tests: the child raises SIGBUS before it reads, as a damaged page would.
const RAISE: &str = "__ES_READER_CHILD_RAISES_SIGBUS";

/// The LMDB store the command works on, when it is to run in a child (that is, unless this
/// process is the child).
pub(crate) fn lmdb_store(cli: &Cli) -> Option<PathBuf> {
    if std::env::var_os(CHILD).is_some() {
        if std::env::var_os(RAISE).is_some() {
            // SAFETY: setting a signal's default action and raising it have no
            // preconditions. (The default first: the Rust runtime's handler would return.)
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                libc::raise(libc::SIGBUS);
            }
        }
        return None;
    }
    let store = match &cli.command {
        Cmd::Stats { store }
        | Cmd::Streams { store, .. }
        | Cmd::Show { store, .. }
        | Cmd::Snapshots { store, .. }
        | Cmd::Export { store, .. }
        | Cmd::Projections { store }
        | Cmd::Docs { store, .. } => &store.store,
        Cmd::Tail { store, follow, .. } if !follow => &store.store,
        Cmd::Import { store, .. } => store,
        // The source is read; the target, when it is LMDB as well, is written in the same
        // child.
        Cmd::Copy { source, .. } => source,
        Cmd::Tail { .. } | Cmd::Verify { .. } | Cmd::VerifyChild { .. } => return None,
    };
    match Location::parse(store, &cli.schema) {
        Location::Lmdb(path) => Some(path),
        Location::Postgres { .. } => None,
    }
}

/// Runs this program again with the same arguments, in a child, and ends as it did.
pub(crate) fn in_child(path: &std::path::Path) -> ExitCode {
    let say = |message: String| {
        let _ = writeln!(std::io::stderr(), "es: {message}");
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            say(format!("cannot find this program to run it: {e}"));
            return Exit::Failed.code();
        }
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Ctrl-C reaches the child as well (one process group): the parent waits for it to stop.
    crate::interrupt::catch();
    let mut command = Command::new(exe);
    command.args(args).env(CHILD, "1");
    // (The parent's handlers are its own: exec gives the child the default actions.)
    // Its errors are captured unless they go to a terminal (where a progress bar may be
    // drawn), so that a fault's own words (an assertion of LMDB's) become part of the one
    // line that reports it.
    let captured = !std::io::stderr().is_terminal();
    if captured {
        command.stderr(Stdio::piped());
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            say(format!("cannot run the reading process: {e}"));
            return Exit::Failed.code();
        }
    };
    let errors = child.stderr.take().map(|mut from| {
        std::thread::spawn(move || {
            let mut said = Vec::new();
            let _ = from.read_to_end(&mut said);
            said
        })
    });
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            say(format!("cannot wait for the reading process: {e}"));
            return Exit::Failed.code();
        }
    };
    let said = errors
        .and_then(|t| t.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if status.code().is_some() {
        let _ = std::io::stderr().write_all(said.as_bytes());
    }
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let signal = status.signal().unwrap_or(0);
    match signal {
        libc::SIGBUS | libc::SIGSEGV | libc::SIGABRT | libc::SIGILL | libc::SIGFPE => {
            // An assertion of LMDB's says where: `file:line: Assertion '...' failed in f()`.
            let lmdb_said = said
                .lines()
                .filter_map(|l| l.find("Assertion").map(|at| &l[at..]))
                .next_back()
                .map(|a| format!(" (LMDB: {})", a.trim()))
                .unwrap_or_default();
            say(format!(
                "{} (LMDB) is damaged: reading it killed the reading process with signal \
                 {signal} ({}){lmdb_said}; LMDB's own pages are damaged (run es verify)",
                path.display(),
                signal_name(signal)
            ));
            Exit::Damage.code()
        }
        libc::SIGINT | libc::SIGTERM | libc::SIGPIPE => {
            ExitCode::from(128u8.saturating_add(signal as u8))
        }
        _ => {
            say(format!(
                "the reading process was killed by signal {signal} ({})",
                signal_name(signal)
            ));
            Exit::Failed.code()
        }
    }
}
