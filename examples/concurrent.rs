//! Many threads sending commands to a `Host` at once.
//!
//! Eight threads make random deposits and withdrawals on 20 shared accounts. Commands for one
//! account run one at a time, so no withdrawal ever overdraws, while different accounts run in
//! parallel. A second host on the same store writes to the same accounts too: its writes show
//! up in the first host as version conflicts, which are reloaded and retried. The account is
//! the bank demo's (`examples/bank/account.rs`).
//!
//! With `--postgres <connection string>` (and the `postgres` feature) the store is a fresh
//! schema of that PostgreSQL database: run it on two machines against one database and the
//! version conflicts come from the other machine as well.
//!
//! ```sh
//! cargo run --example concurrent
//! cargo run --example concurrent --features postgres -- --postgres "host=/run/postgresql dbname=app"
//! ```

// The bank demo's aggregate, written as a library module would be; the teller's parsing and
// the account's closing are not used here.
#[allow(dead_code, unreachable_pub)]
#[path = "bank/account.rs"]
mod account;

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use es::{Aggregate, EventStore, ExecuteError, Host, MemoryStore, StreamId};

use crate::account::{BankAccount, BankAccountCommand, BankAccountEvent};

const THREADS: u64 = 8;
const COMMANDS: u64 = 20_000;
const ACCOUNTS: u64 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, url] if flag == "--postgres" => postgres(url),
        _ => run(Arc::new(MemoryStore::new())),
    }
}

#[cfg(feature = "postgres")]
fn postgres(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // A schema of its own per run: the accounts are opened afresh.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let schema = format!("concurrent_{}", nanos.as_millis());
    let store = es::PostgresOptions::new(url)
        .schema(&schema)
        .max_connections(16)
        .open()?;
    println!("events in PostgreSQL: {}", store.describe());
    run(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &str) -> Result<(), Box<dyn std::error::Error>> {
    Err("--postgres needs the postgres feature: cargo run --example concurrent --features postgres -- --postgres <url>".into())
}

fn run<S: EventStore + 'static>(store: Arc<S>) -> Result<(), Box<dyn std::error::Error>> {
    let host = Host::<BankAccount, _>::new(store.clone());
    // Outnumbered seven to one, the second host is the one that keeps finding its instances
    // behind: give it more retries than the default.
    let other = Host::<BankAccount, _>::builder(store.clone())
        .max_retries(20)
        .build();

    // The bank refuses money for an account that is not open.
    for id in 0..ACCOUNTS {
        host.execute(id, BankAccountCommand::Open { initial: 0 })?;
    }

    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            // Most threads use the first host; one uses the second.
            let host = if t == 0 { other.clone() } else { host.clone() };
            thread::spawn(move || {
                let mut seed = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let (mut refused, mut gave_up) = (0u64, 0u64);
                for _ in 0..COMMANDS {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let account = seed % ACCOUNTS;
                    let amount = (seed >> 8) % 100 + 1;
                    let command = if (seed >> 20) % 2 == 0 {
                        BankAccountCommand::Deposit { amount }
                    } else {
                        BankAccountCommand::Withdraw { amount }
                    };
                    match host.execute(account, command) {
                        Ok(_) => {}
                        Err(ExecuteError::Rejected(_)) => refused += 1,
                        // The stream kept changing under the command: a caller may retry
                        // it or report it.
                        Err(ExecuteError::Conflict { .. }) => gave_up += 1,
                        Err(e) => panic!("command failed: {e}"),
                    }
                }
                (refused, gave_up)
            })
        })
        .collect();
    let (mut refused, mut gave_up) = (0, 0);
    for w in workers {
        let (r, g) = w.join().expect("a worker panicked");
        refused += r;
        gave_up += g;
    }
    let elapsed = start.elapsed();

    let total = THREADS * COMMANDS;
    println!(
        "{total} commands from {THREADS} threads in {elapsed:.2?} ({:.0} commands/s), \
         {refused} refused as overdrafts, {gave_up} gave up after repeated conflicts",
        total as f64 / elapsed.as_secs_f64()
    );

    // Every balance the host holds is the fold of its stream, and no prefix of any stream
    // goes below zero.
    for id in 0..ACCOUNTS {
        let stream = StreamId::new(BankAccount::NAME, id)?;
        let mut replayed = BankAccount::default();
        for e in store.read_stream(&stream, 1, usize::MAX)? {
            let event = e.decode::<BankAccountEvent>()?.payload;
            if let BankAccountEvent::Withdrawn { amount } = event {
                assert!(amount <= replayed.balance(), "account {id} overdrawn");
            }
            replayed.apply(event);
        }
        // A deposit through each host in turn: each catches up with what the other wrote
        // since its last command (a version conflict, then a retry), then agrees with the
        // store.
        for h in [&other, &host] {
            h.execute(id, BankAccountCommand::Deposit { amount: 1 })?;
            replayed.apply(BankAccountEvent::Deposited { amount: 1 });
            assert_eq!(h.state(id)?.balance(), replayed.balance());
        }
    }
    println!("all {ACCOUNTS} balances match their streams; none ever went below zero");

    let m = host.metrics();
    println!(
        "host 1: {} live instances, {} rehydrations, {} conflicts with host 2, {} retries",
        m.live, m.rehydrations, m.conflicts, m.retries
    );
    let m = other.metrics();
    println!(
        "host 2: {} live instances, {} conflicts with host 1, {} retries",
        m.live, m.conflicts, m.retries
    );
    Ok(())
}
