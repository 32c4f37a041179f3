//! A bank account written by hand against the `Aggregate` trait, shared by the integration tests.
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
    type Services = ();

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
        .read_stream(&stream, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| {
            let e = e.decode::<AccountEvent>().unwrap();
            (e.version, e.payload)
        })
        .collect()
}

/// A small deterministic generator, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Two hosts, two threads each, on the same three accounts of `store`: every accepted command
/// is stored once, refusals are for want of funds only (conflicts are retried), each stream's
/// versions run 1..=n, no replay overdraws, and both hosts end with the store's state.
pub fn two_hosts_on_one_store_agree<S: es_runtime::EventStore + 'static>(store: std::sync::Arc<S>) {
    use std::sync::{Arc, Barrier};

    use es_runtime::{ExecuteError, Host};

    let host = || {
        Host::<Account, _>::builder(store.clone())
            .max_retries(50)
            .build()
    };
    let hosts = [host(), host()];
    let start = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let host = hosts[(t % 2) as usize].clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(t + 11);
                let mut deposited = [0u64; 3];
                let mut withdrawn = [0u64; 3];
                start.wait();
                for _ in 0..2_000 {
                    let account = (rng.next() % 3) as usize;
                    let amount = rng.next() % 10 + 1;
                    if rng.next().is_multiple_of(3) {
                        match host.execute(account, AccountCommand::Withdraw(amount)) {
                            Ok(_) => withdrawn[account] += amount,
                            Err(ExecuteError::Rejected(BankError::InsufficientFunds {
                                ..
                            })) => {}
                            Err(e) => panic!("withdrawing {amount} from {account}: {e}"),
                        }
                    } else {
                        host.execute(account, AccountCommand::Deposit(amount))
                            .unwrap();
                        deposited[account] += amount;
                    }
                }
                (deposited, withdrawn)
            })
        })
        .collect();
    let mut balance = [0i128; 3];
    for w in workers {
        let (deposited, withdrawn) = w.join().unwrap();
        for i in 0..3 {
            balance[i] += i128::from(deposited[i]) - i128::from(withdrawn[i]);
        }
    }
    let conflicts: u64 = hosts.iter().map(|h| h.metrics().conflicts).sum();
    assert!(
        conflicts > 0,
        "two hosts on the same streams should conflict"
    );
    for (account, expected) in balance.iter().enumerate() {
        let events = stream_events(&*store, &account.to_string());
        let versions: Vec<u64> = events.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
        let stored = replay(events.into_iter().map(|(_, e)| e));
        assert_eq!(i128::from(stored.balance), *expected, "account {account}");
        // Each host catches up with the other's writes on its next use.
        for host in &hosts {
            host.execute(account, AccountCommand::Nothing).unwrap();
            assert_eq!(host.state(account).unwrap(), stored);
        }
    }
}

/// Drives a future to completion on this thread, parking it between polls: no async runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
