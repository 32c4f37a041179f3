//! Shared pieces of the benchmark command (`benches/compare`): the bank aggregate, timing over
//! alternating rounds, tables, the machine description and an allocator that counts bytes.
//!
//! ```sh
//! cargo bench -p es-bench --bench compare              # every workload, ~1.5 minutes
//! cargo bench -p es-bench --bench compare -- --quick   # smaller workloads, ~10 seconds
//! ```

pub mod alloc;
pub mod bank;
pub mod machine;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Times one call of `f`.
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The median of some durations (the upper one of the middle two for an even count).
pub fn median(mut times: Vec<Duration>) -> Duration {
    assert!(!times.is_empty(), "no samples");
    times.sort();
    times[times.len() / 2]
}

/// Runs every contender once per round, `rounds` times, and returns each one's median.
///
/// Rounds alternate between the contenders, and the one that goes first rotates, so a drift
/// in the machine's speed (another process, the disk) hits them all alike.
pub fn alternate<const N: usize>(
    rounds: usize,
    contenders: [&mut dyn FnMut() -> Duration; N],
) -> [Duration; N] {
    alternate_samples(rounds, contenders).map(median)
}

/// [`alternate`], returning every contender's samples in round order.
pub fn alternate_samples<const N: usize>(
    rounds: usize,
    contenders: [&mut dyn FnMut() -> Duration; N],
) -> [Vec<Duration>; N] {
    let mut samples: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for k in 0..N {
            let i = (round + k) % N;
            samples[i].push(contenders[i]());
        }
    }
    samples
}

/// How fast `a` ran against `baseline` doing the same work: the median over rounds of the
/// baseline's time over `a`'s in the same round (2.0: twice as fast). Pairing the samples of
/// one round cancels a drift of the machine's speed between rounds.
pub fn speed_ratio(a: &[Duration], baseline: &[Duration]) -> f64 {
    assert_eq!(a.len(), baseline.len(), "one sample each per round");
    let mut ratios: Vec<f64> = a
        .iter()
        .zip(baseline)
        .map(|(a, b)| b.as_secs_f64() / a.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// Operations per second for `ops` done in `d`.
pub fn rate(ops: u64, d: Duration) -> f64 {
    ops as f64 / d.as_secs_f64()
}

/// Microseconds per operation for `ops` done in `d`.
pub fn micros_per(ops: u64, d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / ops as f64
}

/// Formats a rate as `12.3k/s`.
pub fn per_sec(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

/// Formats a duration in milliseconds.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 0.1 {
        format!("{ms:.4} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Formats microseconds with three significant digits or so.
pub fn micros(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0} µs")
    } else if us >= 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// Formats a ratio as `1.23×`.
pub fn times(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A table printed as Markdown, so it can be pasted into `BENCHMARKS.md`.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as Markdown, columns padded to line up.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{:<w$}", cells.get(i).map_or("", String::as_str)))
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// Prints the table and a blank line.
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

/// Where the benchmarks write their stores: `$ES_BENCH_DIR` if set, else `fallback` (the
/// bench target passes the target directory's scratch space, `target/tmp`), else the system's
/// temporary directory.
pub fn bench_root(fallback: Option<&str>) -> PathBuf {
    match std::env::var_os("ES_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => fallback.map_or_else(std::env::temp_dir, PathBuf::from),
    }
}

/// A fresh directory under `root`, removed when dropped.
pub fn bench_dir(root: &Path) -> tempfile::TempDir {
    std::fs::create_dir_all(root).expect("the benchmark directory can be created");
    tempfile::Builder::new()
        .prefix("es-bench-")
        .tempdir_in(root)
        .expect("a temporary directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle() {
        let d = Duration::from_millis;
        assert_eq!(median(vec![d(3), d(1), d(2)]), d(2));
        assert_eq!(median(vec![d(4), d(1), d(3), d(2)]), d(3));
    }

    #[test]
    fn alternate_runs_every_contender_every_round() {
        let (mut a, mut b) = (0, 0);
        let [x, y] = alternate(
            5,
            [
                &mut || {
                    a += 1;
                    Duration::from_millis(a)
                },
                &mut || {
                    b += 1;
                    Duration::from_millis(10 * b)
                },
            ],
        );
        assert_eq!((a, b), (5, 5));
        assert_eq!(
            (x, y),
            (Duration::from_millis(3), Duration::from_millis(30))
        );
    }

    #[test]
    fn speed_ratio_pairs_the_rounds() {
        let d = Duration::from_millis;
        // The machine slows down 4× over the rounds; `a` always takes 0.8× the baseline's
        // time, but one round of `a` was disturbed.
        let baseline = [d(100), d(200), d(400)];
        let a = [d(80), d(160), d(1000)];
        assert!((speed_ratio(&a, &baseline) - 1.25).abs() < 1e-9);
        assert!((speed_ratio(&baseline, &a) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn tables_line_up() {
        let mut t = Table::new(&["what", "rate"]);
        t.row(vec!["a longer name".into(), per_sec(2_500_000.0)]);
        t.row(vec!["b".into()]);
        assert_eq!(
            t.render(),
            "| what          | rate    |\n\
             | ------------- | ------- |\n\
             | a longer name | 2.50M/s |\n\
             | b             |         |\n"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(per_sec(1234.0), "1.2k/s");
        assert_eq!(times(1.234), "1.23×");
        assert_eq!(micros(1234.5), "1234 µs");
        assert_eq!(ms(Duration::from_micros(12_345)), "12.35 ms");
        assert_eq!(ms(Duration::from_micros(45)), "0.0450 ms");
    }
}
