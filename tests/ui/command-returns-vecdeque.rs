use std::collections::VecDeque;

use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[aggregate]
impl Cart {
    #[command]
    fn add(&self, item: String) -> Result<VecDeque<CartEvent>, std::fmt::Error> {
        Ok(VecDeque::from([CartEvent::Added { item }]))
    }

    #[event]
    fn added(&mut self, item: String) {
        self.items.push(item);
    }
}

fn main() {}
