use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// A counter that is not `Sync`.
pub struct BankServices {
    pub calls: std::cell::Cell<u64>,
}

#[aggregate(services = BankServices)]
impl Card {
    #[command]
    fn redeem(&self, amount: u64, services: &BankServices) -> CardEvent {
        services.calls.set(services.calls.get() + 1);
        CardEvent::Redeemed { amount }
    }

    #[event]
    fn redeemed(&mut self, amount: u64) {
        self.used += amount;
    }
}

fn main() {}
