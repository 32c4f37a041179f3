//! `es`: look inside an es event store, an LMDB directory (opened read-only unless the command
//! writes into it) or a PostgreSQL database, without the application's Rust types.
//!
//! The rule of its output: tables for a person, `--json` for scripts; a failure is one line
//! on stderr and an exit status naming its kind (see `error`), never a panic's message or a
//! backtrace, and never a death by signal, even on a damaged store: every command that reads
//! or writes an LMDB store runs again as a child process (`reader`), whose death by a fault is
//! reported as damage.

mod cli;
mod commands;
mod error;
mod event_json;
mod interrupt;
mod open;
mod output;
mod reader;
mod schemas;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{CliError, Exit, Result, one_line};
use crate::open::{Location, Store};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            io::stderr(),
            "es: internal error{at}: {}",
            one_line(&message)
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    if let Some(path) = reader::lmdb_store(&cli) {
        return reader::in_child(&path);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.exit != Exit::Closed {
                let _ = writeln!(io::stderr(), "es: {}", one_line(&e.message));
            }
            e.exit.code()
        }
    }
}

/// Help and the version go to stdout; a wrong command line is its first line, and a hint.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let text = e.render().to_string();
        let _ = io::stdout().write_all(text.as_bytes());
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            Exit::Usage.code()
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's first paragraph says what is wrong (a list of missing arguments indented
    // below it); the usage and hints follow a blank line.
    let text = e.render().to_string();
    let said: Vec<&str> = text
        .trim_start()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let said = said.join(" ");
    let said = said.strip_prefix("error: ").unwrap_or(&said);
    let _ = writeln!(io::stderr(), "es: {said} (see es --help)");
    Exit::Usage.code()
}

fn run(cli: Cli) -> Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let json = cli.json;
    let location = |store: &cli::StoreArgs| Location::parse(&store.store, &cli.schema);
    match &cli.command {
        Command::VerifyChild { path } => commands::verify::child(path, &mut out)?,
        Command::Verify { store } => commands::verify::run(&location(store), json, &mut out)?,
        Command::Export {
            store,
            out: file,
            force,
        } => {
            let store = Store::open(&location(store))?;
            commands::export::run(&store, file.as_deref(), *force, &mut out)?
        }
        Command::Stats { store } => {
            let store = Store::open(&location(store))?;
            commands::stats::run(&store, json, &mut out)?
        }
        Command::Streams {
            store,
            category,
            limit,
        } => {
            let store = Store::open(&location(store))?;
            commands::streams::run(&store, category.as_deref(), *limit, json, &mut out)?
        }
        Command::Show {
            store,
            stream,
            from,
            raw,
        } => {
            let stream = commands::stream_id(stream)?;
            let store = Store::open(&location(store))?;
            commands::show::run(&store, &stream, *from, *raw, json, &mut out)?
        }
        Command::Tail {
            store,
            from,
            lines,
            follow,
            category,
            event_type,
        } => {
            let store = Store::open(&location(store))?;
            let filter = commands::tail::Filter {
                category: category.clone(),
                event_type: event_type.clone(),
            };
            let start = match from {
                Some(p) => commands::tail::Start::At(*p),
                None => commands::tail::Start::Last(*lines),
            };
            commands::tail::run(&store, start, *follow, &filter, json, &mut out)?
        }
        Command::Snapshots { store, stream } => {
            let stream = commands::stream_id(stream)?;
            let store = Store::open(&location(store))?;
            commands::snapshots::run(&store, &stream, json, &mut out)?
        }
        Command::Projections { store } => {
            let store = Store::open(&location(store))?;
            commands::projections::run(&store, json, &mut out)?
        }
        Command::Import {
            store,
            file,
            append,
            batch,
        } => {
            crate::interrupt::catch();
            let location = Location::parse(store, &cli.schema);
            commands::import::run(&location, file, *append, *batch, json, &mut out)?
        }
        Command::Copy {
            source,
            target,
            no_snapshots,
            checkpoints,
            append,
            batch,
            target_schema,
        } => {
            let from = Location::parse(source, &cli.schema);
            let to = Location::parse(target, target_schema.as_deref().unwrap_or(&cli.schema));
            let options = commands::copy::Options {
                snapshots: !no_snapshots,
                checkpoints: *checkpoints,
                append: *append,
                batch: *batch,
            };
            commands::copy::run(&from, &to, options, json, &mut out)?
        }
        Command::Docs {
            store,
            out: dir,
            aggregate,
        } => {
            let store = Store::open(&location(store))?;
            commands::docs::run(&store, dir.as_deref(), aggregate.as_deref(), json, &mut out)?
        }
    }
    out.flush().map_err(CliError::from)
}
