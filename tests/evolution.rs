//! An aggregate whose events change shape: a store written by version 1 of its code is read
//! by versions 2 and 3, through the upcasts they declare, by the host, `state_at` and a
//! projection alike, and copied at the current shapes by `es::migrate`; the stored bytes
//! never change. The store scenarios run over every backend (memory, LMDB, PostgreSQL) from
//! one definition.

#[path = "../es-runtime/tests/postgres/server.rs"]
mod server;

use std::sync::Arc;

use es::NewEvent;
use es::history::state_at;
use es::migrate::{self, Migration};
use es::prelude::*;
use es::projection::ProjectionRunner;
use es::read::AsOf;

/// Makes a `#[test]` per backend of each generic test function named, which takes a maker of
/// fresh, empty stores: `memory::name`, `lmdb::name` (temporary stores that do not fsync) and
/// `postgres::name` (a fresh schema of the shared server each, see `server.rs`).
macro_rules! over_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $test() {
                    super::$test(es::MemoryStore::new);
                }
            )*
        }
        #[cfg(feature = "lmdb")]
        mod lmdb {
            $(
                #[test]
                fn $test() {
                    super::$test(|| {
                        let options = es::LmdbOptions::new()
                            .durability(es::Durability::NoSync);
                        es::LmdbStore::temporary(options).expect("opens a temporary store")
                    });
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(crate::server::store);
                }
            )*
        }
    };
}

over_every_backend!(
    a_store_written_by_version_1_reads_through_versions_2_and_3,
    a_version_the_event_type_does_not_know_is_a_typed_error,
    an_event_upcast_to_several_is_not_one_event,
);

/// The code as it was first written.
#[allow(unreachable_pub)]
#[path = "support/bank_v1.rs"]
mod v1;

/// The owner became a struct (`Opened` version 2).
#[allow(unreachable_pub)]
mod v2 {
    use es::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Owner {
        pub name: String,
        pub email: Option<String>,
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct BankAccount {
        pub owner: Option<Owner>,
        pub balance: u64,
        pub frozen: bool,
    }

    #[aggregate]
    impl BankAccount {
        #[command]
        fn open(&self, owner: Owner, initial: u64) -> BankAccountEvent {
            BankAccountEvent::Opened { owner, initial }
        }

        #[event(version = 2)]
        fn opened(&mut self, owner: Owner, initial: u64) {
            self.owner = Some(owner);
            self.balance = initial;
        }

        /// Version 1 stored the owner as a plain name.
        #[upcast(from = "Opened", version = 1)]
        fn opened_v1(name: String, initial: u64) -> BankAccountEvent {
            BankAccountEvent::Opened {
                owner: Owner { name, email: None },
                initial,
            }
        }

        #[event]
        fn withdrawn(&mut self, amount: u64, fee: u64) {
            self.balance -= amount + fee;
        }

        #[event]
        fn frozen(&mut self, reason: String) {
            let _ = reason;
            self.frozen = true;
        }
    }
}

/// The owner's name split in two (`Opened` version 3), a withdrawal split into the
/// withdrawal and its fee, and freezing gone.
#[allow(unreachable_pub)]
mod v3 {
    use es::prelude::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct BankAccount {
        pub first: String,
        pub last: String,
        pub email: Option<String>,
        pub balance: u64,
        pub fees: u64,
    }

    #[aggregate]
    impl BankAccount {
        #[command]
        fn deposit(&self, amount: u64) -> BankAccountEvent {
            BankAccountEvent::Deposited { amount }
        }

        #[event(version = 3)]
        fn opened(&mut self, first: String, last: String, email: Option<String>, initial: u64) {
            (self.first, self.last, self.email) = (first, last, email);
            self.balance = initial;
        }

        /// Version 1: a plain name; read through version 2's upcast.
        #[upcast(from = "Opened", version = 1)]
        fn opened_v1(name: String, initial: u64) -> BankAccountEvent {
            Self::opened_v2(super::v2::Owner { name, email: None }, initial)
        }

        /// Version 2: the owner as one struct with one name.
        #[upcast(from = "Opened", version = 2)]
        fn opened_v2(owner: super::v2::Owner, initial: u64) -> BankAccountEvent {
            let (first, last) = owner.name.split_once(' ').unwrap_or((&owner.name, ""));
            BankAccountEvent::Opened {
                first: first.to_owned(),
                last: last.to_owned(),
                email: owner.email.clone(),
                initial,
            }
        }

        #[event]
        fn deposited(&mut self, amount: u64) {
            self.balance += amount;
        }

        #[event(version = 2)]
        fn withdrawn(&mut self, amount: u64) {
            self.balance -= amount;
        }

        #[event]
        fn fee_charged(&mut self, fee: u64) {
            self.balance -= fee;
            self.fees += fee;
        }

