//! An aggregate whose commands only check: the event enum is empty.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Gate {
    open: bool,
}

#[derive(Debug, PartialEq)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the gate is closed")
    }
}

impl std::error::Error for Closed {}

#[aggregate]
impl Gate {
    #[command]
    fn pass(&self) -> Result<(), Closed> {
        if self.open { Ok(()) } else { Err(Closed) }
    }
}

fn main() {
    assert_eq!(Gate::default().handle(GateCommand::Pass), Err(Closed));
    assert_eq!(Gate { open: true }.handle(GateCommand::Pass), Ok(vec![]));
    assert!(<GateEvent as DomainEvent>::TYPES.is_empty());
    assert!(Gate::schema().events.is_empty());
}
