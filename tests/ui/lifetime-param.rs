use es::prelude::*;

#[derive(Debug, Default)]
struct View<'a> {
    name: &'a str,
}

#[aggregate]
impl<'a> View<'a> {
    #[command]
    fn rename(&self, name: String) -> ViewEvent {
        ViewEvent::Renamed { name }
    }

    #[event]
    fn renamed(&mut self, name: String) {
        let _ = (name, self.name);
    }
}

fn main() {}
