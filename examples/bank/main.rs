//! The classic bank demo on the in-memory store: a teller reads commands as text, and the
//! account accepts or refuses them.
//!
//! The plumbing (load the stream, handle, append with the expected version) is written out
//! here; it is what a host does for you.

// Written as a library module would be, so its `pub` items are not reachable from here.
#[allow(unreachable_pub)]
mod account;

use std::error::Error;

use es::prelude::*;
use es::{NewEvent, RecordedEvent};

use crate::account::{BankAccount, BankAccountCommand, BankError, parse_amount};

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

/// Rebuilds the account from its stream.
fn load(store: &MemoryStore, stream: &StreamId) -> Result<(BankAccount, u64), Box<dyn Error>> {
    let mut account = BankAccount::default();
    let mut version = 0;
    for recorded in store.read_stream(stream, 1, u64::MAX)? {
        version = recorded.version;
        account.apply(recorded.decode()?.payload);
    }
    Ok((account, version))
}

/// Loads the account, runs one command and appends the events it decided.
fn execute(
    store: &MemoryStore,
    stream: &StreamId,
    command: BankAccountCommand,
) -> Result<Vec<RecordedEvent>, Box<dyn Error>> {
    let (account, version) = load(store, stream)?;
    let events = account.handle(command)?;
    let new_events = events
        .iter()
        .map(|e| NewEvent::from_event(e, Metadata::default()))
        .collect::<Result<Vec<_>, _>>()?;
    store.append(stream, ExpectedVersion::Exact(version), new_events)?;
    Ok(store.read_stream(stream, version + 1, u64::MAX)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let store = MemoryStore::new();
    let stream = StreamId::new(BankAccount::NAME, "alice")?;

    for line in [
        "open",
        "deposit 100",
        "withdraw 10",
        "withdraw 1000",
        "withdraw -50",
        "deposit 0",
    ] {
        let outcome = parse_command(line)
            .map_err(Box::<dyn Error>::from)
            .and_then(|command| execute(&store, &stream, command));
        match outcome {
            Ok(events) => {
                for e in events {
                    println!(
                        "{line:<15} ok       {stream} v{}: {} {}",
                        e.version,
                        e.event_type,
                        e.payload_json()?
                    );
                }
            }
            Err(error) => println!("{line:<15} refused  {error}"),
        }
    }

    let (account, version) = load(&store, &stream)?;
    println!(
        "balance of {stream}: {} (after {version} events; open: {})",
        account.balance(),
        account.is_open()
    );
    Ok(())
}