        /// Version 1 held the fee too: one event became two.
        #[upcast(from = "Withdrawn", version = 1)]
        fn withdrawn_v1(amount: u64, fee: u64) -> Vec<BankAccountEvent> {
            vec![
                BankAccountEvent::Withdrawn { amount },
                BankAccountEvent::FeeCharged { fee },
            ]
        }

        /// Freezing is gone: its events are dropped on read.
        #[upcast(from = "Frozen", version = 1, retired)]
        fn frozen_v1(reason: String) -> Option<BankAccountEvent> {
            let _ = reason;
            None
        }
    }
}

/// The fees and the events seen, as a read model.
#[derive(Default)]
struct Fees {
    fees: u64,
    events: Vec<(u64, v3::BankAccountEvent)>,
}

impl Projection for Fees {
    type Event = v3::BankAccountEvent;
    type Error = std::convert::Infallible;

    fn name(&self) -> &str {
        "fees"
    }

    fn apply(&mut self, e: Envelope<'_, Self::Event>) -> Result<(), Self::Error> {
        if let v3::BankAccountEvent::FeeCharged { fee } = e.event {
            self.fees += fee;
        }
        self.events.push((e.position, e.event.clone()));
        Ok(())
    }

    fn reset(&mut self) -> Result<(), Self::Error> {
        *self = Fees::default();
        Ok(())
    }
}

fn write_with_v1<S: EventStore + 'static>(store: &Arc<S>) {
    let host = Host::<v1::BankAccount, _>::new(store.clone());
    host.execute(
        "1",
        v1::BankAccountCommand::Open {
            name: "Ann Lee".into(),
            initial: 100,
        },
    )
    .unwrap();
    host.execute("1", v1::BankAccountCommand::Withdraw { amount: 30, fee: 2 })
        .unwrap();
    host.execute(
        "1",
        v1::BankAccountCommand::Freeze {
            reason: "audit".into(),
        },
    )
    .unwrap();
}

/// What version 3 reads of account 1, written by version 1.
fn ann() -> v3::BankAccount {
    v3::BankAccount {
        first: "Ann".into(),
        last: "Lee".into(),
        email: None,
        balance: 68,
        fees: 2,
    }
}

/// The fees and the events a projection of version 3 sees in `store`.
fn project<S: EventStore + 'static>(store: &Arc<S>) -> Fees {
    let mut runner = ProjectionRunner::new(store.clone(), Fees::default());
    runner.catch_up().unwrap();
    let Fees { fees, events } = runner.projection();
    Fees {
        fees: *fees,
        events: events.clone(),
    }
}

