//! Commands that decide nothing happens: `()`, `Result<(), E>`, an empty `Vec` or `None`.
use es::prelude::*;

#[derive(Debug, PartialEq)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Door {
    locked: bool,
}

#[aggregate]
impl Door {
    /// Checks the door can be opened.
    #[command]
    fn try_open(&self) -> Result<(), Refused> {
        if self.locked { Err(Refused("locked")) } else { Ok(()) }
    }

    /// Knocks; nothing is recorded.
    #[command]
    fn knock(&self) {}

    #[command]
    fn lock(&self) -> Result<Vec<DoorEvent>, Refused> {
        Ok(if self.locked { Vec::new() } else { vec![DoorEvent::Locked] })
    }

    #[event]
    fn locked(&mut self) {
        self.locked = true;
    }
}

fn main() {
    let door = Door::default();
    assert_eq!(door.handle(DoorCommand::TryOpen), Ok(vec![]));
    assert_eq!(door.handle(DoorCommand::Knock), Ok(vec![]));
    assert_eq!(door.handle(DoorCommand::Lock), Ok(vec![DoorEvent::Locked]));
    let locked = Door { locked: true };
    assert_eq!(locked.handle(DoorCommand::TryOpen), Err(Refused("locked")));
    assert!(Door::schema().command("Knock").unwrap().emits.is_empty());
    assert!(!Door::schema().command("Knock").unwrap().fallible);
}
