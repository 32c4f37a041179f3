use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[event(version = 0)]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
