use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[aggregate(error = Refused)]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> Result<AccountEvent, std::fmt::Error> {
        Ok(AccountEvent::Deposited { amount })
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {}
