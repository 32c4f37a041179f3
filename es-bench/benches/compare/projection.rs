//! Rebuilding a projection over the global log of an LMDB store holding 1M events (100k with
//! `--quick`), written by 1000 accounts in interleaved batches.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use es::projection::{Envelope, Projection, ProjectionRunner};
use es::store::lmdb::{Table as LmdbTable, TableProjection, TableRunner};
use es::{Aggregate, Durability, EventStore, LmdbOptions, StreamId};
use es_bench::bank::{self, BankAccount, BankAccountEvent};
use es_bench::{Table, alternate, bench_dir, ms, per_sec, rate, time};

use crate::{Config, Summary};

const ACCOUNTS: u64 = 1000;
const BATCH: u64 = 100;

/// Every account's balance: a read model with a lookup and an update per event.
#[derive(Debug, Default)]
pub(crate) struct Balances {
    pub(crate) by_account: HashMap<String, u64>,
}

impl Projection for Balances {
    type Event = BankAccountEvent;
    type Error = std::convert::Infallible;

    fn name(&self) -> &str {
        "balances"
    }

    fn categories(&self) -> &[&str] {
        &[BankAccount::NAME]
    }

    fn apply(&mut self, e: Envelope<'_, BankAccountEvent>) -> Result<(), Self::Error> {
        let id = e.aggregate_id();
        let balance = match self.by_account.get_mut(id) {
            Some(b) => b,
            None => self.by_account.entry(id.to_owned()).or_default(),
        };
        match e.event {
            BankAccountEvent::Opened { initial, .. } => *balance = *initial,
            BankAccountEvent::Deposited { amount, .. } => *balance += amount,
            BankAccountEvent::Withdrawn { amount, .. } => *balance -= amount,
        }
        Ok(())
    }

    fn reset(&mut self) -> Result<(), Self::Error> {
        self.by_account.clear();
        Ok(())
    }
}

/// The same read model as a table inside the store, updated exactly once.
struct TableBalances;

impl TableProjection for TableBalances {
    type Event = BankAccountEvent;
    type Error = std::convert::Infallible;

    fn name(&self) -> &str {
        "table_balances"
    }

    fn apply(
        &self,
        table: &mut LmdbTable<'_>,
        e: Envelope<'_, BankAccountEvent>,
    ) -> Result<(), Self::Error> {
        table.update(e.aggregate_id(), |balance: &mut u64| match e.event {
            BankAccountEvent::Opened { initial, .. } => *balance = *initial,
            BankAccountEvent::Deposited { amount, .. } => *balance += amount,
            BankAccountEvent::Withdrawn { amount, .. } => *balance -= amount,
        });
        Ok(())
    }
}

pub(crate) fn run(cfg: &Config, _: &mut Summary) {
    let events: u64 = cfg.pick(1_000_000, 100_000);
    let dir = bench_dir(&cfg.root);
    let write = time(|| {
        let store = LmdbOptions::new()
            .durability(Durability::NoSync)
            .map_size(2 << 30)
            .open(dir.path())
            .unwrap();
        let streams: Vec<StreamId> = (0..ACCOUNTS)
            .map(|a| StreamId::new(BankAccount::NAME, a).unwrap())
            .collect();
        let per_account = events / ACCOUNTS;
        for from in (1..=per_account).step_by(BATCH as usize) {
            for s in &streams {
                bank::write_history(&store, s, from, (from + BATCH - 1).min(per_account));
            }
        }
        store.sync().unwrap();
    });
    // Checkpoints are durable, as they would be in use.
    let store = Arc::new(
        LmdbOptions::new()
            .durability(Durability::Sync)
            .open(dir.path())
            .unwrap(),
    );
    assert_eq!(store.head_position().unwrap(), events);

    let rebuild = |checkpoint_every: Option<u64>| {
        let store = store.clone();
        move || {
            let mut runner = ProjectionRunner::new(store.clone(), Balances::default());
            if let Some(n) = checkpoint_every {
                runner = runner.checkpoint_every(n);
            }
            let d = time(|| {
                assert_eq!(runner.rebuild(|_| {}).unwrap(), events);
            });
            assert_eq!(runner.projection().by_account.len(), ACCOUNTS as usize);
            d
        }
    };
    let mut default = rebuild(None);
    let mut every_1000 = rebuild(Some(1000));
    let mut once = rebuild(Some(events));
    let table = |chunk: Option<u64>| {
        let store = store.clone();
        move || {
            let mut runner = TableRunner::new(store.clone(), TableBalances);
            if let Some(n) = chunk {
                runner = runner.checkpoint_every(n);
            }
            let d = time(|| {
                assert_eq!(runner.rebuild(|_| {}).unwrap(), events);
            });
            let accounts = runner.read(|t| t.len().unwrap()).unwrap();
            assert_eq!(accounts, ACCOUNTS as usize);
            d
        }
    };
    let mut table_default = table(None);
    let mut table_large = table(Some(100_000));
    let mut sum = 0u64;
    let mut floor = || {
        time(|| {
            store
                .read_all_with(1, &mut |e| {
                    match e.decode::<BankAccountEvent>().unwrap() {
                        BankAccountEvent::Opened { initial: a, .. }
                        | BankAccountEvent::Deposited { amount: a, .. }
                        | BankAccountEvent::Withdrawn { amount: a, .. } => sum += a,
                    }
                    ControlFlow::Continue(())
                })
                .unwrap();
        })
    };
    let rounds = cfg.pick(5, 3);
    let [default, every_1000, once, table_default, table_large, floor] = alternate(
        rounds,
        [
            &mut default,
            &mut every_1000,
            &mut once,
            &mut table_default,
            &mut table_large,
            &mut floor,
        ],
    );
    std::hint::black_box(sum);

    println!("## Projection rebuild over {events} events (LmdbStore)\n");
    println!(
        "`ProjectionRunner::rebuild` of a balance-per-account read model over {events} events of \
         {ACCOUNTS} accounts (written in batches of {BATCH} per account, interleaved, in {:.1} s \
         without fsync){}. Durable checkpoints; warm page cache. The `TableRunner` rows keep \
         the same balances in a table inside the store, written with the checkpoint in one \
         durable transaction per chunk.\n",
        write.as_secs_f64(),
        if cfg.quick {
            "; --quick uses 100k events instead of 1M"
        } else {
            ""
        }
    );
    let mut t = Table::new(&["", "time", "events/s"]);
    for (name, d) in [
        (
            "rebuild, checkpoint every 10000 positions (default)",
            default,
        ),
        ("rebuild, checkpoint every 1000 positions", every_1000),
        ("rebuild, one checkpoint at the end", once),
        (
            "TableRunner rebuild (exactly once), 1000 positions per transaction (default)",
            table_default,
        ),
        (
            "TableRunner rebuild (exactly once), 100000 positions per transaction",
            table_large,
        ),
        ("read_all_with + decode, no runner (floor)", floor),
    ] {
        t.row(vec![name.into(), ms(d), per_sec(rate(events, d))]);
    }
    t.print();
}
