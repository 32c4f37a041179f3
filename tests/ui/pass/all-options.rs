//! Every option of `#[aggregate]`, with a `Result` alias, an explicit `emits` list and the
//! aggregate in a module.
mod shop {
    use es::prelude::*;

    #[derive(Debug, PartialEq, Eq, Hash)]
    pub struct CartError;

    impl std::fmt::Display for CartError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the cart is full")
        }
    }

    impl std::error::Error for CartError {}

    pub type CartResult<T> = Result<T, CartError>;

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub(crate) struct Cart {
        pub items: Vec<String>,
    }

    /// A shopping cart.
    #[aggregate(
        name = "cart",
        error = CartError,
        snapshot_every = 50,
        snapshot_keep = 2,
        state_version = 4,
        vis = pub(crate),
        derive(Eq),
        command_derive(Hash),
        event_derive(PartialOrd),
        crate = ::es,
    )]
    impl Cart {
        /// Adds an item.
        #[command(emits(Added))]
        pub fn add(&self, item: String) -> CartResult<CartEvent> {
            self.check_room()?;
            Ok(Self::added_event(item))
        }

        #[event]
        fn added(&mut self, item: String) {
            self.items.push(item);
        }

        fn check_room(&self) -> CartResult<()> {
            if self.items.len() >= 2 { Err(CartError) } else { Ok(()) }
        }

        fn added_event(item: String) -> CartEvent {
            CartEvent::Added { item }
        }
    }
}

use es::Aggregate;
use shop::{Cart, CartCommand, CartError, CartEvent};

fn main() {
    assert_eq!(Cart::NAME, "cart");
    assert_eq!((Cart::SNAPSHOT_EVERY, Cart::SNAPSHOT_KEEP, Cart::STATE_VERSION), (50, 2, 4));
    let mut set = std::collections::HashSet::new();
    set.insert(CartCommand::Add { item: "tea".into() });
    let mut cart = Cart::default();
    for _ in 0..2 {
        for e in cart.handle(CartCommand::Add { item: "tea".into() }).unwrap() {
            cart.apply(e);
        }
    }
    assert_eq!(cart.handle(CartCommand::Add { item: "tea".into() }), Err(CartError));
    assert_eq!(cart.items.len(), 2);
    let schema = Cart::schema();
    assert_eq!(schema.command("Add").unwrap().emits, ["Added"]);
    assert_eq!(schema.error, Some("CartError"));
    assert_eq!(schema.state_version, 4);
    assert_eq!(schema.docs, "A shopping cart.");
    assert!(CartEvent::Added { item: "a".into() } < CartEvent::Added { item: "b".into() });
}
