//! A bank account written by hand against the `Aggregate` trait, shared by the host tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::Cell;

use es_runtime::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A bank account that never goes below zero.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub deposits: u64,
    pub withdrawals: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
    /// Two deposits in one batch.
    DepositTwice(u64, u64),
    /// Emits nothing.
    Nothing,
    /// Panics in `handle`.
    Explode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &["Deposited", "Withdrawn"];
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("insufficient funds: balance {balance}, asked {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
    #[error("amounts must be positive")]
    Zero,
}

thread_local! {
    /// When set, applying a deposit of exactly this amount panics on this thread.
    pub static PANIC_ON_DEPOSIT_OF: Cell<Option<u64>> = const { Cell::new(None) };
}

impl Aggregate for Account {
    const NAME: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = BankError;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, BankError> {
        match command {
            AccountCommand::Deposit(0) | AccountCommand::Withdraw(0) => Err(BankError::Zero),
            AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            AccountCommand::Withdraw(amount) if amount > self.balance => {
                Err(BankError::InsufficientFunds {
                    balance: self.balance,
                    requested: amount,
                })
            }
            AccountCommand::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
            AccountCommand::DepositTwice(a, b) => Ok(vec![
                AccountEvent::Deposited { amount: a },
                AccountEvent::Deposited { amount: b },
            ]),
            AccountCommand::Nothing => Ok(vec![]),
            AccountCommand::Explode => panic!("the command exploded"),
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => {
                if PANIC_ON_DEPOSIT_OF.get() == Some(amount) {
                    panic!("applying a deposit of {amount} exploded");
                }
                self.balance += amount;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { amount } => {
                // Underflow panics in debug builds: an overdraft would show up as a panic.
                self.balance -= amount;
                self.withdrawals += 1;
            }
        }
    }
}

/// Replays events into a fresh account, checking it never goes below zero.
pub fn replay(events: impl IntoIterator<Item = AccountEvent>) -> Account {
    let mut account = Account::default();
    for e in events {
        if let AccountEvent::Withdrawn { amount } = e {
            assert!(
                amount <= account.balance,
                "overdrawn: {amount} > {}",
                account.balance
            );
        }
        account.apply(e);
    }
    account
}

/// The events of a stream, decoded, with their versions.
pub fn stream_events<S: es_runtime::EventStore>(store: &S, id: &str) -> Vec<(u64, AccountEvent)> {
    let stream = es_runtime::StreamId::new(Account::NAME, id).unwrap();
    store
        .read_stream(&stream, 1, u64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| {
            let e = e.decode::<AccountEvent>().unwrap();
            (e.version, e.payload)
        })
        .collect()
}
