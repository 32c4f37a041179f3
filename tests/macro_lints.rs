//! The code `#[aggregate]` generates passes strict lints: every generated item is documented,
//! every path it writes is needed, and handlers that do not read the state are not flagged.
#![deny(unused_qualifications, missing_docs, unused_results, trivial_casts)]
#![deny(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]
// Pedantic, but the macro makes every handler take `self`: it must not be flagged.
#![deny(clippy::unused_self)]

use es::prelude::*;

/// Why a ledger refuses a command.
#[derive(Debug, PartialEq, Eq)]
pub struct LedgerError(pub String);

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LedgerError {}

/// An entry of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What for.
    pub label: String,
    /// How much.
    pub cents: i64,
}

/// A ledger using every form the macro supports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    entries: Vec<Entry>,
    tags: Vec<String>,
    closed: bool,
}

/// A ledger of entries.
#[aggregate(
    name = "ledger",
    state_version = 2,
    snapshot_every = 10,
    snapshot_keep = 3
)]
impl Ledger {
    /// Adds one entry.
    #[command]
    pub fn add(&self, entry: Entry) -> Result<LedgerEvent, LedgerError> {
        if self.closed {
            return Err(LedgerError("closed".into()));
        }
        Ok(LedgerEvent::Added { entry })
    }

    /// Adds several entries.
    #[command]
    pub fn add_all(&self, entries: Vec<Entry>) -> Vec<LedgerEvent> {
        entries
            .into_iter()
            .map(|entry| LedgerEvent::Added { entry })
            .collect()
    }

    /// Tags the ledger, once per tag.
    #[command]
    pub fn tag(&self, tag: &str) -> Option<LedgerEvent> {
        (!self.tags.iter().any(|t| t == tag)).then(|| LedgerEvent::Tagged {
            tag: tag.to_owned(),
        })
    }

    /// Closes with a final entry.
    #[command]
    pub fn close(&self, last: Entry) -> Result<[LedgerEvent; 2], LedgerError> {
        Ok([LedgerEvent::Added { entry: last }, LedgerEvent::Closed])
    }

    /// Checks that the ledger is open.
    #[command]
    pub fn check(&self) -> Result<(), LedgerError> {
        if self.closed {
            Err(LedgerError("closed".into()))
        } else {
            Ok(())
        }
    }

    /// An entry was added.
    #[event]
    fn added(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// Notes a remark, whatever the state.
    #[command]
    fn remark(&self, text: String) -> LedgerEvent {
        LedgerEvent::Remarked { text }
    }

    /// A remark was made; it changes nothing.
    #[event]
    fn remarked(&mut self, text: String) {
        drop(text);
    }

    /// A tag was put on.
    #[event(name = "TagAdded", alias = "Tagged")]
    fn tagged(&mut self, tag: &str) {
        self.tags.push(tag.to_owned());
    }

    /// The ledger was closed.
    #[event]
    fn closed(&mut self) {
        self.closed = true;
    }
}

#[test]
fn expansion_compiles_under_strict_lints() {
    let ledger = Ledger::default();
    let events = ledger
        .handle(LedgerCommand::Tag { tag: "a".into() })
        .unwrap();
    assert_eq!(events, vec![LedgerEvent::Tagged { tag: "a".into() }]);
}

/// What a meter's commands consult.
#[derive(Debug)]
pub struct MeterServices {
    /// The price of a unit, in cents.
    pub unit_price: u64,
}

/// A meter whose readings are priced by a service.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Meter {
    owed: u64,
}

/// A meter.
#[aggregate(services = MeterServices)]
impl Meter {
    /// Read the meter.
    #[command]
    fn read(&self, units: u64, services: &MeterServices) -> MeterEvent {
        MeterEvent::ReadDone {
            units,
            owed: units * services.unit_price,
        }
    }

    /// Reset it, consulting nothing.
    #[command]
    fn reset(&self) -> MeterEvent {
        MeterEvent::ReadDone { units: 0, owed: 0 }
    }

    /// The meter was read.
    #[event]
    fn read_done(&mut self, units: u64, owed: u64) {
        let _ = units;
        self.owed += owed;
    }
}

#[test]
fn expansion_with_services_compiles_under_strict_lints() {
    let mut events = Vec::new();
    Meter::default()
        .handle_with_services(
            MeterCommand::Read { units: 3 },
            &MeterServices { unit_price: 2 },
            &mut |e| events.push(e),
        )
        .unwrap();
    assert_eq!(events, vec![MeterEvent::ReadDone { units: 3, owed: 6 }]);
}
