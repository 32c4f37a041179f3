//! The peer: cqrs-es with its in-memory store (`MemStore`), running the same bank account with
//! the same events, against the `es` host over `MemoryStore`, one thread each.
//!
//! cqrs-es keeps no aggregate in memory: every command loads the aggregate's whole history
//! from the store (cloning every event), applies it, handles the command and commits, which
//! copies the history once more. Its `MemStore` also prints a line per load and per commit;
//! those lines go to `/dev/null` while cqrs-es runs (see [`Silenced`]).

use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::{MemStore, MemStoreAggregateContext};
use cqrs_es::{CqrsFramework, EventStore};
use es::{Host, MemoryStore};
use es_bench::bank::{self, BankAccount, BankError, MEMO};
use es_bench::{Table, alternate, per_sec, rate, time, times};
use serde::{Deserialize, Serialize};

use crate::{Config, Summary};

/// The bank account for cqrs-es: the same state, commands and events as
/// [`es_bench::bank::BankAccount`].
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Account {
    balance: u64,
    open: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Open { initial: u64, memo: String },
    Deposit { amount: u64, memo: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Event {
    Opened { initial: u64, memo: String },
    Deposited { amount: u64, memo: String },
}

impl cqrs_es::DomainEvent for Event {
    fn event_type(&self) -> String {
        match self {
            Event::Opened { .. } => "Opened".to_owned(),
            Event::Deposited { .. } => "Deposited".to_owned(),
        }
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl cqrs_es::Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = Command;
    type Event = Event;
    type Error = BankError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), BankError> {
        let event = match command {
            Command::Open { .. } if self.open => return Err(BankError::AlreadyOpen),
            Command::Open { initial, memo } => Event::Opened { initial, memo },
            Command::Deposit { .. } if !self.open => return Err(BankError::NotOpen),
            Command::Deposit { amount, memo } => Event::Deposited { amount, memo },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Opened { initial, .. } => {
                self.open = true;
                self.balance = initial;
            }
            Event::Deposited { amount, .. } => self.balance += amount,
        }
    }
}

pub(crate) type Framework = CqrsFramework<Account, MemStore<Account>>;

pub(crate) fn open() -> Command {
    Command::Open {
        initial: 100,
        memo: MEMO.to_owned(),
    }
}

pub(crate) fn deposit(amount: u64) -> Command {
    Command::Deposit {
        amount,
        memo: MEMO.to_owned(),
    }
}

/// A framework over a fresh store, and the store.
pub(crate) fn framework() -> (Framework, MemStore<Account>) {
    let store = MemStore::<Account>::default();
    (CqrsFramework::new(store.clone(), vec![], ()), store)
}

/// Commits `n` events (an `Opened`, then deposits) to aggregate `id` in one go, as a history.
pub(crate) fn write_history(rt: &Runtime, store: &MemStore<Account>, id: &str, n: u64) {
    let events = (1..=n)
        .map(|v| {
            if v == 1 {
                Event::Opened {
                    initial: 100,
                    memo: MEMO.to_owned(),
                }
            } else {
                Event::Deposited {
                    amount: v,
                    memo: MEMO.to_owned(),
                }
            }
        })
        .collect();
    let context = MemStoreAggregateContext {
        aggregate_id: id.to_owned(),
        aggregate: Account::default(),
        current_sequence: 0,
    };
    let _quiet = Silenced::new();
    rt.block_on(store.commit(events, context, HashMap::new()))
        .unwrap();
}

pub(crate) type Runtime = tokio::runtime::Runtime;

/// A single-threaded tokio runtime to drive cqrs-es's futures.
pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
}

/// Sends the process's standard output to `/dev/null` until dropped.
pub(crate) struct Silenced {
    saved: libc::c_int,
}

impl Silenced {
    pub(crate) fn new() -> Self {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // SAFETY: plain descriptor calls on descriptors this process owns; the saved copy of
        // stdout is restored and closed in `drop`.
        unsafe {
            let saved = libc::dup(1);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            assert!(saved >= 0 && null >= 0, "could not redirect stdout");
            libc::dup2(null, 1);
            libc::close(null);
            Silenced { saved }
        }
    }
}

impl Drop for Silenced {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        // SAFETY: `saved` is the descriptor `new` duplicated from stdout.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}

/// Same workload, both frameworks: `accounts` fresh accounts, each opened and then given
/// deposits, `per_account` commands each, round robin.
fn workload(cfg: &Config, rt: &Runtime, accounts: u64, per_account: u64) -> [Duration; 2] {
    let mut es = || {
        let host = Host::<BankAccount, _>::new(MemoryStore::new());
        time(|| {
            for i in 0..accounts * per_account {
                let command = if i < accounts {
                    bank::open()
                } else {
                    bank::deposit(1)
                };
                host.execute(i % accounts, command).unwrap();
            }
        })
    };
    let ids: Vec<String> = (0..accounts).map(|a| a.to_string()).collect();
    let mut cqrs = || {
        let (cqrs, _store) = framework();
        let _quiet = Silenced::new();
        rt.block_on(async {
            time_async(async {
                for i in 0..accounts * per_account {
                    let command = if i < accounts { open() } else { deposit(1) };
                    cqrs.execute(&ids[(i % accounts) as usize], command)
                        .await
                        .unwrap();
                }
            })
            .await
        })
    };
    alternate(cfg.rounds, [&mut es, &mut cqrs])
}

pub(crate) async fn time_async(f: impl Future<Output = ()>) -> Duration {
    let start = std::time::Instant::now();
    f.await;
    start.elapsed()
}

pub(crate) fn run(cfg: &Config, _: &mut Summary) {
    let rt = runtime();
    println!("## The peer: cqrs-es 0.5 (MemStore) vs es (Host over MemoryStore), one thread\n");
    println!(
        "The same bank account, the same ~200-byte events, from empty stores; commands per \
         second.\n"
    );
    let mut t = Table::new(&["workload", "es", "cqrs-es", "es / cqrs-es"]);
    let per_account = cfg.pick(10, 5);
    for (accounts, per_account, name) in [
        (
            1000,
            per_account,
            format!("1000 fresh accounts, {per_account} commands each, round robin"),
        ),
        (
            1,
            1000,
            "1 fresh account, 1000 commands (history grows to 1000)".to_owned(),
        ),
    ] {
        let n = accounts * per_account;
        let [es, cqrs] = workload(cfg, &rt, accounts, per_account);
        let (es, cqrs) = (rate(n, es), rate(n, cqrs));
        t.row(vec![name, per_sec(es), per_sec(cqrs), times(es / cqrs)]);
    }
    t.print();
    println!(
        "How each one's cost grows with the history of the aggregate is in the next section.\n"
    );
}
