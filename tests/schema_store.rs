//! A store that describes itself: a host records its aggregate's schema when built, once per
//! change, keeping the older ones, over every backend; a read-only store still hosts.

use std::sync::Arc;

use es::prelude::*;
use es::{OwnedSchema, RecordedSchema};

/// The account as first written.
#[allow(unreachable_pub)]
mod v1 {
    use es::prelude::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Account {
        pub balance: u64,
    }

    #[aggregate(name = "account")]
    impl Account {
        #[command]
        fn open(&self, name: String, initial: u64) -> AccountEvent {
            AccountEvent::Opened { name, initial }
        }

        /// The account was opened.
        #[event]
        fn opened(&mut self, name: String, initial: u64) {
            let _ = name;
            self.balance = initial;
        }
    }
}

/// The same aggregate (the same `NAME`) after its `Opened` event changed shape.
#[allow(unreachable_pub)]
mod v2 {
    use es::prelude::*;

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub first: String,
        pub balance: u64,
    }

    #[aggregate(name = "account")]
    impl Account {
        #[command]
        fn open(&self, first: String, last: String, initial: u64) -> AccountEvent {
            AccountEvent::Opened {
                first,
                last,
                initial,
            }
        }

        /// The account was opened.
        #[event(version = 2)]
        fn opened(&mut self, first: String, last: String, initial: u64) {
            let _ = last;
            self.first = first;
            self.balance = initial;
        }

        /// Version 1 had one name.
        #[upcast(from = "Opened", version = 1)]
        fn opened_v1(name: String, initial: u64) -> AccountEvent {
            let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
            AccountEvent::Opened {
                first: first.to_owned(),
                last: last.to_owned(),
                initial,
            }
        }
    }
}

fn revisions(records: &[RecordedSchema]) -> Vec<(&str, u32)> {
    records
        .iter()
        .map(|r| (r.name.as_str(), r.revision))
        .collect()
}

/// Hosts of version 1, then 2, each built over a store opened afresh by `open`: the history
/// grows by one record per change, and never for a host of an unchanged aggregate.
fn records_once_per_change<S: EventStore + 'static>(open: impl Fn() -> S) {
    {
        let host = Host::<v1::Account, _>::new(open());
        let recorded = host.store().schemas().unwrap();
        assert_eq!(
            revisions(&recorded),
            [("account", 1)],
            "recorded when built"
        );
        assert_eq!(
            recorded[0].schema().unwrap(),
            v1::Account::schema().to_owned_schema()
        );
        host.execute(
            "alice",
            v1::AccountCommand::Open {
                name: "Alice Liddell".into(),
                initial: 10,
            },
        )
        .unwrap();
        // Asked again in the same process: unchanged, not recorded.
        assert_eq!(host.record_schema().unwrap(), None);
    }
    let first_at = {
        // Reopened: still one record, not recorded again.
        let host = Host::<v1::Account, _>::new(open());
        let recorded = host.store().schemas().unwrap();
        assert_eq!(
            revisions(&recorded),
            [("account", 1)],
            "unchanged after reopening"
        );
        recorded[0].recorded_at
    };
    {
        let host = Host::<v2::Account, _>::new(open());
        let recorded = host.store().schemas().unwrap();
        assert_eq!(
            revisions(&recorded),
            [("account", 1), ("account", 2)],
            "recorded again when the aggregate changed"
        );
        assert_eq!(recorded[0].recorded_at, first_at, "the older one is kept");
        assert!(recorded[1].recorded_at >= first_at);
        let v2 = recorded[1].schema().unwrap();
        assert_eq!(v2, v2::Account::schema().to_owned_schema());
        assert_eq!(v2.events[0].version, 2);
        assert_eq!(v2.upcasts[0].from, "Opened");
        assert_eq!(recorded[0].schema().unwrap().events[0].version, 1);
        // The events written by version 1 read through the upcast.
        assert_eq!(host.state("alice").unwrap().first, "Alice");
    }
    let host = Host::<v2::Account, _>::new(open());
    assert_eq!(host.store().schemas().unwrap().len(), 2);
    // A tool with no Rust types renders the newest page of each aggregate from the store.
    let all = host.store().schemas().unwrap();
    let latest = RecordedSchema::latest(&all);
    let page = latest[0].schema().unwrap().to_markdown();
    assert_eq!(page, v2::Account::schema().to_markdown());
    assert!(
        page.contains("U_Opened_v1 -. upcast .-> E_Opened"),
        "{page}"
    );
}

