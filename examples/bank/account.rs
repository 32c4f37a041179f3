//! A bank account: the classic event-sourcing demo, as an `es` aggregate.
//!
//! Amounts are whole cents in a `u64`, so a negative amount cannot be written in Rust; an
//! amount of zero is refused by every command with [`BankError::ZeroAmount`], and
//! [`parse_amount`] refuses text such as `-50` with [`BankError::NegativeAmount`].

use es::prelude::*;

/// Why the bank refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account is already open.
    #[error("the account is already open")]
    AlreadyOpen,
    /// The account is not open.
    #[error("the account is not open")]
    NotOpen,
    /// An amount of zero.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// A negative amount, as typed.
    #[error("the amount must be positive; `{0}` is negative")]
    NegativeAmount(String),
    /// Text that is not an amount.
    #[error("`{0}` is not an amount: write a whole number of cents, like 100")]
    NotAnAmount(String),
    /// A line the teller does not understand.
    #[error(
        "`{0}` is not a command: write `open`, `deposit <cents>`, `withdraw <cents>` or `close`"
    )]
    UnknownCommand(String),
    /// A withdrawal of more than the balance.
    #[error("insufficient funds: the balance is {balance}, {requested} was requested")]
    InsufficientFunds {
        /// The balance at the time.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
    /// Closing an account that still holds money.
    #[error("the balance must be zero to close the account; it is {0}")]
    NotEmpty(u64),
}

/// Reads an amount typed by a person: a whole, positive number of cents, like `100`.
pub fn parse_amount(text: &str) -> Result<u64, BankError> {
    let text = text.trim();
    if text.starts_with('-') && text[1..].chars().all(|c| c.is_ascii_digit()) && text.len() > 1 {
        return Err(BankError::NegativeAmount(text.to_owned()));
    }
    match text.parse::<u64>() {
        Ok(0) => Err(BankError::ZeroAmount),
        Ok(cents) => Ok(cents),
        Err(_) => Err(BankError::NotAnAmount(text.to_owned())),
    }
}

/// A bank account holding a balance in cents.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankAccount {
    balance: u64,
    open: bool,
}

/// A bank account: opened with a first deposit, then money in and out, never below zero.
#[aggregate(snapshot_every = 100)]
impl BankAccount {
    /// Open the account with a first deposit (which may be zero).
    #[command]
    pub fn open(&self, initial: u64) -> Result<BankAccountEvent, BankError> {
        if self.open {
            return Err(BankError::AlreadyOpen);
        }
        Ok(BankAccountEvent::Opened { initial })
    }

    /// Put money in.
    #[command]
    pub fn deposit(&self, amount: u64) -> Result<BankAccountEvent, BankError> {
        self.ensure_open()?;
        if amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(BankAccountEvent::Deposited { amount })
    }

    /// Take money out; never below zero.
    #[command]
    pub fn withdraw(&self, amount: u64) -> Result<BankAccountEvent, BankError> {
        self.ensure_open()?;
        if amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        if amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(BankAccountEvent::Withdrawn { amount })
    }

    /// Close the account; it must be empty.
    #[command]
    pub fn close(&self) -> Result<BankAccountEvent, BankError> {
        self.ensure_open()?;
        if self.balance > 0 {
            return Err(BankError::NotEmpty(self.balance));
        }
        Ok(BankAccountEvent::Closed)
    }

    /// The account was opened.
    #[event]
    fn opened(&mut self, initial: u64) {
        self.balance = initial;
        self.open = true;
    }

    /// Money was put in.
    #[event(name = "MoneyDeposited")]
    fn deposited(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// Money was taken out.
    #[event]
    fn withdrawn(&mut self, amount: u64) {
        self.balance -= amount;
    }

    /// The account was closed.
    #[event]
    fn closed(&mut self) {
        self.open = false;
    }

    /// The balance in cents.
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// Whether the account is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    fn ensure_open(&self) -> Result<(), BankError> {
        if self.open {
            Ok(())
        } else {
            Err(BankError::NotOpen)
        }
    }
}
