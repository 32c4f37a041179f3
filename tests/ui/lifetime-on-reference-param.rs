use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    owner: String,
}

#[aggregate]
impl Account {
    #[command]
    fn rename(&self, owner: String) -> AccountEvent {
        AccountEvent::Renamed { owner }
    }

    #[event]
    fn renamed(&mut self, owner: &'static str) {
        self.owner = owner.to_owned();
    }
}

fn main() {}
