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
    assert!(md.contains("| `Deposited` | `MoneyDeposited` | `amount: u64` | Money was put in. |"));
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
            "| `Added` | `TaskAdded` (also `TodoAdded`) | `task: String` | A task was added. |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| `Cleared` | `Cleared` (also `Emptied`, `Reset`) | — | The list was cleared. |"
        ),
        "{md}"
    );
}
