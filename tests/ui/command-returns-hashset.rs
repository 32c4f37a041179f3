use std::collections::HashSet;

use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[aggregate]
impl Cart {
    #[command]
    fn add(&self, items: Vec<String>) -> HashSet<String> {
        items.into_iter().collect()
    }

    #[event]
    fn added(&mut self, item: String) {
        self.items.push(item);
    }
}

fn main() {}
