//! `es export`: every event of the log, in position order, as JSON lines: the envelope, the
//! payload as JSON for reading, and the stored bytes in base64 so that nothing is lost.
//! A progress bar shows on stderr when it is a terminal.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{CliError, Result};
use crate::event_json::{self, Bytes};
use crate::open::Store;
use crate::output;

pub(crate) fn run(
    store: &Store,
    file: Option<&Path>,
    force: bool,
    stdout: &mut dyn Write,
) -> Result<()> {
    let events = store.events();
    let head = events.head_position()?;
    let mut to_file = match file {
        None => None,
        Some(path) => Some(BufWriter::new(create(path, force)?)),
    };
    let out: &mut dyn Write = match &mut to_file {
        Some(f) => f,
        None => stdout,
    };
    let bar = if io::stderr().is_terminal() {
        let bar = ProgressBar::new(head);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} exporting [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut failed: Option<io::Error> = None;
    let mut written = 0u64;
    let read = events.read_all_with(1, &mut |e| {
        if crate::interrupt::stopped() {
            return ControlFlow::Break(());
        }
        match output::json_line(out, &event_json::event(&e, Bytes::Base64)) {
            Ok(()) => {
                written += 1;
                if written.is_multiple_of(256) {
                    bar.set_position(e.position);
                }
                ControlFlow::Continue(())
            }
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    });
    bar.finish_and_clear();
    read?;
    if let Some(err) = failed {
        return Err(err.into());
    }
    out.flush()?;
    if let (Some(path), Some(f)) = (file, to_file) {
        f.into_inner()
            .map_err(|e| {
                CliError::failed(format_args!("writing {}: {}", path.display(), e.error()))
            })?
            .sync_all()
            .map_err(|e| CliError::failed(format_args!("writing {}: {e}", path.display())))?;
        let _ = writeln!(
            io::stderr(),
            "es: exported {written} events to {}",
            path.display()
        );
    }
    Ok(())
}

/// The output file: a new one, or (with `force`) one emptied.
fn create(path: &Path, force: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            CliError::usage(format_args!(
                "{} exists; give --force to replace it",
                path.display()
            ))
        } else {
            CliError::failed(format_args!("cannot create {}: {e}", path.display()))
        }
    })
}
