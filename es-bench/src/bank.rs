//! The bank account every workload runs, written with `#[aggregate]` as a user would.
//!
//! Every command and event carries a memo, so a stored event is about 200 bytes (see
//! [`PAYLOAD_BYTES`]): the size of a typical business event, rather than a bare number.

use es::NewEvent;
use es::prelude::*;

/// The memo every command carries: a transfer reference of the usual length.
pub const MEMO: &str = "SEPA credit transfer 2024-11-23 ref 7f3a9c21-0b6e-4c8d-9e15-3a2b7c4d5e6f \
                        from ACME Widgets GmbH, invoice 2024-000123, monthly retainer, thank you \
                        (quarterly review pending).";

/// The size of one stored `Deposited` payload, in bytes.
pub const PAYLOAD_BYTES: usize = 200;

/// Why the bank refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account is already open.
    #[error("the account is already open")]
    AlreadyOpen,
    /// The account is not open.
    #[error("the account is not open")]
    NotOpen,
    /// A withdrawal of more than the balance.
    #[error("insufficient funds")]
    InsufficientFunds,
}

/// A bank account holding a balance in cents.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankAccount {
    balance: u64,
    open: bool,
}

/// A bank account: opened, then money in and out, never below zero.
#[aggregate(name = "account")]
impl BankAccount {
    /// Open the account with a first deposit.
    #[command]
    pub fn open(&self, initial: u64, memo: String) -> Result<BankAccountEvent, BankError> {
        if self.open {
            return Err(BankError::AlreadyOpen);
        }
        Ok(BankAccountEvent::Opened { initial, memo })
    }

    /// Put money in.
    #[command]
    pub fn deposit(&self, amount: u64, memo: String) -> Result<BankAccountEvent, BankError> {
        if !self.open {
            return Err(BankError::NotOpen);
        }
        Ok(BankAccountEvent::Deposited { amount, memo })
    }

    /// Take money out; never below zero.
    #[command]
    pub fn withdraw(&self, amount: u64, memo: String) -> Result<BankAccountEvent, BankError> {
        if !self.open {
            return Err(BankError::NotOpen);
        }
        if amount > self.balance {
            return Err(BankError::InsufficientFunds);
        }
        Ok(BankAccountEvent::Withdrawn { amount, memo })
    }

    /// The account was opened.
    #[event]
    fn opened(&mut self, initial: u64, memo: &str) {
        let _ = memo;
        self.open = true;
        self.balance = initial;
    }

    /// Money was put in.
    #[event]
    fn deposited(&mut self, amount: u64, memo: &str) {
        let _ = memo;
        self.balance += amount;
    }

    /// Money was taken out.
    #[event]
    fn withdrawn(&mut self, amount: u64, memo: &str) {
        let _ = memo;
        self.balance -= amount;
    }

    /// The balance in cents.
    pub fn balance(&self) -> u64 {
        self.balance
    }
}

/// `Open` with an initial deposit of 100 and the memo.
pub fn open() -> BankAccountCommand {
    BankAccountCommand::Open {
        initial: 100,
        memo: MEMO.to_owned(),
    }
}

/// `Deposit` of `amount` with the memo.
pub fn deposit(amount: u64) -> BankAccountCommand {
    BankAccountCommand::Deposit {
        amount,
        memo: MEMO.to_owned(),
    }
}

/// Event `version` (1-based) of an account's history, encoded for the store: `Opened` first,
/// then deposits.
pub fn new_event(version: u64) -> NewEvent {
    let event = if version == 1 {
        BankAccountEvent::Opened {
            initial: 100,
            memo: MEMO.to_owned(),
        }
    } else {
        BankAccountEvent::Deposited {
            amount: version,
            memo: MEMO.to_owned(),
        }
    };
    NewEvent::from_event(&event, Metadata::default()).expect("bank events encode")
}

/// Writes events `from..=to` of `stream` in batches of 1000, straight to the store.
pub fn write_history(store: &impl EventStore, stream: &StreamId, from: u64, to: u64) {
    write_events(store, stream, from, to, new_event);
}

/// Writes the events `event(v)` for `v` in `from..=to` of `stream` in batches of 1000.
fn write_events(
    store: &impl EventStore,
    stream: &StreamId,
    from: u64,
    to: u64,
    event: fn(u64) -> NewEvent,
) {
    let mut v = from;
    while v <= to {
        let end = (v + 999).min(to);
        let batch = (v..=end).map(event).collect();
        store
            .append(stream, ExpectedVersion::Exact(v - 1), batch)
            .expect("history appends");
        v = end + 1;
    }
}

/// The bank account after a change of shape: a deposit's amount became [`Money`](evolved::Money)
/// (`Deposited` version 2). The deposits [`BankAccount`] stored (version 1, in the same
/// `account` streams) read through a one-step upcast.
pub mod evolved {
    use es::NewEvent;
    use es::prelude::*;