fn a_store_written_by_version_1_reads_through_versions_2_and_3<S: EventStore + 'static>(
    make: impl Fn() -> S,
) {
    let store = Arc::new(make());
    write_with_v1(&store);
    let stream = StreamId::parse("bank_account-1").unwrap();
    let stored = store.read_stream(&stream, 1, usize::MAX).unwrap();
    assert!(stored.iter().all(|e| e.event_version == 1));

    // Version 2: the owner is read into its struct.
    let host = Host::<v2::BankAccount, _>::new(store.clone());
    let state = host.state("1").unwrap();
    let owner = v2::Owner {
        name: "Ann Lee".into(),
        email: None,
    };
    assert_eq!(
        (state.owner.as_ref(), state.balance, state.frozen),
        (Some(&owner), 68, true)
    );
    // Opened anew at version 2, beside the old one.
    let opened = host
        .execute(
            "2",
            v2::BankAccountCommand::Open {
                owner: v2::Owner {
                    name: "Bo Ek".into(),
                    email: Some("bo@example.com".into()),
                },
                initial: 5,
            },
        )
        .unwrap();
    assert_eq!(opened.events[0].event_version, 2);
    drop(host);

    // Version 3: names split, the fee its own event, the freeze gone.
    let host = Host::<v3::BankAccount, _>::new(store.clone());
    assert_eq!(host.state("1").unwrap(), ann());
    let bo = host.state("2").unwrap();
    assert_eq!(
        (bo.first.as_str(), bo.last.as_str(), bo.email.as_deref()),
        ("Bo", "Ek", Some("bo@example.com"))
    );
    let at = state_at::<v3::BankAccount, _>(&*store, &stream, AsOf::Version(u64::MAX)).unwrap();
    assert_eq!((at.state, at.version), (ann(), 3));
    let after_open = state_at::<v3::BankAccount, _>(&*store, &stream, AsOf::Version(1)).unwrap();
    assert_eq!(after_open.state.balance, 100);
    drop(host);

    // A projection sees the withdrawal as two events at one position, and no freeze.
    let fees = project(&store);
    assert_eq!(fees.fees, 2);
    let positions: Vec<u64> = fees.events.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, [1, 2, 2, 4]);
    assert_eq!(
        fees.events[1..3]
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        [
            v3::BankAccountEvent::Withdrawn { amount: 30 },
            v3::BankAccountEvent::FeeCharged { fee: 2 },
        ]
    );
    // The stored bytes did not change.
    assert_eq!(store.read_stream(&stream, 1, usize::MAX).unwrap(), stored);
    // Each version's host recorded its schema: the aggregate's history has three revisions.
    let history = store.schemas().unwrap();
    let revisions: Vec<(&str, u32)> = history
        .iter()
        .map(|r| (r.name.as_str(), r.revision))
        .collect();
    assert_eq!(
        revisions,
        [
            ("bank_account", 1),
            ("bank_account", 2),
            ("bank_account", 3)
        ]
    );
    let current = history[2].schema().unwrap();
    let opened = current.events.iter().find(|e| e.name == "Opened").unwrap();
    assert_eq!(opened.version, 3);

    // A copy through the upcasts holds every event at its current shape: the freeze
    // dropped, the fee its own event; the schema history carried as it was.
    let copy = Arc::new(make());
    let report = Migration::new(&*store, &*copy)
        .transform(migrate::upcast::<v3::BankAccount>())
        .run()
        .unwrap();
    assert_eq!(
        (report.read, report.dropped, report.added, report.written),
        (4, 1, 1, 4)
    );
    assert_eq!(report.schemas_copied, 3);
    let shapes: Vec<(String, u32)> = copy
        .read_all(1, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| (e.event_type.to_string(), e.event_version))
        .collect();
    let shape = |t: &str, v| (t.to_owned(), v);
    assert_eq!(
        shapes,
        [
            shape("Opened", 3),
            shape("Withdrawn", 2),
            shape("FeeCharged", 1),
            shape("Opened", 3)
        ]
    );
    // It reads the same: host state, `state_at`, and the projection's events.
    let host = Host::<v3::BankAccount, _>::new(copy.clone());
    assert_eq!(host.state("1").unwrap(), ann());
    assert_eq!(host.state("2").unwrap(), bo);
    let at = state_at::<v3::BankAccount, _>(&*copy, &stream, AsOf::Version(u64::MAX)).unwrap();
    assert_eq!((at.state, at.version), (ann(), 3));
    drop(host);
    let copied = project(&copy);
    assert_eq!(copied.fees, fees.fees);
    let events = |f: &Fees| f.events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>();
    assert_eq!(events(&copied), events(&fees));
    assert_eq!(
        copy.schemas().unwrap(),
        history,
        "the current code's schema is the newest"
    );
}

fn a_version_the_event_type_does_not_know_is_a_typed_error<S: EventStore + 'static>(
    make: impl Fn() -> S,
) {
    let store = make();
    let stream = StreamId::parse("bank_account-9").unwrap();
    let payload = es::codec::encode(&v3::BankAccountEvent::Deposited { amount: 1 }).unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::raw("Deposited", payload).with_event_version(7)],
        )
        .unwrap();
    let err = Host::<v3::BankAccount, _>::new(store)
        .state("9")
        .unwrap_err();
    match err {
        es::LoadError::Decode(es::DecodeError::UnknownVersion {
            event_type,
            event_version,
            ..
        }) => assert_eq!((event_type.as_str(), event_version), ("Deposited", 7)),
        other => panic!("{other:?}"),
    }
}

fn an_event_upcast_to_several_is_not_one_event<S: EventStore + 'static>(make: impl Fn() -> S) {
    let store = make();
    let stream = StreamId::parse("bank_account-3").unwrap();
    let payload =
        es::codec::encode(&v1::BankAccountEvent::Withdrawn { amount: 1, fee: 1 }).unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::raw("Withdrawn", payload)],
        )
        .unwrap();
    let read = store.read_stream(&stream, 1, usize::MAX).unwrap();
    let all = read[0]
        .clone()
        .decode_all::<v3::BankAccountEvent>()
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.position == 1));
    assert!(matches!(
        read[0].clone().decode::<v3::BankAccountEvent>(),
        Err(es::DecodeError::NotOneEvent { count: 2, .. })
    ));
}

mod stored_payloads {
    //! The given/when/then statement of evolution: stored payloads, as JSON, of each version
    //! read as the current events.

    use es::testing::AggregateTest;
    use serde_json::json;

    use super::{v1, v2, v3};

