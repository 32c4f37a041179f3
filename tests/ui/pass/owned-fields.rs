//! Fields of every kind: `String`, `Vec`, maps, nested structs, options, and `Self`.
use std::collections::BTreeMap;

use es::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    address: Option<Address>,
    tags: Vec<String>,
    scores: BTreeMap<String, u32>,
    previous: Option<Box<Customer>>,
}

#[aggregate]
impl Customer {
    #[command]
    fn register(
        &self,
        name: String,
        address: Option<Address>,
        tags: Vec<String>,
        scores: BTreeMap<String, u32>,
    ) -> CustomerEvent {
        CustomerEvent::Registered { name, address, tags, scores }
    }

    #[command]
    fn restore(&self, snapshot: Self) -> CustomerEvent {
        CustomerEvent::Restored { snapshot: Box::new(snapshot) }
    }

    #[event]
    fn registered(
        &mut self,
        name: String,
        address: Option<Address>,
        tags: Vec<String>,
        scores: BTreeMap<String, u32>,
    ) {
        self.name = name;
        self.address = address;
        self.tags = tags;
        self.scores = scores;
    }

    #[event]
    fn restored(&mut self, snapshot: Box<Self>) {
        let previous = std::mem::replace(self, *snapshot);
        self.previous = Some(Box::new(previous));
    }
}

fn main() {
    let mut c = Customer::default();
    let address = Address { street: "1 Main St".into(), city: "Springfield".into() };
    let events = c
        .handle(CustomerCommand::Register {
            name: "Ada".into(),
            address: Some(address.clone()),
            tags: vec!["vip".into()],
            scores: BTreeMap::from([("q1".into(), 7)]),
        })
        .unwrap();
    events.into_iter().for_each(|e| c.apply(e));
    assert_eq!(c.address, Some(address));
    let fields = Customer::schema().command("Register").unwrap().fields;
    assert_eq!(fields[1].ty, "Option<Address>");
    assert_eq!(fields[3].ty, "BTreeMap<String, u32>");
    assert_eq!(Customer::schema().event("Restored").unwrap().fields[0].ty, "Box<Customer>");
    let restored = c.handle(CustomerCommand::Restore { snapshot: Customer::default() }).unwrap();
    restored.into_iter().for_each(|e| c.apply(e));
    assert_eq!(c.previous.unwrap().name, "Ada");
}
