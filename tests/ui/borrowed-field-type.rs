use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn tag(&self, tags: Vec<&str>) -> AccountEvent {
        AccountEvent::Tagged { count: tags.len() }
    }

    #[event]
    fn tagged(&mut self, count: usize) {
        self.balance += count as u64;
    }
}

fn main() {}
