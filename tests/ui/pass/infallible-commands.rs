//! No command can fail: the error type is `Infallible`.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

#[aggregate]
impl Counter {
    #[command]
    fn add(&self, by: i64) -> CounterEvent {
        CounterEvent::Added { by }
    }

    #[command]
    fn reset(&self) -> CounterEvent {
        CounterEvent::Added { by: -self.value }
    }

    #[event]
    fn added(&mut self, by: i64) {
        self.value += by;
    }
}

fn check(_: std::marker::PhantomData<<Counter as Aggregate>::Error>) {}

fn main() {
    check(std::marker::PhantomData::<std::convert::Infallible>);
    let mut c = Counter::default();
    for e in c.handle(CounterCommand::Add { by: 5 }).unwrap() {
        c.apply(e);
    }
    assert_eq!(c.handle(CounterCommand::Reset).unwrap(), [CounterEvent::Added { by: -5 }]);
    assert_eq!(Counter::schema().error, None);
    assert_eq!(Counter::NAME, "counter");
}
