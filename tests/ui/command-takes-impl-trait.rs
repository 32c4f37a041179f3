use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// What the card's commands consult.
pub struct BankServices {
    pub fee: u64,
}

pub trait Prices {
    fn price(&self, item: &str) -> u64;
}

#[aggregate(services = BankServices)]
impl Card {
    #[command]
    fn buy(&self, item: String, prices: impl Prices) -> CardEvent {
        CardEvent::Bought { amount: prices.price(&item) }
    }

    #[event]
    fn bought(&mut self, amount: u64) {
        self.used += amount;
    }
}

fn main() {}
