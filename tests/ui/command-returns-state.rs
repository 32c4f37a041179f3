use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[aggregate]
impl Cart {
    #[command]
    fn add(&self, item: String) -> Self {
        let mut items = self.items.clone();
        items.push(item);
        Cart { items }
    }

    #[event]
    fn added(&mut self, item: String) {
        self.items.push(item);
    }
}

fn main() {}
