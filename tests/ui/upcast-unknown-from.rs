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

    #[event(version = 2)]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }

    #[upcast(from = "Deposited", version = 1)]
    fn deposited_v1(cents: u64) -> AccountEvent {
        AccountEvent::Deposited { amount: cents / 100 }
    }

    #[upcast(from = "Deposit", version = 1)]
    fn deposit_v1(cents: u64) -> AccountEvent {
        AccountEvent::Deposited { amount: cents / 100 }
    }
}

fn main() {}