    use super::{BankError, MEMO};

    /// The currency of an amount.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Currency {
        /// Euros.
        Eur,
    }

    /// An amount of money: cents of a currency.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Money {
        /// The amount in cents.
        pub cents: u64,
        /// Its currency.
        pub currency: Currency,
    }

    /// A bank account holding a balance in cents.
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct EvolvedAccount {
        balance: u64,
        open: bool,
    }

    /// The bank account of [`super::BankAccount`], its deposits in [`Money`].
    #[aggregate(name = "account")]
    impl EvolvedAccount {
        /// Put money in.
        #[command]
        pub fn deposit(
            &self,
            amount: Money,
            memo: String,
        ) -> Result<EvolvedAccountEvent, BankError> {
            if !self.open {
                return Err(BankError::NotOpen);
            }
            Ok(EvolvedAccountEvent::Deposited { amount, memo })
        }

        /// The account was opened.
        #[event]
        fn opened(&mut self, initial: u64, memo: &str) {
            let _ = memo;
            self.open = true;
            self.balance = initial;
        }

        /// Money was put in.
        #[event(version = 2)]
        fn deposited(&mut self, amount: Money, memo: &str) {
            let _ = memo;
            self.balance += amount.cents;
        }

        /// Version 1 stored the amount as cents, all in euros.
        #[upcast(from = "Deposited", version = 1)]
        fn deposited_v1(amount: u64, memo: String) -> EvolvedAccountEvent {
            EvolvedAccountEvent::Deposited {
                amount: Money {
                    cents: amount,
                    currency: Currency::Eur,
                },
                memo,
            }
        }

        /// Money was taken out.
        #[event]
        fn withdrawn(&mut self, amount: u64, memo: &str) {
            let _ = memo;
            self.balance -= amount;
        }

        /// The balance in cents.
        pub fn balance(&self) -> u64 {
            self.balance
        }
    }

    /// Event `version` (1-based) of an account's history at the current shapes: `Opened`
    /// first, then deposits (`Deposited` version 2).
    pub fn new_event(version: u64) -> NewEvent {
        let event = if version == 1 {
            EvolvedAccountEvent::Opened {
                initial: 100,
                memo: MEMO.to_owned(),
            }
        } else {
            EvolvedAccountEvent::Deposited {
                amount: Money {
                    cents: version,
                    currency: Currency::Eur,
                },
                memo: MEMO.to_owned(),
            }
        };
        NewEvent::from_event(&event, Metadata::default()).expect("bank events encode")
    }

    /// Writes events `from..=to` of `stream` at the current shapes in batches of 1000; the
    /// same history at version 1 is [`super::write_history`]'s.
    pub fn write_history(store: &impl EventStore, stream: &StreamId, from: u64, to: u64) {
        super::write_events(store, stream, from, to, new_event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_about_200_bytes() {
        let len = new_event(2).payload.len();
        assert!(
            (PAYLOAD_BYTES - 10..=PAYLOAD_BYTES + 10).contains(&len),
            "{len}"
        );
    }

    #[test]
    fn the_bank_runs_on_a_host() {
        let host = es::Host::<BankAccount, _>::new(MemoryStore::new());
        host.execute(1, open()).unwrap();
        let done = host.execute(1, deposit(5)).unwrap();
        assert_eq!(done.version, 2);
        assert_eq!(host.state(1).unwrap().balance(), 105);
        assert!(host.execute(2, deposit(5)).is_err());
    }

    #[test]
    fn a_history_of_version_1_reads_as_the_same_at_version_2() {
        let store = MemoryStore::new();
        let (old, new) = (
            StreamId::new(BankAccount::NAME, "old").unwrap(),
            StreamId::new(BankAccount::NAME, "new").unwrap(),
        );
        write_history(&store, &old, 1, 1500);
        evolved::write_history(&store, &new, 1, 1500);
        let versions = |s: &StreamId| -> Vec<u32> {
            let read = store.read_stream(s, 1, usize::MAX).unwrap();
            read.iter().skip(1).map(|e| e.event_version).collect()
        };
        assert!(versions(&old).iter().all(|&v| v == 1));
        assert!(versions(&new).iter().all(|&v| v == 2));
        let host = es::Host::<evolved::EvolvedAccount, _>::new(store);
        let balance = host.state("old").unwrap().balance();
        assert_eq!(balance, 100 + (2..=1500).sum::<u64>());
        assert_eq!(host.state("new").unwrap().balance(), balance);
    }

    #[test]
    fn written_history_replays() {
        let store = MemoryStore::new();
        let stream = StreamId::new(BankAccount::NAME, 7).unwrap();
        write_history(&store, &stream, 1, 2500);
        let host = es::Host::<BankAccount, _>::new(store);
        assert_eq!(host.version(7).unwrap(), 2500);
    }
}
