//! The generated aggregate works with code written against the `Aggregate` trait, and
//! hand-written methods in the same block stay as they are.
use es::prelude::*;
use es::testing::AggregateTest;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Thermostat {
    target: i32,
}

#[aggregate(name = "thermostat")]
impl Thermostat {
    /// Sets the target temperature.
    #[command]
    pub fn set(&self, r#target: i32) -> Option<ThermostatEvent> {
        (target != self.target).then_some(ThermostatEvent::TargetSet { target })
    }

    #[event]
    fn target_set(&mut self, target: i32) {
        self.target = target;
    }

    /// Not a handler: left alone.
    pub fn target(&self) -> i32 {
        self.target
    }
}

fn replay<A: Aggregate>(events: Vec<A::Event>) -> A {
    let mut a = A::default();
    events.into_iter().for_each(|e| a.apply(e));
    a
}

fn main() {
    let t: Thermostat = replay(vec![ThermostatEvent::TargetSet { target: 20 }]);
    assert_eq!(t.target(), 20);
    AggregateTest::<Thermostat>::given([ThermostatEvent::TargetSet { target: 20 }])
        .when(ThermostatCommand::Set { target: 20 })
        .then_nothing();
    let stream = StreamId::new(Thermostat::NAME, "hall").unwrap();
    assert_eq!(stream.as_str(), "thermostat-hall");
    let store = MemoryStore::new();
    let e = ThermostatEvent::TargetSet { target: 21 };
    store
        .append(&stream, ExpectedVersion::NoStream, vec![es::NewEvent::from_event(&e, Metadata::default()).unwrap()])
        .unwrap();
    let read = store.read_stream(&stream, 1, usize::MAX).unwrap();
    assert_eq!(read[0].event_type, "TargetSet");
    assert_eq!(read[0].clone().decode::<ThermostatEvent>().unwrap().payload, e);
}
