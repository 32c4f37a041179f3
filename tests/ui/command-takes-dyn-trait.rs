// A service taken as a command parameter: one error, naming the way that works, instead of
// the serde derives' errors for a field that cannot be stored.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

pub trait Clock {
    fn now(&self) -> u64;
}

#[aggregate]
impl Card {
    #[command]
    fn redeem(&self, amount: u64, clock: &dyn Clock) -> CardEvent {
        CardEvent::Redeemed { amount, at: clock.now() }
    }

    #[event]
    fn redeemed(&mut self, amount: u64, at: u64) {
        let _ = at;
        self.used += amount;
    }
}

fn main() {}
