//! Stored type names pinned with `name`, and older names kept readable with `alias`.
use es::prelude::*;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, amount: u64) -> AccountEvent {
        AccountEvent::Credited { amount }
    }

    /// Money came in. Once stored as `Deposited`, then as `AmountDeposited`.
    #[event(name = "MoneyDeposited", alias = "Deposited", alias = "AmountDeposited")]
    fn credited(&mut self, amount: u64) {
        self.balance += amount;
    }
}

fn main() {
    let event = AccountEvent::Credited { amount: 3 };
    assert_eq!(event.event_type(), "MoneyDeposited");
    assert_eq!(AccountEvent::TYPES, ["MoneyDeposited", "Deposited", "AmountDeposited"]);
    for stored in AccountEvent::TYPES {
        let payload = es::codec::encode(&serde_json::json!({ *stored: {"amount": 3} })).unwrap();
        let decoded: AccountEvent =
            es::event::decode_event("account-1", 1, stored, &payload).unwrap();
        assert_eq!(decoded, event);
    }
    let e = Account::schema().event("Credited").unwrap();
    assert_eq!((e.type_name, e.aliases), ("MoneyDeposited", &["Deposited", "AmountDeposited"][..]));
}
