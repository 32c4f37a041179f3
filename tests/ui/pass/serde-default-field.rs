//! A field added to an event later, with `#[serde(default)]` so old payloads still decode.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ticket {
    title: String,
    priority: u8,
}

#[aggregate]
impl Ticket {
    #[command]
    fn open(&self, title: String, #[serde(default)] priority: u8) -> TicketEvent {
        TicketEvent::Opened { title, priority }
    }

    #[event]
    fn opened(
        &mut self,
        title: String,
        #[serde(default = "normal")] priority: u8,
    ) {
        self.title = title;
        self.priority = priority;
    }
}

fn normal() -> u8 {
    3
}

fn main() {
    let old = es::codec::encode(&serde_json::json!({"Opened": {"title": "bug"}})).unwrap();
    let event: TicketEvent = es::event::decode_event("ticket-1", 1, "Opened", &old).unwrap();
    assert_eq!(event, TicketEvent::Opened { title: "bug".into(), priority: 3 });
    let command: TicketCommand = serde_json::from_str(r#"{"Open": {"title": "x"}}"#).unwrap();
    assert_eq!(command, TicketCommand::Open { title: "x".into(), priority: 0 });
    let mut t = Ticket::default();
    t.apply(event);
    assert_eq!((t.title.as_str(), t.priority), ("bug", 3));
}
