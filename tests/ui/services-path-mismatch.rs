// The parameter names a type of the same name as the declared services, in another module:
// rustc reports the mismatch on the parameter's type.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// What the card's commands consult.
pub struct BankServices {
    pub fee: u64,
}

mod other {
    pub struct BankServices;
}

#[aggregate(services = BankServices)]
impl Card {
    #[command]
    fn redeem(&self, amount: u64, services: &other::BankServices) -> CardEvent {
        let _ = services;
        CardEvent::Redeemed { amount }
    }

    #[event]
    fn redeemed(&mut self, amount: u64) {
        self.used += amount;
    }
}

fn main() {}
