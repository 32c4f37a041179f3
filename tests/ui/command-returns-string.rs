use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

#[aggregate]
impl Cart {
    #[command]
    fn add(&self, item: String) -> Result<String, std::fmt::Error> {
        Ok(item)
    }

    #[event]
    fn added(&mut self, item: String) {
        self.items.push(item);
    }
}

fn main() {}
