use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet<T> {
    coins: Vec<T>,
}

#[aggregate]
impl<T> Wallet<T> {
    #[command]
    fn add(&self, coin: T) -> WalletEvent<T> {
        WalletEvent::Added { coin }
    }

    #[command]
    fn empty(&self) -> WalletEvent {
        WalletEvent::Emptied
    }

    #[event]
    fn added(&mut self, coin: T) {
        self.coins.push(coin);
    }

    #[event]
    fn emptied(&mut self) {
        self.coins.clear();
    }
}

fn main() {}
