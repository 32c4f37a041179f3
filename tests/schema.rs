//! The schema `#[aggregate]` generates for the bank account and a task list, and its Markdown.

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/bank/account.rs"]
mod account;

use account::BankAccount;
use es::prelude::{Deserialize, Serialize, aggregate};
use es::{Aggregate, FieldSchema};

#[test]
fn bank_schema_describes_commands_events_and_fields() {
    let schema = BankAccount::schema();
    assert_eq!(schema.name, "bank_account");
    assert_eq!(schema.type_name, "BankAccount");
    assert_eq!(schema.error, Some("BankError"));
    assert_eq!(schema.state_version, 1);
    assert!(
        schema
            .docs
            .starts_with("A bank account: opened with a first deposit")
    );

    let commands: Vec<_> = schema.commands.iter().map(|c| c.name).collect();
    assert_eq!(commands, ["Open", "Deposit", "Withdraw", "Close"]);
    let events: Vec<_> = schema.events.iter().map(|e| e.name).collect();
    assert_eq!(events, ["Opened", "Deposited", "Withdrawn", "Closed"]);

    let open = schema.command("Open").unwrap();
    assert_eq!(open.method, "open");
    assert_eq!(open.fields, [FieldSchema::new("initial", "u64")]);
    assert_eq!(open.emits, ["Opened"]);
    assert!(open.fallible);
    assert_eq!(
        open.docs,
        "Open the account with a first deposit (which may be zero)."
    );

    assert_eq!(schema.command("Withdraw").unwrap().emits, ["Withdrawn"]);
    assert_eq!(schema.command("Close").unwrap().fields, []);
    assert_eq!(schema.command("Close").unwrap().emits, ["Closed"]);

    let deposited = schema.event("Deposited").unwrap();
    assert_eq!(deposited.type_name, "MoneyDeposited");
    assert_eq!(deposited.method, "deposited");
    assert_eq!(deposited.fields, [FieldSchema::new("amount", "u64")]);
    assert_eq!(deposited.docs, "Money was put in.");
    assert_eq!(schema.event("Opened").unwrap().type_name, "Opened");
    assert!(schema.event("Opened").unwrap().aliases.is_empty());
}

#[test]
fn schema_type_names_match_the_event_enum() {
    use es::DomainEvent;
    let schema = BankAccount::schema();
    let stored: Vec<_> = schema.events.iter().map(|e| e.type_name).collect();
    assert_eq!(
        stored,
        <BankAccount as Aggregate>::Event::TYPES,
        "every stored name of the schema is one the event enum decodes"
    );
}