    #[test]
    fn payloads_of_versions_1_and_2_read_as_the_current_events() {
        AggregateTest::<v3::BankAccount>::stored(
            "Opened",
            1,
            json!({"name": "Ada Lovelace", "initial": 10}),
        )
        .stored(
            "Opened",
            2,
            json!({"owner": {"name": "Grace Hopper", "email": "g@navy.mil"}, "initial": 20}),
        )
        .stored(
            "Opened",
            3,
            json!({"first": "Alan", "last": "Turing", "email": null, "initial": 30}),
        )
        .stored("Withdrawn", 1, json!({"amount": 4, "fee": 1}))
        .stored("Frozen", 1, json!({"reason": "audit"}))
        .stored("Deposited", 1, json!({"amount": 7}))
        .reads_as([
            v3::BankAccountEvent::Opened {
                first: "Ada".into(),
                last: "Lovelace".into(),
                email: None,
                initial: 10,
            },
            v3::BankAccountEvent::Opened {
                first: "Grace".into(),
                last: "Hopper".into(),
                email: Some("g@navy.mil".into()),
                initial: 20,
            },
            v3::BankAccountEvent::Opened {
                first: "Alan".into(),
                last: "Turing".into(),
                email: None,
                initial: 30,
            },
            // One event became two, and freezing is dropped.
            v3::BankAccountEvent::Withdrawn { amount: 4 },
            v3::BankAccountEvent::FeeCharged { fee: 1 },
            v3::BankAccountEvent::Deposited { amount: 7 },
        ]);

        AggregateTest::<v2::BankAccount>::stored("Opened", 1, json!({"name": "Ada", "initial": 1}))
            .reads_as([v2::BankAccountEvent::Opened {
                owner: v2::Owner {
                    name: "Ada".into(),
                    email: None,
                },
                initial: 1,
            }]);
    }

    /// The JSON the helper takes is what the store holds inside `{"Type": ...}`: the fields of
    /// an event written by version 1 of the code, read back from its payload, read as the
    /// helper reads them.
    #[test]
    fn the_json_is_the_stored_payload_of_the_old_code() {
        let written = v1::BankAccountEvent::Withdrawn { amount: 9, fee: 2 };
        let payload = es::codec::encode(&written).unwrap();
        let stored = es::codec::to_json(&payload).unwrap();
        let fields = stored["Withdrawn"].clone();
        assert_eq!(fields, json!({"amount": 9, "fee": 2}));
        AggregateTest::<v3::BankAccount>::stored("Withdrawn", 1, fields).reads_as([
            v3::BankAccountEvent::Withdrawn { amount: 9 },
            v3::BankAccountEvent::FeeCharged { fee: 2 },
        ]);
    }

    #[test]
    fn stored_payloads_give_the_state_for_a_command() {
        let test = AggregateTest::<v3::BankAccount>::stored(
            "Opened",
            1,
            json!({"name": "Ada Lovelace", "initial": 10}),
        )
        .stored("Withdrawn", 1, json!({"amount": 4, "fee": 1}))
        .given();
        assert_eq!(test.version(), 3);
        assert_eq!((test.state().balance, test.state().fees), (5, 1));
        let account = test
            .when(v3::BankAccountCommand::Deposit { amount: 5 })
            .then([v3::BankAccountEvent::Deposited { amount: 5 }]);
        assert_eq!(account.balance, 10);
    }

    #[test]
    #[should_panic(expected = "the stored payloads read as other events than expected

stored payload -> read as:
  1. `Withdrawn` version 1 {\"amount\":4,\"fee\":1}
     -> [Withdrawn { amount: 4 }, FeeCharged { fee: 1 }]

read:     [Withdrawn { amount: 4 }, FeeCharged { fee: 1 }]
expected: [Withdrawn { amount: 4 }]
read 2 events, expected 1")]
    fn a_wrong_expectation_shows_what_each_payload_read_as() {
        AggregateTest::<v3::BankAccount>::stored("Withdrawn", 1, json!({"amount": 4, "fee": 1}))
            .reads_as([v3::BankAccountEvent::Withdrawn { amount: 4 }]);
    }

    #[test]
    #[should_panic(
        expected = "first difference at event 1: read Deposited { amount: 7 }, \
                               expected Deposited { amount: 8 }"
    )]
    fn a_wrong_event_is_pointed_at() {
        AggregateTest::<v3::BankAccount>::stored("Deposited", 1, json!({"amount": 7}))
            .reads_as([v3::BankAccountEvent::Deposited { amount: 8 }]);
    }

    #[test]
    #[should_panic(
        expected = "stored payload 2 (`Opened` version 2 {\"initial\":1,\"owner\":\"Ada\"}) \
                               does not read: "
    )]
    fn a_payload_that_does_not_read_is_named() {
        AggregateTest::<v3::BankAccount>::stored("Deposited", 1, json!({"amount": 7}))
            .stored("Opened", 2, json!({"owner": "Ada", "initial": 1}))
            .reads_as([]);
    }

    #[test]
    fn a_version_without_an_upcast_is_the_readers_error() {
        let err = AggregateTest::<v3::BankAccount>::stored("Opened", 9, json!({"initial": 1}))
            .read()
            .unwrap_err();
        assert!(
            matches!(
                &err,
                es::DecodeError::UnknownVersion {
                    event_version: 9,
                    version: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
