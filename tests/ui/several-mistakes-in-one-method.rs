use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    async fn deposit<T>((amount, _): (u64, T), note: &mut String) -> Option<(AccountEvent,)> {
        let _ = note;
        Some((AccountEvent::Deposited { amount },))
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
