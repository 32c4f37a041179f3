//! The classic bank demo: a teller types commands, a `Host` runs them against a bank account
//! stored in the embedded LMDB store, and a projection keeps every account's balance. Then the
//! customer's cash card is used at a cash machine: its commands consult the bank's services (a
//! clock for the daily limit, a fee schedule), which its host is given when it is built.
//!
//! The store lives in `target/es-examples/bank` (or the directory given as the first
//! argument), so each run continues the history of the ones before: it opens an account for a
//! new customer, and the read model shows the balances of them all.
//!
//! With `--postgres <connection string>` (and the `postgres` feature) the events live in
//! schema `bank` of that PostgreSQL database instead, shared by every machine that runs the
//! demo against it; the read model stays a file of this machine.
//!
//! ```sh
//! cargo run --example bank                 # run it twice: the second run continues the first
//! cargo run --example bank -- /tmp/bank    # a store of your own
//! cargo run --example bank --features postgres -- --postgres "host=/run/postgresql dbname=app"
//! ```

// Written as library modules would be, so their `pub` items are not reachable from here.
#[allow(unreachable_pub)]
mod account;
#[allow(unreachable_pub)]
mod atm;
#[allow(unreachable_pub)]
mod balances;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use es::prelude::*;

use crate::account::{BankAccount, BankAccountCommand, BankError, parse_amount};
use crate::atm::{BankServices, CashCard, CashCardCommand, FlatFee};
use crate::balances::Balances;

/// Reads a teller's line: `open`, `deposit <cents>`, `withdraw <cents>` or `close`.
fn parse_command(line: &str) -> Result<BankAccountCommand, BankError> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let arg = words.next().unwrap_or_default();
    Ok(match verb {
        "open" => BankAccountCommand::Open { initial: 0 },
        "deposit" => BankAccountCommand::Deposit {
            amount: parse_amount(arg)?,
        },
        "withdraw" => BankAccountCommand::Withdraw {
            amount: parse_amount(arg)?,
        },
        "close" => BankAccountCommand::Close,
        _ => return Err(BankError::UnknownCommand(line.to_owned())),
    })
}

/// Runs one teller line on `customer`'s account and prints what happened. A refusal is part
/// of the demo; any other failure (of the store, say) ends it.
fn teller<S: EventStore>(
    host: &Host<BankAccount, S>,
    customer: &str,
    line: &str,
) -> Result<(), ExecuteError<BankError>> {
    let outcome = parse_command(line)
        .map_err(ExecuteError::Rejected)
        .and_then(|command| host.execute(customer, command));
    match outcome {
        Ok(done) => {
            for e in done.events {
                println!("{line:<14} ok       v{}: {:?}", e.version, e.payload);
            }
        }
        Err(ExecuteError::Rejected(why)) => println!("{line:<14} refused  {why}"),
        Err(other) => return Err(other),
    }
    Ok(())
}

/// The first customer name no account uses yet.
fn new_customer(taken: impl Fn(&str) -> bool) -> String {
    const NAMES: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    (1..)
        .flat_map(|round| {
            NAMES.iter().map(move |name| match round {
                1 => (*name).to_owned(),
                n => format!("{name}{n}"),
            })
        })
        .find(|name| !taken(name))
        .expect("names never run out")
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/es-examples");
    if let [flag, url] = args.as_slice()
        && flag == "--postgres"
    {
        return postgres(url, &examples.join("bank-postgres"));
    }
    let dir = args
        .first()
        .map_or_else(|| examples.join("bank"), PathBuf::from);
    // The same demo in memory, where nothing outlives the run: `Arc::new(MemoryStore::new())`.
    run(Arc::new(LmdbStore::open(&dir)?), &dir)
}

#[cfg(feature = "postgres")]
fn postgres(url: &str, dir: &Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let store = es::PostgresOptions::new(url).schema("bank").open()?;
    println!("events in PostgreSQL: {}", store.describe());
    run(Arc::new(store), dir)
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &str, _: &Path) -> Result<(), Box<dyn Error>> {
    Err("--postgres needs the postgres feature: cargo run --example bank --features postgres -- --postgres <url>".into())
}

