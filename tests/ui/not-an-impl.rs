use es::prelude::*;

#[aggregate]
struct Ledger {
    entries: Vec<u64>,
}

fn main() {}
