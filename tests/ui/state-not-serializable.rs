use es::prelude::*;

#[derive(Debug, Default)]
struct Counter {
    value: u64,
}

#[aggregate]
impl Counter {
    #[command]
    fn add(&self, by: u64) -> CounterEvent {
        CounterEvent::Added { by }
    }

    #[event]
    fn added(&mut self, by: u64) {
        self.value += by;
    }
}

fn main() {}
