use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[derive(Debug)]
struct NotAnError;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> Result<AccountEvent, NotAnError> {
        Ok(AccountEvent::Deposited { amount })
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