#[test]
fn a_host_records_its_schema_in_memory() {
    let store = Arc::new(MemoryStore::new());
    {
        let host = Host::<v1::Account, _>::new(Arc::clone(&store));
        assert_eq!(
            revisions(&host.store().schemas().unwrap()),
            [("account", 1)]
        );
    }
    let _ = Host::<v1::Account, _>::new(Arc::clone(&store));
    assert_eq!(store.schemas().unwrap().len(), 1);
    let _ = Host::<v2::Account, _>::new(Arc::clone(&store));
    assert_eq!(
        revisions(&store.schemas().unwrap()),
        [("account", 1), ("account", 2)]
    );
}

#[test]
fn a_host_records_its_schema_in_an_lmdb_store_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    records_once_per_change(|| LmdbStore::open(dir.path()).unwrap());
}

#[test]
fn a_host_over_a_read_only_store_builds_and_reads_without_recording() {
    let dir = tempfile::tempdir().unwrap();
    {
        let host = Host::<v1::Account, _>::new(LmdbStore::open(dir.path()).unwrap());
        host.execute(
            "alice",
            v1::AccountCommand::Open {
                name: "Alice Liddell".into(),
                initial: 10,
            },
        )
        .unwrap();
    }
    let read_only = || LmdbOptions::new().read_only(true).open(dir.path()).unwrap();
    // The same aggregate: nothing to record, which a read-only store can say.
    let host = Host::<v1::Account, _>::new(read_only());
    assert_eq!(host.record_schema().unwrap(), None);
    drop(host);
    // A changed aggregate over a read-only store: it cannot record, and it still hosts.
    let host = Host::<v2::Account, _>::new(read_only());
    assert_eq!(host.state("alice").unwrap().balance, 10);
    assert!(matches!(
        host.record_schema(),
        Err(es::WriteError::ReadOnly { .. })
    ));
    assert_eq!(
        revisions(&host.store().schemas().unwrap()),
        [("account", 1)]
    );
}

#[test]
fn a_host_can_be_told_not_to_record() {
    let store = Arc::new(MemoryStore::new());
    let host = Host::<v1::Account, _>::builder(Arc::clone(&store))
        .record_schema(false)
        .build();
    assert!(store.schemas().unwrap().is_empty());
    assert_eq!(host.record_schema().unwrap().unwrap().revision, 1);
}

#[test]
fn a_recorded_schema_is_plain_json() {
    let store = Arc::new(MemoryStore::new());
    let _host = Host::<v2::Account, _>::new(Arc::clone(&store));
    let record = &store.schemas().unwrap()[0];
    let value: serde_json::Value = serde_json::from_str(&record.json).unwrap();
    assert_eq!(value["format"], OwnedSchema::FORMAT);
    assert_eq!(value["name"], "account");
    assert_eq!(value["events"][0]["type_name"], "Opened");
    assert_eq!(value["events"][0]["version"], 2);
    assert_eq!(value["events"][0]["fields"][1]["name"], "last");
    assert_eq!(value["upcasts"][0]["fields"][0]["ty"], "String");
}

#[cfg(feature = "postgres")]
#[allow(unreachable_pub)]
#[path = "../es-runtime/tests/postgres/server.rs"]
mod server;

#[cfg(feature = "postgres")]
#[test]
fn a_host_records_its_schema_in_a_postgres_store_across_reopens() {
    let options = server::options();
    records_once_per_change(|| options.open().unwrap());
}
