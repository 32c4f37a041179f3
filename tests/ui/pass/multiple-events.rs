//! A command that emits several events, of different kinds, in a `Vec`.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Transfer {
    debited: u64,
    credited: u64,
}

#[aggregate]
impl Transfer {
    #[command]
    fn run(&self, amount: u64, fee: u64) -> Vec<TransferEvent> {
        vec![
            TransferEvent::Debited { amount: amount + fee },
            TransferEvent::Credited { amount },
        ]
    }

    #[event]
    fn debited(&mut self, amount: u64) {
        self.debited += amount;
    }

    #[event]
    fn credited(&mut self, amount: u64) {
        self.credited += amount;
    }
}

fn main() {
    let mut t = Transfer::default();
    let events = t.handle(TransferCommand::Run { amount: 10, fee: 1 }).unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        t.apply(e);
    }
    assert_eq!((t.debited, t.credited), (11, 10));
    assert_eq!(Transfer::schema().command("Run").unwrap().emits, ["Debited", "Credited"]);
}
