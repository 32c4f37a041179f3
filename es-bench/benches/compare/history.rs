//! A command's cost against the length of the aggregate's history (0, 1k, 10k, 100k events),
//! in memory, for es and cqrs-es.
//!
//! - **es, live**: the instance is in memory (the host's steady state); snapshots every 100.
//! - **es, cold, snapshots every 100**: the instance was passivated, so the command first
//!   loads the latest snapshot and the events after it (0 to 99 of them).
//! - **es, cold, no snapshots**: the command first replays the whole history.
//! - **cqrs-es**: every command loads and replays the whole history; that is its design.
//!
//! At 0 events of history the command opens a fresh account.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use es::{Aggregate, Host, MemoryStore, StreamId};
use es_bench::bank::{self, BankAccount};
use es_bench::{Table, alternate, median, micros, micros_per, times};

use crate::cqrs::{self, Silenced};
use crate::{Config, Summary};

/// The history lengths measured.
pub(crate) const LENGTHS: [u64; 4] = [0, 1_000, 10_000, 100_000];

/// Microseconds per command at one history length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub(crate) history: u64,
    pub(crate) live: f64,
    pub(crate) cold_snapshots: f64,
    pub(crate) cold_no_snapshots: f64,
    pub(crate) cqrs: f64,
    /// Microseconds per passivation before a cold command with snapshots (not in
    /// `cold_snapshots`; the median round's average): where a snapshot on the way out is
    /// taken.
    pub(crate) passivation: f64,
}

type EsHost = Host<BankAccount, Arc<MemoryStore>>;

