//! A cash card: withdrawals at a cash machine, limited per day and charged a fee. Neither the
//! day nor the fee is part of the command or of the card's state: the command consults the
//! bank's services, a clock and a fee schedule, and records what they said in its event, so
//! replaying the card's events needs neither.

use std::sync::Arc;

use es::prelude::*;
use es::{Clock, Timestamp};

/// The most a card may take out in one day, in cents.
pub const DAILY_LIMIT: u64 = 50_000;

/// What a withdrawal costs.
pub trait FeeSchedule: Send + Sync {
    /// The fee, in cents, for taking out `amount` cents.
    fn fee(&self, amount: u64) -> u64;
}

/// A flat fee, waived from some amount up.
#[derive(Debug, Clone, Copy)]
pub struct FlatFee {
    /// The fee in cents.
    pub fee: u64,
    /// Withdrawals of at least this much are free.
    pub free_from: u64,
}

impl FeeSchedule for FlatFee {
    fn fee(&self, amount: u64) -> u64 {
        if amount >= self.free_from {
            0
        } else {
            self.fee
        }
    }
}

/// What the card's commands consult: given once to the host, shared by every command.
#[derive(Clone)]
pub struct BankServices {
    /// Which day it is.
    pub clock: Arc<dyn Clock>,
    /// What a withdrawal costs.
    pub fees: Arc<dyn FeeSchedule>,
}

/// Why the cash machine refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// An amount of zero.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// The card was reported lost.
    #[error("the card is blocked")]
    Blocked,
    /// More than the daily limit.
    #[error(
        "over the daily limit of {limit}: {withdrawn_today} taken out today, {requested} asked"
    )]
    DailyLimit {
        /// The limit.
        limit: u64,
        /// Taken out today so far.
        withdrawn_today: u64,
        /// The amount asked for.
        requested: u64,
    },
}

/// A cash card: what it took out on its last day of use, and whether it is blocked.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CashCard {
    day: u64,
    withdrawn_today: u64,
    fees_paid: u64,
    blocked: bool,
}

/// A cash card, limited to [`DAILY_LIMIT`] a day.
#[aggregate(services = BankServices)]
impl CashCard {
    /// Take cash out, within the daily limit, paying the fee the schedule asks.
    #[command]
    pub fn withdraw(
        &self,
        amount: u64,
        services: &BankServices,
    ) -> Result<CashCardEvent, CardError> {
        if self.blocked {
            return Err(CardError::Blocked);
        }
        if amount == 0 {
            return Err(CardError::ZeroAmount);
        }
        let day = day_of(services.clock.now());
        let today = if day == self.day {
            self.withdrawn_today
        } else {
            0
        };
        if today + amount > DAILY_LIMIT {
            return Err(CardError::DailyLimit {
                limit: DAILY_LIMIT,
                withdrawn_today: today,
                requested: amount,
            });
        }
        let fee = services.fees.fee(amount);
        Ok(CashCardEvent::CashWithdrawn { amount, fee, day })
    }

    /// Block the card; it consults nothing.
    #[command]
    pub fn block(&self) -> Option<CashCardEvent> {
        (!self.blocked).then_some(CashCardEvent::Blocked)
    }

    /// Cash was taken out on `day` (days since the Unix epoch), for `fee`.
    #[event]
    fn cash_withdrawn(&mut self, amount: u64, fee: u64, day: u64) {
        if day != self.day {
            self.day = day;
            self.withdrawn_today = 0;
        }
        self.withdrawn_today += amount;
        self.fees_paid += fee;
    }

    /// The card was blocked.
    #[event]
    fn blocked(&mut self) {
        self.blocked = true;
    }

    /// Taken out on the card's last day of use, in cents.
    pub fn withdrawn_today(&self) -> u64 {
        self.withdrawn_today
    }

    /// Every fee paid, in cents.
    pub fn fees_paid(&self) -> u64 {
        self.fees_paid
    }
}

/// Days since the Unix epoch.
pub fn day_of(t: Timestamp) -> u64 {
    t.as_nanos() / 86_400_000_000_000
}
