//! Every benchmark of `es` in one run, printed as Markdown tables of medians and ratios: the
//! host in memory and on LMDB, command cost against history length, rehydration, projection
//! rebuilds, raw heed doing the same writes, the peer `cqrs-es` on the same bank workload, and
//! memory per live aggregate. Ends with the goals, met or missed, and writes a plot of command
//! cost against history length.
//!
//! ```sh
//! cargo bench -p es-bench --bench compare                        # everything, ~1.5 minutes
//! cargo bench -p es-bench --bench compare -- --quick             # smaller workloads, ~10 seconds
//! cargo bench -p es-bench --bench compare -- --only memory,peer  # some sections
//! ```
//!
//! Sections: `memory`, `peer`, `history`, `rehydrate`, `durable`, `store`, `projection`,
//! `idle`, `postgres` (on a throwaway PostgreSQL server it starts), `pgcounts` (the server's
//! own counts of statements, transactions and WAL per command, on another such server). Stores are written under `$ES_BENCH_DIR`, by default the target directory's
//! scratch space (`target/tmp`). Unknown arguments (cargo passes `--bench`) are ignored.

mod cqrs;
mod durable;
mod history;
mod idle;
mod memory;
mod pg_counts;
mod pg_peer;
mod plot;
mod postgres;
mod projection;
mod rehydrate;
mod store;

use std::path::PathBuf;
use std::time::Instant;

use es_bench::Table;

#[global_allocator]
static ALLOCATOR: es_bench::alloc::Counting = es_bench::alloc::Counting;

/// The run's settings: full or quick sizes, and where stores go.
pub(crate) struct Config {
    pub(crate) quick: bool,
    /// Samples per contender; each figure is their median.
    pub(crate) rounds: usize,
    pub(crate) root: PathBuf,
}

impl Config {
    /// `full` in a full run, `quick` with `--quick`.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// What the run found, for the goals table and the plot.
#[derive(Default)]
pub(crate) struct Summary {
    goals: Vec<[String; 4]>,
    pub(crate) history: Vec<history::Point>,
}

impl Summary {
    /// Records a goal: what, the target, the figure, and whether it is met.
    pub(crate) fn goal(&mut self, what: &str, target: &str, measured: String, met: bool) {
        let verdict = if met { "met" } else { "**missed**" };
        self.goals.push([
            what.to_owned(),
            target.to_owned(),
            measured,
            verdict.to_owned(),
        ]);
    }
}

type Section = (&'static str, fn(&Config, &mut Summary));

const SECTIONS: &[Section] = &[
    ("memory", memory::run),
    ("peer", cqrs::run),
    ("history", history::run),
    ("rehydrate", rehydrate::run),
    ("durable", durable::run),
    ("store", store::run),
    ("projection", projection::run),
    ("idle", idle::run),
    ("postgres", postgres::run),
    ("pgcounts", pg_counts::run),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(str::to_owned).collect());
    if let Some(only) = &only
        && let Some(unknown) = only
            .iter()
            .find(|s| !SECTIONS.iter().any(|(name, _)| name == s))
    {
        eprintln!(
            "unknown section {unknown:?}; the sections are {}",
            SECTIONS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
        );
        std::process::exit(2);
    }

    let cfg = Config {
        quick,
        rounds: if quick { 3 } else { 9 },
        root: es_bench::bench_root(option_env!("CARGO_TARGET_TMPDIR")),
    };
    std::fs::create_dir_all(&cfg.root).expect("the benchmark directory can be created");
    println!("# es benchmarks{}\n", if quick { " (--quick)" } else { "" });
    println!("{}.", es_bench::machine::describe(&cfg.root));
    println!(
        "Every figure is the median of {} or more samples; contenders alternate within each \
         round.{}\n",
        cfg.rounds,
        if quick {
            " Quick mode: smaller workloads, fewer samples; noisier."
        } else {
            ""
        }
    );

    let started = Instant::now();
    let mut summary = Summary::default();
    for (name, run) in SECTIONS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|s| s == name)) {
            continue;
        }
        let t = Instant::now();
        run(&cfg, &mut summary);
        eprintln!("[{name}: {:.1} s]", t.elapsed().as_secs_f64());
    }

    if !summary.goals.is_empty() {
        println!("## Goals\n");
        let mut t = Table::new(&["goal", "target", "measured", ""]);
        for g in &summary.goals {
            t.row(g.to_vec());
        }
        t.print();
    }
    if !summary.history.is_empty() {
        let path = if quick {
            cfg.root.join("bench-history-quick.svg")
        } else {
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .parent()
                .unwrap_or(manifest)
                .join("docs/bench-history.svg")
        };
        match plot::history(&summary.history, &path) {
            Ok(()) => println!("Plot of command cost against history: {}\n", path.display()),
            Err(e) => eprintln!("could not write the plot {}: {e}", path.display()),
        }
    }
    println!("Total time: {:.0} s", started.elapsed().as_secs_f64());
}
