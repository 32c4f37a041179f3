//! The balance of every account: a read model folded from the bank's events by a projection.
//!
//! The balances live in memory and are saved to a JSON file after each catch-up; the
//! projection's checkpoint (where its runner resumes) lives in the event store. The file
//! records the position and id of the last event it includes, which settles the two ways they
//! can disagree:
//!
//! - the program stopped after the runner saved its checkpoint but before the file was written:
//!   the checkpoint is moved back to the file's position and those events are replayed;
//! - the file belongs to another store (the store was deleted, or swapped for a
//!   `MemoryStore`): that store has no such event at that position, so the balances start over
//!   from the first event.
//!
//! This works over any store. On the LMDB store alone, a `TableProjection` can keep the
//! balances inside the store instead, written in the same transaction as the checkpoint: each
//! event is then applied exactly once, with no file to reconcile.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};

use es::prelude::*;

use crate::account::{BankAccount, BankAccountEvent};

/// Balances in cents, by account id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Balances {
    accounts: BTreeMap<String, Balance>,
    /// The position of the last event included (0: none).
    position: u64,
    /// The id of that event.
    last_event: String,
    #[serde(skip)]
    file: PathBuf,
}

/// One account's line in the read model.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Balance {
    /// The balance in cents.
    pub cents: u64,
    /// Whether the account is open.
    pub open: bool,
}

impl Balances {
    /// The projection's name: the key of its checkpoint in the store.
    pub const NAME: &'static str = "balances";

    /// Loads the read model saved in `file`, checks that it belongs to `store`, and puts the
    /// projection's checkpoint in `store` where the read model is.
    pub fn open(file: &Path, store: &impl EventStore) -> Result<Self, Box<dyn std::error::Error>> {
        let mut balances = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<Balances>(&bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Balances::default(),
            Err(e) => return Err(e.into()),
        };
        if balances.position > 0 {
            let there = store.read_all(balances.position, 1)?;
            let same = there.first().is_some_and(|e| {
                e.position == balances.position && e.event_id.to_string() == balances.last_event
            });
            if !same {
                balances = Balances::default();
            }
        }
        balances.file = file.to_owned();
        if store.load_checkpoint(Self::NAME)? != Some(balances.position) {
            store.save_checkpoint(Self::NAME, balances.position)?;
        }
        Ok(balances)
    }

    /// Writes the read model to its file (a new file renamed over the old one, so a crash
    /// leaves one or the other).
    pub fn save(&self) -> io::Result<()> {
        let temporary = self.file.with_extension("json.new");
        std::fs::write(&temporary, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&temporary, &self.file)
    }

    /// The accounts and their balances, by id.
    pub fn accounts(&self) -> &BTreeMap<String, Balance> {
        &self.accounts
    }

    /// The position of the last event included.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl Projection for Balances {
    type Event = BankAccountEvent;
    type Error = Infallible;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn categories(&self) -> &[&str] {
        &[BankAccount::NAME]
    }

    fn apply(&mut self, e: Envelope<'_, BankAccountEvent>) -> Result<(), Infallible> {
        // Events are delivered at least once across restarts: skip those already included.
        if e.position <= self.position {
            return Ok(());
        }
        let account = self
            .accounts
            .entry(e.aggregate_id().to_owned())
            .or_default();
        match *e.event {
            BankAccountEvent::Opened { initial } => {
                account.cents = initial;
                account.open = true;
            }
            BankAccountEvent::Deposited { amount } => account.cents += amount,
            BankAccountEvent::Withdrawn { amount } => account.cents -= amount,
            BankAccountEvent::Closed => account.open = false,
        }
        self.position = e.position;
        self.last_event = e.event_id.to_string();
        Ok(())
    }

    fn reset(&mut self) -> Result<(), Infallible> {
        self.accounts.clear();
        self.position = 0;
        self.last_event.clear();
        Ok(())
    }
}
