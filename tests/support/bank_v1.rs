//! The bank account as it was first written: the owner a plain name, the fee inside the
//! withdrawal, accounts that can be frozen. Events stored by this code are version 1 of the
//! evolved aggregates of the tests that include it.

use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BankAccount {
    pub balance: u64,
}

#[aggregate]
impl BankAccount {
    #[command]
    fn open(&self, name: String, initial: u64) -> BankAccountEvent {
        BankAccountEvent::Opened { name, initial }
    }

    #[command]
    fn withdraw(&self, amount: u64, fee: u64) -> BankAccountEvent {
        BankAccountEvent::Withdrawn { amount, fee }
    }

    #[command]
    fn freeze(&self, reason: String) -> BankAccountEvent {
        BankAccountEvent::Frozen { reason }
    }

    #[event]
    fn opened(&mut self, name: String, initial: u64) {
        let _ = name;
        self.balance = initial;
    }

    #[event]
    fn withdrawn(&mut self, amount: u64, fee: u64) {
        self.balance -= amount + fee;
    }

    #[event]
    fn frozen(&mut self, reason: String) {
        let _ = reason;
    }
}
