use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate(snapshot = 5, name = "account", state_version = -1)]
impl Account {
    #[command]
    fn deposit(&mut self, amount: u64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[command]
    fn withdraw(self, amount: u64) -> AccountEvent {
        AccountEvent::Withdrawn { amount }
    }

    #[event]
    fn deposited(&self, amount: u64) {
        println!("{amount}");
    }

    #[event]
    fn withdrawn(&mut self, amount: u64) -> bool {
        self.balance -= amount;
        true
    }
}

fn main() {}
