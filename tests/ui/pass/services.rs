// Services in any position, beside commands that take none, with an upcast; the host and the
// helper pass them.
use std::sync::atomic::{AtomicU64, Ordering};

use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Card {
    used: u64,
}

/// What the card's commands consult.
#[derive(Default)]
pub struct BankServices {
    pub fee: u64,
    pub asked: AtomicU64,
}

#[aggregate(services = self::BankServices)]
impl Card {
    #[command]
    fn redeem(&self, services: &BankServices, amount: u64, note: &str) -> CardEvent {
        services.asked.fetch_add(1, Ordering::SeqCst);
        let _ = note;
        CardEvent::Redeemed { amount, fee: services.fee }
    }

    #[command]
    fn reset(&self) -> Option<CardEvent> {
        (self.used > 0).then_some(CardEvent::WasReset)
    }

    #[event(version = 2)]
    fn redeemed(&mut self, amount: u64, fee: u64) {
        self.used += amount + fee;
    }

    #[upcast(from = "Redeemed", version = 1)]
    fn redeemed_v1(amount: u64) -> CardEvent {
        CardEvent::Redeemed { amount, fee: 0 }
    }

    #[event]
    fn was_reset(&mut self) {
        self.used = 0;
    }
}

fn main() {
    let services = BankServices { fee: 2, ..BankServices::default() };
    let host = es::Host::<Card, _>::builder(es::MemoryStore::new()).services(services).build();
    let done = host
        .execute("a", CardCommand::Redeem { amount: 10, note: "x".into() })
        .unwrap();
    assert_eq!(done.events[0].payload, CardEvent::Redeemed { amount: 10, fee: 2 });
    host.execute("a", CardCommand::Reset).unwrap();
    assert_eq!(host.read("a", |card, _| card.used).unwrap(), 0);
}
