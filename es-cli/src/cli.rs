//! The command line: every command takes the store as its first argument.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Look inside an es event store: an LMDB directory (opened read-only, unless the command
/// writes: import, the target of copy) or a PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "es", version, about, long_about = None)]
#[command(
    after_help = "STORE is an LMDB directory, or a PostgreSQL connection string \
    (postgres://... or \"host=... dbname=...\").\n\
    Exit status: 0 done, 1 failed, 2 bad usage, 3 the store cannot be opened, 4 damage found."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The PostgreSQL schema holding the store's tables.
    #[arg(long, global = true, default_value = "es", value_name = "NAME")]
    pub(crate) schema: String,
}

/// The store every command works on.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// The store: an LMDB directory, or a PostgreSQL connection string.
    #[arg(value_name = "STORE")]
    pub(crate) store: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Streams, events and bytes per category and event type, snapshots, and (LMDB) the
    /// environment's map, pages and readers.
    Stats {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The streams with their versions.
    Streams {
        #[command(flatten)]
        store: StoreArgs,
        /// Only the streams of this category (the part of the id before the first `-`).
        #[arg(long, value_name = "C")]
        category: Option<String>,
        /// At most this many streams.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// The events of one stream, each with its envelope and payload.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// The stream id (`category-id`).
        stream: String,
        /// From this version on.
        #[arg(long, value_name = "V", default_value_t = 1)]
        from: u64,
        /// Show the stored payload bytes (hex) besides the payload as JSON.
        #[arg(long)]
        raw: bool,
    },
    /// The end of the global log, or the log from a position; with --follow, new events as
    /// they are written (stop with Ctrl-C).
    Tail {
        #[command(flatten)]
        store: StoreArgs,
        /// From this position on (default: the last --lines events).
        #[arg(long, value_name = "POS")]
        from: Option<u64>,
        /// How many of the last events to show when no --from is given.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
        /// Keep waiting for new events.
        #[arg(short, long)]
        follow: bool,
        /// Only events of streams of this category.
        #[arg(long, value_name = "C")]
        category: Option<String>,
        /// Only events of this stored type name.
        #[arg(long = "type", value_name = "T")]
        event_type: Option<String>,
    },
    /// The snapshots of one stream.
    Snapshots {
        #[command(flatten)]
        store: StoreArgs,
        /// The stream id (`category-id`).
        stream: String,
    },
    /// Check every record of the store; exit status 4 when anything is damaged.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every event as JSON lines (envelope, payload as JSON and as the stored bytes in
    /// base64), in log order.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Every projection checkpoint: its position and how many events it is behind the head.
    Projections {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Take in the JSON lines `es export` writes, keeping each event's id, timestamp,
    /// metadata and payload bytes; create the store if there is none.
    Import {
        /// The target store: an LMDB directory (created if missing), or a PostgreSQL
        /// connection string (the schema is created if missing).
        #[arg(value_name = "STORE")]
        store: String,
        /// The export to read, or `-` for standard input.
        #[arg(value_name = "FILE")]
        file: String,
        /// Add the events to a store that holds events already.
        #[arg(long)]
        append: bool,
        /// Events per transaction.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        batch: usize,
    },
    /// Copy every event (and the snapshots) of one store into another, then check the
    /// copy; SRC is opened read-only, DST is created if missing.
    Copy {
        /// The store to copy from.
        #[arg(value_name = "SRC")]
        source: String,
        /// The store to copy into.
        #[arg(value_name = "DST")]
        target: String,
        /// Leave the snapshots behind.
        #[arg(long)]
        no_snapshots: bool,
        /// Carry the projection checkpoints too.
        #[arg(long)]
        checkpoints: bool,
        /// Add the events to a target that holds events already.
        #[arg(long)]
        append: bool,
        /// Events per transaction.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        batch: usize,
        /// The PostgreSQL schema of the target, when it differs from the source's
        /// (--schema).
        #[arg(long, value_name = "NAME")]
        target_schema: Option<String>,
    },
    /// Every aggregate's Markdown page with its Mermaid diagram, from the newest schema
    /// recorded in the store.
    Docs {
        #[command(flatten)]
        store: StoreArgs,
        /// Write one page per aggregate and an index page (index.md) into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Only the page of this aggregate (its stream category).
        #[arg(long, value_name = "NAME")]
        aggregate: Option<String>,
    },
    /// Verifies an LMDB store in this process and prints the report as JSON: what `verify`
    /// runs in a child process, so that a fault is the child's.
    #[command(name = "__verify-child", hide = true)]
    VerifyChild { path: PathBuf },
}
