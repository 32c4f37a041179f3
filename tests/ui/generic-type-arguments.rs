use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet<T> {
    coins: Vec<T>,
}

#[aggregate]
impl Wallet<u64> {
    #[command]
    fn add(&self, coin: u64) -> WalletEvent {
        WalletEvent::Added { coin }
    }

    #[event]
    fn added(&mut self, coin: u64) {
        self.coins.push(coin);
    }
}

fn main() {}
