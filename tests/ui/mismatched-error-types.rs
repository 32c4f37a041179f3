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

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> Result<AccountEvent, Refused> {
        Ok(AccountEvent::Deposited { amount })
    }

    #[command]
    fn withdraw(&self, amount: u64) -> Result<AccountEvent, std::io::Error> {
        Ok(AccountEvent::Withdrawn { amount })
    }

    #[event]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }

    #[event]
    fn withdrawn(&mut self, amount: u64) {
        self.balance -= amount;
    }
}

fn main() {}
