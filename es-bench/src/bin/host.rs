//! Benchmarks of the host, printed as one table of medians.
//!
//! ```sh
//! cargo run --release -p es-bench --bin host            # 5 runs per row
//! cargo run --release -p es-bench --bin host -- --quick # 3 runs, smaller workloads
//! cargo run --release -p es-bench --bin host -- --throughput  # the first row only
//! ```
//!
//! Every row runs the same workload on each store listed in `main`; adding a backend is one
//! more `suite(...)` line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use es_runtime::{
    Aggregate, DomainEvent, EventStore, ExpectedVersion, Host, MemoryStore, Metadata, NewEvent,
    StreamId,
};
use serde::{Deserialize, Serialize};

/// Counts the bytes the process holds, to measure memory per live instance.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Account {
    balance: u64,
    open: bool,
}

#[derive(Debug, Clone)]
enum Command {
    Deposit(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Event {
    Deposited { amount: u64 },
}

impl DomainEvent for Event {
    const TYPES: &'static [&'static str] = &["Deposited"];
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    type Command = Command;
    type Event = Event;
    type Error = std::convert::Infallible;
    fn handle(&self, Command::Deposit(amount): Command) -> Result<Vec<Event>, Self::Error> {
        Ok(vec![Event::Deposited { amount }])
    }
    fn apply(&mut self, Event::Deposited { amount }: Event) {
        self.open = true;
        self.balance += amount;
    }
}

struct Config {
    runs: usize,
    commands: u64,
    history: u64,
    idle_accounts: u64,
    /// Only the first row (for profiling).
    throughput_only: bool,
}

struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    goal: &'static str,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The host rows for one store; `make` opens a fresh, empty store.
fn suite<S: EventStore>(store_name: &str, make: impl Fn() -> S, cfg: &Config) -> Vec<Row> {
    let mut rows = Vec::new();
    let row = |name: &str, value: f64, unit: &'static str, goal: &'static str| Row {
        name: format!("{store_name}: {name}"),
        value,
        unit,
        goal,
    };

    // 1 thread, 1000 accounts, round robin; instances are warm.
    let throughput = median(
        (0..cfg.runs)
            .map(|_| {
                let host = Host::<Account, _>::new(make());
                for id in 0..1000u64 {
                    host.execute(id, Command::Deposit(1)).unwrap();
                }
                let took = time(|| {
                    for i in 0..cfg.commands {
                        host.execute(i % 1000, Command::Deposit(1)).unwrap();
                    }
                });
                cfg.commands as f64 / took.as_secs_f64()
            })
            .collect(),
    );
    rows.push(row(
        "1 thread, 1000 accounts",
        throughput,
        "cmd/s",
        ">= 2,000,000",
    ));

    if cfg.throughput_only {
        return rows;
    }

    // The same appends straight to the store, without a host: the floor of the row above.
    let raw = median(
        (0..cfg.runs)
            .map(|_| {
                let store = make();
                let streams: Vec<StreamId> = (0..1000u64)
                    .map(|id| StreamId::new(Account::NAME, id).unwrap())
                    .collect();
                let mut versions = vec![0u64; 1000];
                let took = time(|| {
                    for i in 0..cfg.commands {
                        let a = (i % 1000) as usize;
                        let event = Event::Deposited { amount: 1 };
                        let new = NewEvent::from_event(&event, Metadata::default()).unwrap();
                        store
                            .append(&streams[a], ExpectedVersion::Exact(versions[a]), vec![new])
                            .unwrap();
                        versions[a] += 1;
                    }
                });
                cfg.commands as f64 / took.as_secs_f64()
            })
            .collect(),
    );
    rows.push(row("raw appends, no host (floor)", raw, "cmd/s", ""));

    // 64 callers at once over the same 1000 accounts (each thread its own share).
    let callers = 64u64;
    let concurrent = median(
        (0..cfg.runs)
            .map(|_| {
                let host = Host::<Account, _>::new(make());
                for id in 0..1000u64 {
                    host.execute(id, Command::Deposit(1)).unwrap();
                }
                let per_thread = cfg.commands / callers;
                let start = std::sync::Barrier::new(callers as usize + 1);
                let took = std::thread::scope(|scope| {
                    for t in 0..callers {
                        let (host, start) = (&host, &start);
                        scope.spawn(move || {
                            start.wait();
                            for i in 0..per_thread {
                                host.execute((t * 7919 + i) % 1000, Command::Deposit(1))
                                    .unwrap();
                            }
                        });
                    }
                    start.wait();
                    Instant::now()
                })
                .elapsed();
                (per_thread * callers) as f64 / took.as_secs_f64()
            })
            .collect(),
    );
    rows.push(row(
        "64 callers, 1000 accounts",
        concurrent,
        "cmd/s",
        ">= 50,000 (durable store)",
    ));

    // A command's cost with no history and with `history` events (snapshots every 100).
    let host = Host::<Account, _>::builder(make())
        .snapshot_every(100)
        .build();
    for _ in 0..cfg.history {
        host.execute("long", Command::Deposit(1)).unwrap();
    }
    host.flush_snapshots();
    // Runs alternate between the two streams, so both see the same store; each run starts
    // cold (the first command rehydrates: nothing, or a snapshot and its tail), and the new
    // stream is a new one every run.
    let n = 2_000;
    let (mut fresh, mut long) = (Vec::new(), Vec::new());
    for run in 0..cfg.runs * 4 {
        let mut pair = [
            (format!("fresh-{run}"), &mut fresh),
            ("long".to_owned(), &mut long),
        ];
        // Alternate which goes first, too.
        if run % 2 == 1 {
            pair.reverse();
        }
        for (id, samples) in pair {
            host.passivate(&id);
            let took = time(|| {
                for _ in 0..n {
                    host.execute(&id, Command::Deposit(1)).unwrap();
                }
            });
            samples.push(took.as_nanos() as f64 / n as f64);
        }
    }
    rows.push(row(
        "command, 0 events of history",
        median(fresh),
        "ns/cmd",
        "equal within noise",
    ));
    rows.push(row(
        &format!("command, {} events of history", cfg.history),
        median(long),
        "ns/cmd",
        "equal within noise",
    ));
    drop(host);

    // Rehydrating `history` events, without and with a snapshot.
    for (with_snapshot, goal) in [(false, "<= 25 ms"), (true, "<= 0.1 ms")] {
        let store = Arc::new(make());
        {
            let writer = Host::<Account, _>::builder(store.clone())
                .snapshot_every(0)
                .build();
            for _ in 0..cfg.history {
                writer.execute("r", Command::Deposit(1)).unwrap();
            }
        }
        let host = Host::<Account, _>::builder(store.clone())
            .snapshot_every(if with_snapshot { 100 } else { 0 })
            .background_snapshots(false)
            .build();
        // With a policy, the first load replays everything and saves the snapshot.
        host.version("r").unwrap();
        let took = median(
            (0..cfg.runs.max(5))
                .map(|_| {
                    host.passivate("r");
                    time(|| assert_eq!(host.version("r").unwrap(), cfg.history)).as_secs_f64() * 1e3
                })
                .collect(),
        );
        let name = format!(
            "rehydrate {} events, {}",
            cfg.history,
            if with_snapshot {
                "from a snapshot"
            } else {
                "no snapshot"
            }
        );
        rows.push(row(&name, took, "ms", goal));
    }

    // Memory per live idle account: load accounts written earlier, count what is held.
    let store = Arc::new(make());
    {
        let writer = Host::<Account, _>::new(store.clone());
        for id in 0..cfg.idle_accounts {
            writer.execute(id, Command::Deposit(1)).unwrap();
        }
    }
    let host = Host::<Account, _>::builder(store.clone())
        .max_live(cfg.idle_accounts as usize)
        .build();
    host.version(0).unwrap();
    let before = HELD.load(Ordering::Relaxed);
    for id in 1..cfg.idle_accounts {
        host.version(id).unwrap();
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    let per = held as f64 / (cfg.idle_accounts - 1) as f64;
    rows.push(row(
        &format!(
            "memory per live idle account (state {} B)",
            size_of::<Account>()
        ),
        per,
        "B",
        "<= state + 256 B",
    ));
    rows
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let throughput_only = std::env::args().any(|a| a == "--throughput");
    let cfg = if quick {
        Config {
            runs: 3,
            commands: 200_000,
            history: 100_000,
            idle_accounts: 10_000,
            throughput_only,
        }
    } else {
        Config {
            runs: 5,
            commands: 1_000_000,
            history: 100_000,
            idle_accounts: 100_000,
            throughput_only,
        }
    };

    let mut rows = Vec::new();
    rows.extend(suite("memory", MemoryStore::new, &cfg));

    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    println!(
        "{:width$}  {:>14}  {:7}  goal",
        "host benchmark (median)", "value", "unit"
    );
    for r in rows {
        let value = if r.value >= 1000.0 {
            format!("{:.0}", r.value)
        } else if r.value >= 1.0 {
            format!("{:.3}", r.value)
        } else {
            format!("{:.5}", r.value)
        };
        println!("{:width$}  {:>14}  {:7}  {}", r.name, value, r.unit, r.goal);
    }
}
