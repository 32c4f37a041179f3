use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[event]
    fn deposited(&self, amount: u64) {
        println!("{amount}");
    }
}

fn main() {}
