//! The host over the in-memory store, one thread: commands per second on one account and
//! round robin over 1000, with the store's own appends as the floor.

use es::{Aggregate, EventStore, ExpectedVersion, Host, MemoryStore, StreamId};
use es_bench::bank::{self, BankAccount};
use es_bench::{Table, alternate, per_sec, rate, time};

use crate::{Config, Summary};

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let n: u64 = cfg.pick(500_000, 100_000);
    let host_on = |accounts: u64| {
        move || {
            let host = Host::<BankAccount, _>::new(MemoryStore::new());
            for id in 0..accounts {
                host.execute(id, bank::open()).unwrap();
            }
            time(|| {
                for i in 0..n {
                    host.execute(i % accounts, bank::deposit(1)).unwrap();
                }
            })
        }
    };
    let mut one = host_on(1);
    let mut thousand = host_on(1000);
    // What the host adds to: encoding the event and appending it, with no instance, no
    // routing, no decision.
    let mut floor = || {
        let store = MemoryStore::new();
        let streams: Vec<StreamId> = (0..1000u64)
            .map(|id| StreamId::new(BankAccount::NAME, id).unwrap())
            .collect();
        for s in &streams {
            bank::write_history(&store, s, 1, 1);
        }
        time(|| {
            for i in 0..n {
                let a = (i % 1000) as usize;
                let event = bank::BankAccountEvent::Deposited {
                    amount: 1,
                    memo: bank::MEMO.to_owned(),
                };
                let new = es::NewEvent::from_event(&event, Default::default()).unwrap();
                store
                    .append(&streams[a], ExpectedVersion::Exact(1 + i / 1000), vec![new])
                    .unwrap();
            }
        })
    };
    let [one, thousand, floor] = alternate(cfg.rounds, [&mut one, &mut thousand, &mut floor]);
    let (one, thousand, floor) = (rate(n, one), rate(n, thousand), rate(n, floor));

    println!("## In-memory host, one thread ({n} commands of ~200-byte events)\n");
    let mut t = Table::new(&["", "commands/s", "vs store alone"]);
    let vs = |r: f64| format!("{:.0}%", 100.0 * r / floor);
    t.row(vec!["Host, 1 account".into(), per_sec(one), vs(one)]);
    t.row(vec![
        "Host, 1000 accounts round robin".into(),
        per_sec(thousand),
        vs(thousand),
    ]);
    t.row(vec![
        "MemoryStore::append alone (encode + append, 1000 streams)".into(),
        per_sec(floor),
        "100%".into(),
    ]);
    t.print();
    summary.goal(
        "in-memory host, 1 thread, 1000 accounts",
        "≥ 2M commands/s",
        per_sec(thousand),
        thousand >= 2e6,
    );
}
