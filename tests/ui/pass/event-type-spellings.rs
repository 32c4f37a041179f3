//! A command may name the event enum however it likes: through an alias, a path, the trait's
//! associated type, or a `Result` alias.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

type Ev = CounterEvent;
type CountResult<T> = Result<T, std::fmt::Error>;

#[aggregate(error = std::fmt::Error)]
impl Counter {
    #[command]
    fn add(&self, by: u64) -> Ev {
        Ev::Added { by }
    }

    #[command]
    fn add_checked(&self, by: u64) -> Result<crate::CounterEvent, std::fmt::Error> {
        Ok(CounterEvent::Added { by })
    }

    #[command]
    fn add_twice(&self, by: u64) -> Vec<self::CounterEvent> {
        vec![CounterEvent::Added { by }; 2]
    }

    #[command]
    fn add_maybe(&self, by: u64) -> Option<Ev> {
        (by > 0).then_some(Ev::Added { by })
    }

    #[command]
    fn add_as_trait(&self, by: u64) -> <Self as Aggregate>::Event {
        CounterEvent::Added { by }
    }

    #[command]
    fn add_in_alias(&self, by: u64) -> CountResult<[Ev; 1]> {
        Ok([CounterEvent::Added { by }])
    }

    #[event]
    fn added(&mut self, by: u64) {
        self.value += by;
    }
}

fn main() {
    let mut c = Counter::default();
    for command in [
        CounterCommand::Add { by: 1 },
        CounterCommand::AddChecked { by: 1 },
        CounterCommand::AddTwice { by: 1 },
        CounterCommand::AddMaybe { by: 1 },
        CounterCommand::AddAsTrait { by: 1 },
        CounterCommand::AddInAlias { by: 1 },
    ] {
        for e in c.handle(command).unwrap() {
            c.apply(e);
        }
    }
    assert_eq!(c.value, 7);
}