/// Withdrawals with `customer`'s cash card: the clock and the fee schedule are services of
/// the card's host, consulted by its `withdraw` command; its events record what they said.
fn cash_machine<S: EventStore + 'static>(
    store: Arc<S>,
    customer: &str,
) -> Result<(), Box<dyn Error>> {
    let services = BankServices {
        clock: Arc::new(es::SystemClock),
        fees: Arc::new(FlatFee {
            fee: 150,
            free_from: 10_000,
        }),
    };
    let cards = Host::<CashCard, _>::builder(store)
        .services(services)
        .build();
    println!(
        "\ncash machine, {customer}'s card (daily limit {}):",
        atm::DAILY_LIMIT
    );
    for amount in [2_000, 20_000, 30_000] {
        match cards.execute(customer, CashCardCommand::Withdraw { amount }) {
            Ok(done) => {
                for e in done.events {
                    println!(
                        "withdraw {amount:<6} ok       v{}: {:?}",
                        e.version, e.payload
                    );
                }
            }
            Err(ExecuteError::Rejected(why)) => println!("withdraw {amount:<6} refused  {why}"),
            Err(other) => return Err(other.into()),
        }
    }
    let card = cards.state(customer)?;
    println!(
        "taken out today: {}, fees paid: {}",
        card.withdrawn_today(),
        card.fees_paid()
    );
    Ok(())
}

/// The demo over `store`, with the read model's file in `dir`.
fn run<S: EventStore + 'static>(store: Arc<S>, dir: &Path) -> Result<(), Box<dyn Error>> {
    let shown = dir.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(dir);
    match store.head_position()? {
        0 => println!("store {}: new", shown.display()),
        n => println!(
            "store {}: {n} events from earlier runs; continuing",
            shown.display()
        ),
    }

    // The read model catches up with the earlier runs first, to know which customers exist.
    let model = Balances::open(&dir.join("balances.json"), &*store)?;
    let mut balances = ProjectionRunner::new(store.clone(), model);
    balances.catch_up()?;
    let customer = new_customer(|name| balances.projection().accounts().contains_key(name));

    let host = Host::<BankAccount, _>::new(store.clone());
    println!("\nteller, for {customer}:");
    for line in [
        "open",
        "deposit 100",
        "withdraw 10",
        "withdraw 1000",
        "withdraw -50",
        "deposit 0",
    ] {
        teller(&host, &customer, line)?;
    }
    let (before, version) = host.read(&customer, |account, v| (account.clone(), v))?;
    println!(
        "balance of {customer}: {} (version {version}, {})",
        before.balance(),
        if before.is_open() { "open" } else { "closed" }
    );

    // Drop the instance from memory: the next command loads it again from its events.
    host.passivate(&customer);
    println!("\npassivated {customer}; the next command reloads it from its {version} events:");
    teller(&host, &customer, "withdraw 1000")?;
    let after = host.state(&customer)?;
    let m = host.metrics();
    println!(
        "host metrics: {} commands, {} rehydrations, {} passivation",
        m.commands,
        m.rehydrations,
        m.passivations()
    );
    assert_eq!(
        after, before,
        "the rehydrated state differs from the state before"
    );
    println!("state after rehydration equals the state before: yes");

    cash_machine(store.clone(), &customer)?;

    // The read model follows the new events, then is saved for the next run.
    let from = balances.projection().position();
    let applied = balances.catch_up()?;
    balances.projection().save()?;
    println!(
        "\nbalances read model ({applied} new events applied, position {from} -> {}):",
        balances.checkpoint()?
    );
    for (id, balance) in balances.projection().accounts() {
        let closed = if balance.open { "" } else { " (closed)" };
        println!("  {id:<8} {:>6}{closed}", balance.cents);
    }
    Ok(())
}
