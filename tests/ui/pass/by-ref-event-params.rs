//! Event and command parameters taken by reference: the field is owned by the variant and
//! lent to the method (`&str` is stored as `String`, `&[T]` as `Vec<T>`).
use es::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Order {
    customer: String,
    note: String,
    lines: Vec<Line>,
    first: Option<Line>,
}

#[aggregate]
impl Order {
    #[command]
    fn place(&self, customer: &str, lines: &[Line], note: &String) -> Vec<OrderEvent> {
        vec![OrderEvent::Placed {
            customer: customer.to_owned(),
            lines: lines.to_vec(),
            note: note.clone(),
        }]
    }

    #[event]
    fn placed(&mut self, customer: &str, lines: &[Line], note: &String) {
        self.customer = customer.to_owned();
        self.lines = lines.to_vec();
        self.note = note.clone();
    }

    #[event]
    fn first_line_set(&mut self, line: &Line) {
        self.first = Some(line.clone());
    }
}

fn main() {
    let mut order = Order::default();
    let line = Line { sku: "A-1".into(), quantity: 2 };
    let events = order
        .handle(OrderCommand::Place {
            customer: "ada".into(),
            lines: vec![line.clone()],
            note: String::from("by noon"),
        })
        .unwrap();
    events.into_iter().for_each(|e| order.apply(e));
    order.apply(OrderEvent::FirstLineSet { line: line.clone() });
    assert_eq!(order.customer, "ada");
    assert_eq!(order.lines, [line.clone()]);
    assert_eq!(order.first, Some(line));
    let placed = Order::schema().event("Placed").unwrap();
    assert_eq!(placed.fields[0].ty, "String");
    assert_eq!(placed.fields[1].ty, "Vec<Line>");
    assert_eq!(placed.fields[2].ty, "String");
}