/// Times `k` commands, each on aggregate `id(i)` after `before(i)`, counting only the commands;
/// the time the `k` calls of `before` took goes to `before_times`, if given, one sample a call.
fn timed<'a>(
    k: u64,
    before_times: Option<&'a RefCell<Vec<Duration>>>,
    mut before: impl FnMut(u64) + 'a,
    mut command: impl FnMut(u64) + 'a,
) -> impl FnMut() -> Duration + 'a {
    let mut i = 0u64;
    move || {
        let (mut total, mut before_total) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..k {
            let start = Instant::now();
            before(i);
            let between = Instant::now();
            command(i);
            let end = Instant::now();
            before_total += between - start;
            total += end - between;
            i += 1;
        }
        if let Some(times) = before_times {
            times.borrow_mut().push(before_total);
        }
        total
    }
}

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let rt = cqrs::runtime();
    let store = Arc::new(MemoryStore::new());
    let snapshots: EsHost = Host::builder(store.clone()).snapshot_every(100).build();
    let no_snapshots: EsHost = Host::builder(store.clone()).snapshot_every(0).build();
    let (cqrs, cqrs_store) = cqrs::framework();
    let scale = |k: u64| cfg.pick(k, (k / 3).max(3));

    let mut points = Vec::new();
    for h in LENGTHS {
        // Streams `l<h>` (live), `s<h>` (cold, snapshots), `n<h>` (cold, none), and cqrs-es's
        // `c<h>`, each with `h` events; at 0, a fresh account per command instead.
        if h > 0 {
            for prefix in ["l", "s", "n"] {
                let stream = StreamId::new(BankAccount::NAME, format!("{prefix}{h}")).unwrap();
                bank::write_history(&*store, &stream, 1, h);
            }
            cqrs::write_history(&rt, &cqrs_store, &format!("c{h}"), h);
            // The first load replays everything and leaves a snapshot at `h`.
            snapshots.version(format!("s{h}")).unwrap();
            snapshots.version(format!("l{h}")).unwrap();
            snapshots.flush_snapshots();
        }
        let fresh = h == 0;
        let id = |prefix: &'static str, i: u64| {
            if fresh {
                format!("{prefix}{h}x{i}")
            } else {
                format!("{prefix}{h}")
            }
        };
        let es_command = || {
            if fresh {
                bank::open()
            } else {
                bank::deposit(1)
            }
        };

        let k_live = scale(2000);
        let mut live = timed(
            k_live,
            None,
            |i| {
                // Fresh accounts are made live (empty) before the timed command.
                if fresh {
                    snapshots.version(id("l", i)).unwrap();
                }
            },
            |i| {
                snapshots.execute(id("l", i), es_command()).unwrap();
            },
        );
        let k_snap = scale(500);
        let passivations = RefCell::default();
        let mut cold_snap = timed(
            k_snap,
            Some(&passivations),
            |i| {
                snapshots.passivate(id("s", i));
            },
            |i| {
                snapshots.execute(id("s", i), es_command()).unwrap();
            },
        );
        let k_none = scale((200_000 / (h + 200)).clamp(3, 1000));
        let mut cold_none = timed(
            k_none,
            None,
            |i| {
                no_snapshots.passivate(id("n", i));
            },
            |i| {
                no_snapshots.execute(id("n", i), es_command()).unwrap();
            },
        );
        let k_cqrs = scale((100_000 / (h + 100)).clamp(3, 1000));
        let mut cqrs_run = {
            let mut i = 0u64;
            let (rt, cqrs) = (&rt, &cqrs);
            move || {
                let _quiet = Silenced::new();
                let mut total = Duration::ZERO;
                for _ in 0..k_cqrs {
                    let aggregate = id("c", i);
                    let command = if fresh {
                        cqrs::open()
                    } else {
                        cqrs::deposit(1)
                    };
                    let start = Instant::now();
                    rt.block_on(cqrs.execute(&aggregate, command)).unwrap();
                    total += start.elapsed();
                    i += 1;
                }
                total
            }
        };
        let [live, cold_snap, cold_none, cqrs_d] = alternate(
            cfg.rounds,
            [&mut live, &mut cold_snap, &mut cold_none, &mut cqrs_run],
        );
        points.push(Point {
            history: h,
            live: micros_per(k_live, live),
            cold_snapshots: micros_per(k_snap, cold_snap),
            cold_no_snapshots: micros_per(k_none, cold_none),
            cqrs: micros_per(k_cqrs, cqrs_d),
            passivation: micros_per(k_snap, median(passivations.take())),
        });
        // Keep the instances from piling up between lengths.
        snapshots.passivate_all();
        no_snapshots.passivate_all();
    }

    println!("## Cost of one command against the aggregate's history, in memory\n");
    println!(
        "Microseconds per command. *Live*: the instance is in memory. *Cold*: it was \
         passivated, so the command first rehydrates it. cqrs-es rehydrates on every command. \
         At 0 events the command opens a fresh account.\n"
    );
    let mut t = Table::new(&[
        "events of history",
        "es, live",
        "es, cold, snapshots every 100",
        "es, cold, no snapshots",
        "cqrs-es",
        "cqrs-es / es cold with snapshots",
    ]);
    for p in &points {
        t.row(vec![
            p.history.to_string(),
            micros(p.live),
            micros(p.cold_snapshots),
            micros(p.cold_no_snapshots),
            micros(p.cqrs),
            times(p.cqrs / p.cold_snapshots),
        ]);
    }
    t.print();
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let growth = (last.cqrs - first.cqrs) / (last.history - first.history) as f64;
        println!(
            "cqrs-es's cost grows by {:.3} µs per stored event; es's without snapshots by \
             {:.3} µs (cold) and not at all when live.\n",
            growth,
            (last.cold_no_snapshots - first.cold_no_snapshots)
                / (last.history - first.history) as f64,
        );
        println!(
            "Not counted above: passivating the instance before each cold command with \
             snapshots took {} at 0 events (nothing live to drop) and {} at 100k (median round). \
             At 1k and beyond the passivation snapshots the instance on its way out (its one new \
             event holds more bytes than the small state), so the cold command loads that \
             snapshot and replays nothing.\n",
            micros(first.passivation),
            micros(last.passivation),
        );
        let live = last.live / first.live;
        summary.goal(
            "command at 0 vs 100k events of history, live instance",
            "equal within noise (≤ 1.2×)",
            format!(
                "{} vs {}: {}",
                micros(first.live),
                micros(last.live),
                times(live)
            ),
            live <= 1.2,
        );
        let cold = last.cold_snapshots / first.cold_snapshots;
        let at_1k = points
            .iter()
            .find(|p| p.history == 1_000)
            .map_or(f64::NAN, |p| p.cold_snapshots);
        summary.goal(
            "command at 0 vs 100k events of history, cold instance, snapshots every 100",
            "equal within noise (≤ 1.2×)",
            format!(
                "{} vs {}: {} (1k: {})",
                micros(first.cold_snapshots),
                micros(last.cold_snapshots),
                times(cold),
                micros(at_1k)
            ),
            cold <= 1.2,
        );
    }
    summary.history = points;
}
