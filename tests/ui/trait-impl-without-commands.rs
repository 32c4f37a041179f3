use es::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Default for Account {
    fn default() -> Self {
        Account { balance: 0 }
    }
}

fn main() {}
