use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// What the card's commands consult.
pub struct BankServices {
    pub fee: u64,
}

pub struct ShopServices;

#[aggregate(services = BankServices)]
impl Card {
    #[command]
    fn redeem(&self, amount: u64, services: &ShopServices) -> CardEvent {
        let _ = services;
        CardEvent::Redeemed { amount }
    }

    #[event]
    fn redeemed(&mut self, amount: u64) {
        self.used += amount;
    }
}

fn main() {}
