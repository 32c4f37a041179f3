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

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }

    #[upcast(from = "Frozen", version = 2, retired)]
    fn frozen_v2(reason: String) -> Option<AccountEvent> {
        let _ = reason;
        None
    }
}

fn main() {}
