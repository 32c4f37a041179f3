use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> Vec<u64> {
        vec![amount]
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
