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

    #[command]
    fn deposit_(&self, amount: u64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
