use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// What the card's commands consult.
pub struct BankServices {
    pub fee: u64,
}

#[aggregate(services = BankServices)]
impl Card {
    #[command]
    fn redeem(&self, amount: u64, services: &BankServices) -> CardEvent {
        CardEvent::Redeemed { amount: amount + services.fee }
    }

    #[event]
    fn redeemed(&mut self, amount: u64, services: &BankServices) {
        self.used += amount + services.fee;
    }
}

fn main() {}
