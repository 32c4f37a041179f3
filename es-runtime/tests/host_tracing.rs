//! The host's `tracing` spans: one `es.execute` span per command, naming its stream, inside
//! the caller's span, whether the command runs on the caller's thread or the host's pool.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use common::{Account, AccountCommand};
use es_runtime::{Host, MemoryStore};
use tracing::span::{Attributes, Id, Record};

/// A span as recorded: its name, its fields and its parent's id.
#[derive(Debug, Clone)]
struct Recorded {
    metadata: &'static tracing::Metadata<'static>,
    name: &'static str,
    fields: HashMap<&'static str, String>,
    parent: Option<u64>,
}

/// Records every span, with the parent it was opened in.
#[derive(Default)]
struct Spans {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Recorded>>,
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut HashMap<&'static str, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = if let Some(parent) = attrs.parent() {
            Some(parent.into_u64())
        } else if attrs.is_contextual() {
            ENTERED.with(|e| e.borrow().last().copied())
        } else {
            None
        };
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let span = Recorded {
            metadata: attrs.metadata(),
            name: attrs.metadata().name(),
            fields,
            parent,
        };
        self.spans.lock().unwrap().insert(id, span);
        Id::from_u64(id)
    }
    fn current_span(&self) -> tracing_core::span::Current {
        match ENTERED.with(|e| e.borrow().last().copied()) {
            Some(id) => {
                let metadata = self.spans.lock().unwrap()[&id].metadata;
                tracing_core::span::Current::new(Id::from_u64(id), metadata)
            }
            None => tracing_core::span::Current::none(),
        }
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, id: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(id.into_u64()));
    }
    fn exit(&self, id: &Id) {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            if let Some(i) = e.iter().rposition(|&x| x == id.into_u64()) {
                e.remove(i);
            }
        });
    }
}

/// The process's recorder, installed once as the global subscriber (the async commands run
/// on the host's own threads).
fn spans() -> &'static Arc<Spans> {
    static SPANS: OnceLock<Arc<Spans>> = OnceLock::new();
    SPANS.get_or_init(|| {
        let spans = Arc::new(Spans::default());
        tracing::subscriber::set_global_default(spans.clone()).expect("the only subscriber");
        spans
    })
}

/// The `es.execute` spans recorded for `stream`.
fn execute_spans(stream: &str) -> Vec<Recorded> {
    spans()
        .spans
        .lock()
        .unwrap()
        .values()
        .filter(|s| {
            s.name == "es.execute" && s.fields.get("stream").map(String::as_str) == Some(stream)
        })
        .cloned()
        .collect()
}

/// The id of the one span named `name` whose field `test` is `value`.
fn span_id(name: &str, value: &str) -> u64 {
    let spans = spans().spans.lock().unwrap();
    let ids: Vec<u64> = spans
        .iter()
        .filter(|(_, s)| s.name == name && s.fields.get("test").map(String::as_str) == Some(value))
        .map(|(&id, _)| id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0]
}

#[test]
fn each_command_has_a_span_inside_the_callers() {
    spans();
    let host = Host::<Account, _>::new(MemoryStore::new());
    tracing::info_span!("request", test = "blocking").in_scope(|| {
        host.execute("blocking", AccountCommand::Deposit(1))
            .unwrap();
        host.execute("blocking", AccountCommand::Withdraw(99))
            .unwrap_err();
    });
    let caller = span_id("request", "blocking");
    let commands = execute_spans("account-blocking");
    assert_eq!(commands.len(), 2, "one span per command, refused or not");
    assert!(
        commands.iter().all(|s| s.parent == Some(caller)),
        "{commands:?}"
    );
}

#[test]
fn an_async_command_has_its_span_inside_the_callers_too() {
    spans();
    let host = Host::<Account, _>::new(MemoryStore::new());
    let command = tracing::info_span!("request", test = "async")
        .in_scope(|| host.execute_async("async", AccountCommand::Deposit(1)));
    common::block_on(command).unwrap();
    let caller = span_id("request", "async");
    let commands = execute_spans("account-async");
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].parent, Some(caller), "{commands:?}");
}
