//! How the tool fails: one line on stderr and an exit status that tells a script why.
//!
//! The statuses: 1 a command failed, 2 the command line is wrong, 3 the store cannot be
//! opened (missing, not a store, unreachable), 4 the store is damaged. Output that stopped
//! because its reader went away (`es ... | head`) is no failure: the tool exits 0, silently.

use std::fmt;
use std::io;
use std::process::ExitCode;

use es_runtime::{OpenError, ReadError};

/// Why the tool stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A command failed.
    Failed,
    /// The command line is wrong.
    Usage,
    /// The store cannot be opened.
    CannotOpen,
    /// The store is damaged.
    Damage,
    /// The output's reader went away: nothing to report.
    Closed,
}

impl Exit {
    pub(crate) fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Closed => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::CannotOpen => 3,
            Exit::Damage => 4,
        })
    }
}

/// A failure of the tool: why, and the line that says so.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl fmt::Display) -> Self {
        CliError {
            exit,
            message: message.to_string(),
        }
    }

    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Usage, message)
    }

    pub(crate) fn cannot_open(message: impl fmt::Display) -> Self {
        CliError::new(Exit::CannotOpen, message)
    }

    pub(crate) fn damage(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Damage, message)
    }

    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Failed, message)
    }
}

impl From<ReadError> for CliError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Corrupt { .. } => CliError::damage(e),
            ReadError::Storage { .. } if says_damaged(&e.to_string()) => CliError::damage(e),
            other => CliError::failed(other),
        }
    }
}

impl From<OpenError> for CliError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Truncated { .. } | OpenError::Damaged { .. } => CliError::damage(e),
            OpenError::Storage { .. } if says_damaged(&e.to_string()) => CliError::damage(e),
            other => CliError::cannot_open(other),
        }
    }
}

/// Whether a storage error is LMDB's word for damage: a page that is not what it should be
/// (`MDB_CORRUPTED`), a page number past the data (`MDB_PAGE_NOTFOUND`), or a read
/// transaction that met one of those before (`MDB_BAD_TXN`: LMDB marks a read transaction
/// failed only on such a page).
fn says_damaged(message: &str) -> bool {
    ["MDB_CORRUPTED", "MDB_PAGE_NOTFOUND", "MDB_BAD_TXN"]
        .iter()
        .any(|code| message.contains(code))
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::new(Exit::Closed, e)
        } else {
            CliError::failed(format_args!("writing the output: {e}"))
        }
    }
}

/// One line: the message's own line breaks folded, so that a multi-line report of the
/// runtime (a verify report, say) still reads as one.
pub(crate) fn one_line(message: &str) -> String {
    message
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}