#[test]
fn bank_schema_renders_markdown_with_a_diagram() {
    let md = BankAccount::schema().to_markdown();
    assert!(md.starts_with("# `BankAccount` (stream category `bank_account`)"));
    assert!(md.contains("```mermaid\nflowchart LR"));
    for edge in [
        "C_Open --> E_Opened",
        "C_Deposit --> E_Deposited",
        "C_Withdraw --> E_Withdrawn",
        "C_Close --> E_Closed",
    ] {
        assert!(md.contains(edge), "missing `{edge}` in:\n{md}");
    }
    assert!(md.contains(
        "| `Withdraw` | `amount: u64` | `Withdrawn` | Take money out; never below zero. |"
    ));
    assert!(
        md.contains("| `Deposited` | `MoneyDeposited` | 1 | `amount: u64` | Money was put in. |")
    );
    assert!(
        md.contains("Refused with `BankError`: `Open`, `Deposit`, `Withdraw`, `Close`."),
        "{md}"
    );
    assert!(
        !md.contains("## Past shapes"),
        "no upcasts, no section:\n{md}"
    );
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TaskList {
    tasks: Vec<String>,
}

#[aggregate]
impl TaskList {
    /// Adds a task.
    #[command]
    fn add(&self, task: String) -> TaskListEvent {
        TaskListEvent::Added { task }
    }

    /// A task was added.
    #[event(name = "TaskAdded", alias = "TodoAdded")]
    fn added(&mut self, task: String) {
        self.tasks.push(task);
    }

    /// The list was cleared.
    #[event(alias = "Emptied", alias = "Reset")]
    fn cleared(&mut self) {
        self.tasks.clear();
    }
}

#[test]
fn markdown_shows_the_names_events_are_also_read_from() {
    let md = TaskList::schema().to_markdown();
    assert!(
        md.contains(
            "| `Added` | `TaskAdded` (also `TodoAdded`) | 1 | `task: String` | A task was added. |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| `Cleared` | `Cleared` (also `Emptied`, `Reset`) | 1 | — | The list was cleared. |"
        ),
        "{md}"
    );
}

/// An account whose events changed shape, as in the evolution tests: the owner became a
/// struct, then a name in two parts; a withdrawal split in two; freezing is gone.
#[allow(unreachable_pub)]
mod evolved {
    use es::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Owner {
        pub name: String,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Account {
        balance: u64,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("closed")]
    pub struct Closed;

    /// An account of version 3.
    #[aggregate]
    impl Account {
        /// Opens it.
        #[command]
        fn open(&self, first: String, last: String) -> Result<AccountEvent, Closed> {
            Ok(AccountEvent::Opened { first, last })
        }

        /// The account was opened.
        #[event(version = 3)]
        fn opened(&mut self, first: String, last: String) {
            let _ = (first, last);
        }

        /// Version 1: a plain name.
        #[upcast(from = "Opened", version = 1)]
        fn opened_v1(name: String) -> AccountEvent {
            Self::opened_v2(Owner { name })
        }

        /// Version 2: the owner as one struct.
        #[upcast(from = "Opened", version = 2)]
        fn opened_v2(owner: Owner) -> AccountEvent {
            let (first, last) = owner.name.split_once(' ').unwrap_or((&owner.name, ""));
            AccountEvent::Opened {
                first: first.to_owned(),
                last: last.to_owned(),
            }
        }

        #[event(version = 2)]
        fn withdrawn(&mut self, amount: u64) {
            self.balance -= amount;
        }

        #[event]
        fn fee_charged(&mut self, fee: u64) {
            self.balance -= fee;
        }

        /// Version 1 held the fee too.
        #[upcast(from = "Withdrawn", version = 1)]
        fn withdrawn_v1(amount: u64, fee: u64) -> Vec<AccountEvent> {
            vec![
                AccountEvent::Withdrawn { amount },
                AccountEvent::FeeCharged { fee },
            ]
        }

        /// Freezing is gone.
        #[upcast(from = "Frozen", version = 1, retired)]
        fn frozen_v1(reason: String) -> Option<AccountEvent> {
            let _ = reason;
            None
        }
    }
}

#[test]
fn schema_has_versions_upcasts_and_the_error() {
    use es::UpcastReturns;
    let schema = evolved::Account::schema();
    assert_eq!(schema.error, Some("Closed"));
    assert_eq!(schema.event("Opened").unwrap().version, 3);
    assert_eq!(schema.event("Withdrawn").unwrap().version, 2);
    assert_eq!(schema.event("FeeCharged").unwrap().version, 1);

    let from: Vec<_> = schema.upcasts.iter().map(|u| (u.from, u.version)).collect();
    assert_eq!(
        from,
        [
            ("Opened", 1),
            ("Opened", 2),
            ("Withdrawn", 1),
            ("Frozen", 1)
        ]
    );
    let v1 = schema.upcast("Opened", 1).unwrap();
    assert_eq!(v1.method, "opened_v1");
    assert_eq!(v1.docs, "Version 1: a plain name.");
    assert_eq!(v1.fields, [FieldSchema::new("name", "String")]);
    assert_eq!(v1.returns, UpcastReturns::One);
    assert!(!v1.retired);
    // Built through the next upcast: read as the event stored under its name.
    assert_eq!(v1.into, ["Opened"]);
    let v2 = schema.upcast("Opened", 2).unwrap();
    assert_eq!(v2.fields, [FieldSchema::new("owner", "Owner")]);
    assert_eq!(v2.into, ["Opened"]);
    let split = schema.upcast("Withdrawn", 1).unwrap();
    assert_eq!(split.returns, UpcastReturns::Several);
    assert_eq!(
        split.fields,
        [
            FieldSchema::new("amount", "u64"),
            FieldSchema::new("fee", "u64")
        ]
    );
    assert_eq!(split.into, ["Withdrawn", "FeeCharged"]);
    let frozen = schema.upcast("Frozen", 1).unwrap();
    assert_eq!(frozen.returns, UpcastReturns::OneOrNone);
    assert!(frozen.retired);
    assert!(frozen.into.is_empty());
}

#[test]
fn markdown_shows_versions_upcasts_and_the_error() {
    let md = evolved::Account::schema().to_markdown();
    for line in [
        "Refused with `Closed`: `Open`.",
        "| `Opened` | `Opened` | 3 | `first: String`, `last: String` | The account was opened. |",
        "| `Withdrawn` | `Withdrawn` | 2 | `amount: u64` |  |",
        "## Past shapes",
        "| `Opened` | 1 | `name: String` | `opened_v1` | one event: `Opened` | Version 1: a plain name. |",
        "| `Opened` | 2 | `owner: Owner` | `opened_v2` | one event: `Opened` | Version 2: the owner as one struct. |",
        "| `Withdrawn` | 1 | `amount: u64`, `fee: u64` | `withdrawn_v1` | several events: `Withdrawn`, `FeeCharged` | Version 1 held the fee too. |",
        "| `Frozen` (retired) | 1 | `reason: String` | `frozen_v1` | one event or none | Freezing is gone. |",
    ] {
        assert!(md.contains(line), "missing `{line}` in:\n{md}");
    }
}

#[test]
fn mermaid_shows_past_shapes_with_edges_to_the_events_they_read_as() {
    let md = evolved::Account::schema().to_markdown();
    let diagram = md
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a Mermaid block");
    for line in [
        "flowchart LR",
        "C_Open --> E_Opened",
        r#"U_Opened_v1[("Opened v1")]"#,
        r#"U_Opened_v2[("Opened v2")]"#,
        r#"U_Withdrawn_v1[("Withdrawn v1")]"#,
        r#"U_Frozen_v1[("Frozen v1, retired")]"#,
        "U_Opened_v1 -. upcast .-> E_Opened",
        "U_Opened_v2 -. upcast .-> E_Opened",
        "U_Withdrawn_v1 -. upcast .-> E_Withdrawn",
        "U_Withdrawn_v1 -. upcast .-> E_FeeCharged",
    ] {
        assert!(diagram.contains(line), "missing `{line}` in:\n{diagram}");
    }
    assert!(
        !diagram.contains("U_Frozen_v1 -."),
        "a dropped event reads as nothing:\n{diagram}"
    );
}

#[test]
fn the_owned_schema_round_trips_through_json_and_renders_the_same() {
    use es::OwnedSchema;
    for schema in [
        BankAccount::schema(),
        TaskList::schema(),
        evolved::Account::schema(),
    ] {
        let owned = schema.to_owned_schema();
        assert_eq!(owned.format, OwnedSchema::FORMAT);
        let json = owned.to_json();
        let read = OwnedSchema::from_json(&json).unwrap();
        assert_eq!(read, owned);
        assert_eq!(read.to_json(), json, "the same schema gives the same text");
        assert_eq!(read.to_markdown(), schema.to_markdown());
    }
    // A tool reads it as plain JSON.
    let value: serde_json::Value =
        serde_json::from_str(&evolved::Account::schema().to_owned_schema().to_json()).unwrap();
    assert_eq!(value["events"][0]["version"], 3);
    assert_eq!(value["upcasts"][2]["returns"], "several");
    assert_eq!(value["upcasts"][3]["retired"], true);
    assert_eq!(value["error"], "Closed");
}

#[test]
fn an_older_record_without_versions_or_upcasts_still_reads() {
    use es::OwnedSchema;
    let old = r#"{"name":"account","type_name":"Account","events":[{"name":"Opened","type_name":"Opened","fields":[{"name":"initial","ty":"u64"}]}],"added_later":true}"#;
    let read = OwnedSchema::from_json(old).unwrap();
    assert_eq!(read.format, OwnedSchema::FORMAT);
    assert_eq!(read.events[0].version, 1);
    assert!(read.upcasts.is_empty());
    assert!(
        read.to_markdown()
            .contains("| `Opened` | `Opened` | 1 | `initial: u64` |")
    );
}
