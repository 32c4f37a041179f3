//! A command that may emit nothing: `Option<Event>`, bare and in a `Result`.
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
struct Light {
    on: bool,
}

#[aggregate]
impl Light {
    /// Turns the light on, unless it is on already.
    #[command]
    fn switch_on(&self) -> Option<LightEvent> {
        (!self.on).then_some(LightEvent::SwitchedOn)
    }

    #[command]
    fn switch_off(&self, force: bool) -> Result<Option<LightEvent>, Refused> {
        if !self.on && force {
            return Err(Refused("already off"));
        }
        Ok(self.on.then_some(LightEvent::SwitchedOff))
    }

    #[event]
    fn switched_on(&mut self) {
        self.on = true;
    }

    #[event]
    fn switched_off(&mut self) {
        self.on = false;
    }
}

fn main() {
    let light = Light { on: true };
    assert_eq!(light.handle(LightCommand::SwitchOn), Ok(vec![]));
    assert_eq!(
        light.handle(LightCommand::SwitchOff { force: false }),
        Ok(vec![LightEvent::SwitchedOff])
    );
    assert_eq!(
        Light::default().handle(LightCommand::SwitchOff { force: true }),
        Err(Refused("already off"))
    );
}
