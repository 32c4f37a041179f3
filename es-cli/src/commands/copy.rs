//! `es copy`: every event of one store into another through [`Migration`], with its
//! progress bar on a terminal, then its report: the counts, and whether the copy was read
//! back and found equal.
//!
//! The rule: the source is opened read-only and the target writable (created if missing); a
//! target holding events is refused unless appending is asked for. A failure is the
//! migration's error as one line; batches written before it stay in the target, which the
//! line says.

use std::io::Write;

use es_runtime::ReadError;
use es_runtime::migrate::{MigrateError, MigrateReport, Migration};
use serde_json::json;

use crate::error::{CliError, Exit, Result};
use crate::open::{Location, Store};
use crate::output::{self, fields};

/// What the command line asks of the copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) snapshots: bool,
    pub(crate) checkpoints: bool,
    pub(crate) append: bool,
    pub(crate) batch: usize,
}

pub(crate) fn run(
    source: &Location,
    target: &Location,
    options: Options,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if source == target {
        return Err(CliError::usage(
            "the source and the target are the same store",
        ));
    }
    let from = Store::open(source)?;
    let to = Store::open_writable(target)?;
    let report = Migration::new(from.events(), to.events())
        .batch_size(options.batch.max(1))
        .snapshots(options.snapshots)
        .checkpoints(options.checkpoints)
        .append(options.append)
        .progress_bar()
        .run()
        .map_err(|e| failure(&from, &to, e))?;
    if json {
        output::json_document(out, &to_json(&from, &to, &report))?;
    } else {
        write_text(out, &from, &to, &report)?;
    }
    Ok(())
}

/// A migration's error as the tool's: damage read in either store is damage (4), anything
/// else a failed command (1).
fn failure(from: &Store, to: &Store, e: MigrateError) -> CliError {
    let exit = match &e {
        MigrateError::Source(ReadError::Corrupt { .. })
        | MigrateError::Target(ReadError::Corrupt { .. }) => Exit::Damage,
        _ => Exit::Failed,
    };
    let message = match &e {
        MigrateError::TargetNotEmpty { head } => format!(
            "{} is not empty (its log ends at position {head}); copy into an empty store, or \
             give --append",
            to.describe()
        ),
        _ => format!("copying {} into {}: {e}", from.describe(), to.describe()),
    };
    CliError::new(exit, message)
}

fn to_json(from: &Store, to: &Store, r: &MigrateReport) -> serde_json::Value {
    json!({
        "source": from.describe(),
        "target": to.describe(),
        "read": r.read,
        "written": r.written,
        "dropped": r.dropped,
        "added": r.added,
        "streams": r.streams,
        "first_position": r.first_position,
        "last_position": r.last_position,
        "snapshots_copied": r.snapshots_copied,
        "snapshots_skipped": r.snapshots_skipped,
        "checkpoints_copied": r.checkpoints_copied,
        "schemas_copied": r.schemas_copied,
        "verified": r.verified,
        "seconds": r.elapsed.as_secs_f64(),
    })
}

fn write_text(
    out: &mut dyn Write,
    from: &Store,
    to: &Store,
    r: &MigrateReport,
) -> std::io::Result<()> {
    let positions = if r.written == 0 {
        "none".to_owned()
    } else {
        format!("{} to {}", r.first_position, r.last_position)
    };
    let seconds = r.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        format!(", {:.0} events/s", r.written as f64 / seconds)
    } else {
        String::new()
    };
    fields(
        out,
        &[
            ("source", from.describe()),
            ("target", to.describe()),
            (
                "events",
                format!(
                    "{} read, {} written, in {} streams",
                    r.read, r.written, r.streams
                ),
            ),
            ("positions", positions),
            (
                "snapshots",
                format!(
                    "{} copied, {} left behind",
                    r.snapshots_copied, r.snapshots_skipped
                ),
            ),
            ("checkpoints", format!("{} copied", r.checkpoints_copied)),
            ("schemas", format!("{} copied", r.schemas_copied)),
            (
                "verified",
                if r.verified {
                    "yes: the copy was read back and equals what was written".to_owned()
                } else {
                    "no".to_owned()
                },
            ),
            ("time", format!("{seconds:.2} s{rate}")),
        ],
    )
}
