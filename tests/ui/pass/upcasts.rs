use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Money {
    cents: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[event(version = 3)]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// Version 1 stored whole units.
    #[upcast(from = "Deposited", version = 1)]
    fn deposited_v1(units: u64) -> AccountEvent {
        Self::deposited_v2(&Money { cents: units * 100 })
    }

    #[upcast(from = "Deposited", version = 2)]
    fn deposited_v2(amount: &Money) -> AccountEvent {
        AccountEvent::Deposited { amount: amount.cents }
    }

    #[upcast(from = "Moved", version = 1, retired)]
    fn moved_v1(#[serde(default)] amount: u64) -> Vec<AccountEvent> {
        vec![AccountEvent::Deposited { amount }; 2]
    }

    #[upcast(from = "Frozen", version = 1, retired)]
    fn frozen_v1() -> Option<AccountEvent> {
        None
    }
}

fn main() {}
