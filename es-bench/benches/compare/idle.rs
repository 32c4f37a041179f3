//! Memory held per live, idle aggregate instance in the host.

use es::{Aggregate, Host, MemoryStore, StreamId};
use es_bench::alloc;
use es_bench::bank::{self, BankAccount};

use crate::{Config, Summary};

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let n: u64 = cfg.pick(100_000, 10_000);
    let store = MemoryStore::new();
    for id in 0..n {
        let stream = StreamId::new(BankAccount::NAME, id).unwrap();
        bank::write_history(&store, &stream, 1, 1);
    }
    let host = Host::<BankAccount, _>::builder(store)
        .max_live(2 * n as usize)
        .build();
    // Room for all: the bound is split between shards, which fill unevenly. The first
    // instance sets up what every later one shares.
    host.version(0).unwrap();
    alloc::start();
    for id in 1..n {
        host.version(id).unwrap();
    }
    let held = alloc::stop();
    assert_eq!(host.metrics().live, n);
    let per = held as f64 / (n - 1) as f64;
    let state = size_of::<BankAccount>();

    println!("## Memory per live idle aggregate\n");
    println!(
        "{n} bank accounts loaded into one host (one event each), counting the bytes the \
         process allocates and keeps while instances 2 to {n} load. cqrs-es keeps no live \
         aggregates (it reloads from the store on every command), so it has no such cost.\n"
    );
    println!(
        "| state (`size_of::<BankAccount>()`) | held per live instance | overhead |\n\
         | --- | --- | --- |\n\
         | {state} B | {per:.0} B | {:.0} B |\n",
        per - state as f64
    );
    summary.goal(
        "memory per live idle account",
        &format!("≤ state + 256 B = {} B", state + 256),
        format!("{per:.0} B"),
        per <= (state + 256) as f64,
    );
}
