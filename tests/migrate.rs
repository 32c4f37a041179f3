//! `es::migrate` over real aggregates: a store written by version 1 of an aggregate, copied
//! through the upcast transform, reads the same by the current code with every event stored
//! at its current shape; and the voting example's store, moved from LMDB to PostgreSQL and
//! back, counts the same three ways.

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/voting/poll.rs"]
mod poll;

#[path = "../es-runtime/tests/postgres/server.rs"]
mod server;

use std::sync::Arc;

use es::history::state_at;
use es::migrate::{self, Migration};
use es::prelude::*;
use es::read::AsOf;

use poll::{OneBallotPerVoter, OneValidBallotPerVoter, Rule};

/// The code as it was first written: the owner a plain name, the fee inside the withdrawal,
/// accounts that can be frozen.
#[allow(unreachable_pub)]
#[path = "support/bank_v1.rs"]
mod v1;

/// The current code: the name split in two (`Opened` version 2), the fee its own event
/// (`Withdrawn` version 2 and `FeeCharged`), freezing gone.
#[allow(unreachable_pub)]
mod current {
    use es::prelude::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct BankAccount {
        pub first: String,
        pub last: String,
        pub balance: u64,
        pub fees: u64,
    }

    #[aggregate]
    impl BankAccount {
        #[command]
        fn deposit(&self, amount: u64) -> BankAccountEvent {
            BankAccountEvent::Deposited { amount }
        }

        #[event(version = 2)]
        fn opened(&mut self, first: String, last: String, initial: u64) {
            (self.first, self.last) = (first, last);
            self.balance = initial;
        }

        /// Version 1 stored one name.
        #[upcast(from = "Opened", version = 1)]
        fn opened_v1(name: String, initial: u64) -> BankAccountEvent {
            let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
            BankAccountEvent::Opened {
                first: first.to_owned(),
                last: last.to_owned(),
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

        /// Freezing is gone.
        #[upcast(from = "Frozen", version = 1, retired)]
        fn frozen_v1(reason: String) -> Option<BankAccountEvent> {
            let _ = reason;
            None
        }
    }
}

fn write_with_v1(store: &Arc<LmdbStore>) {
    let host = Host::<v1::BankAccount, _>::new(store.clone());
    for id in ["1", "2"] {
        let open = v1::BankAccountCommand::Open {
            name: format!("Ann Lee{id}"),
            initial: 100,
        };
        host.execute(id, open).unwrap();
        host.execute(id, v1::BankAccountCommand::Withdraw { amount: 30, fee: 2 })
            .unwrap();
        let freeze = v1::BankAccountCommand::Freeze {
            reason: "audit".into(),
        };
        host.execute(id, freeze).unwrap();
        host.execute(id, v1::BankAccountCommand::Withdraw { amount: 8, fee: 1 })
            .unwrap();
    }
}

#[test]
fn a_store_of_version_1_events_migrated_through_the_upcasts_reads_the_same_at_the_current_version()
{
    let dir = tempfile::tempdir().unwrap();
    let old = Arc::new(LmdbStore::open(dir.path().join("old")).unwrap());
    write_with_v1(&old);
    let stored = old.read_all(1, usize::MAX).unwrap();
    assert!(stored.iter().all(|e| e.event_version == 1));

    let new = Arc::new(LmdbStore::open(dir.path().join("new")).unwrap());
    let report = Migration::new(&*old, &*new)
        .transform(migrate::upcast::<current::BankAccount>())
        .run()
        .unwrap();
    // Per account: the freeze dropped, each withdrawal split in two.
    assert_eq!(
        (report.read, report.dropped, report.added, report.written),
        (8, 2, 4, 10)
    );

    // The copy holds every event at its current shape, keeping ids and timestamps; the
    // added fee events have ids of their own, the same on every run.
    let copied = new.read_all(1, usize::MAX).unwrap();
    let shapes: Vec<(&str, u32)> = copied
        .iter()
        .take(5)
        .map(|e| (&*e.event_type, e.event_version))
        .collect();
    assert_eq!(
        shapes,
        [
            ("Opened", 2),
            ("Withdrawn", 2),
            ("FeeCharged", 1),
            ("Withdrawn", 2),
            ("FeeCharged", 1)
        ]
    );
    let positions: Vec<u64> = copied.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    assert_eq!(copied[0].event_id, stored[0].event_id);
    assert_eq!(copied[1].event_id, stored[1].event_id);
    assert_eq!(
        copied[2].event_id,
        migrate::derived_id(stored[1].event_id, 1)
    );
    assert_eq!(copied[3].event_id, stored[3].event_id, "the freeze is gone");
    assert_eq!(copied[2].timestamp, stored[1].timestamp);
    let versions: Vec<u64> = copied.iter().take(5).map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);

    // The current code reads the same state from both, by the host and by `state_at`.
    let expected = current::BankAccount {
        first: "Ann".into(),
        last: "Lee1".into(),
        balance: 59,
        fees: 3,
    };
    let from_old = Host::<current::BankAccount, _>::new(old.clone());
    let from_new = Host::<current::BankAccount, _>::new(new.clone());
    assert_eq!(from_old.state("1").unwrap(), expected);
    assert_eq!(from_new.state("1").unwrap(), expected);
    assert_eq!(from_old.state("2").unwrap(), from_new.state("2").unwrap());
    let stream = StreamId::parse("bank_account-1").unwrap();
    let at_old = state_at::<current::BankAccount, _>(&old, &stream, AsOf::Version(u64::MAX));
    let at_new = state_at::<current::BankAccount, _>(&new, &stream, AsOf::Version(u64::MAX));
    assert_eq!(at_old.unwrap().state, at_new.unwrap().state);
    drop((from_old, from_new));

    // Migrated again, the copy is kept byte for byte: it is at the current shape already.
    let again = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    let report = Migration::new(&*new, &again)
        .transform(migrate::upcast::<current::BankAccount>())
        .run()
        .unwrap();
    assert_eq!((report.dropped, report.added), (0, 0));
    assert_eq!(again.read_all(1, usize::MAX).unwrap(), copied);
}

#[test]
fn the_voting_store_moved_from_lmdb_to_postgresql_and_back_counts_the_same_three_ways() {
    let dir = tempfile::tempdir().unwrap();
    let lmdb = Arc::new(LmdbStore::open(dir.path().join("votes")).unwrap());
    let voters = poll::voters(400, 2024);
    poll::vote(lmdb.clone(), &voters, 4).unwrap();
    let counts = poll::count(lmdb.clone(), |_| {}).unwrap();
    let checkpoints = lmdb.checkpoints().unwrap();
    assert_eq!(checkpoints.len(), 3, "{checkpoints:?}");

    let postgres = server::store();
    let there = Migration::new(&*lmdb, &postgres)
        .checkpoints(true)
        .batch_size(128)
        .run()
        .unwrap();
    let back = LmdbStore::open(dir.path().join("back")).unwrap();
    let returned = Migration::new(&postgres, &back)
        .checkpoints(true)
        .batch_size(100)
        .run()
        .unwrap();
    let head = lmdb.head_position().unwrap();
    assert_eq!((there.written, returned.written), (head, head));

    let original = lmdb.read_all(1, usize::MAX).unwrap();
    let stores: [(&str, &dyn EventStore); 2] = [("PostgreSQL", &postgres), ("LMDB again", &back)];
    for (name, store) in stores {
        assert_eq!(store.read_all(1, usize::MAX).unwrap(), original, "{name}");
        assert_eq!(store.checkpoints().unwrap(), checkpoints, "{name}");
        let every = poll::replay(store, poll::EveryBallot::default()).unwrap();
        let last = poll::replay(store, OneBallotPerVoter::new(Rule::Last)).unwrap();
        let valid = poll::replay(store, OneValidBallotPerVoter::default()).unwrap();
        assert_eq!(every.tally(), counts.every.tally(), "{name}: every ballot");
        assert_eq!(
            last.tally(),
            counts.last.tally(),
            "{name}: last ballot per voter"
        );
        assert_eq!(
            valid.tally(),
            counts.valid.tally(),
            "{name}: last valid per voter"
        );
    }
    assert!(counts.every.tally().total() > counts.last.tally().total());

    // The poll's state is the same from the copy, through a host.
    let host = Host::<poll::Poll, _>::new(back);
    assert_eq!(host.state(poll::POLL).unwrap().ballots(), {
        let from = Host::<poll::Poll, _>::new(lmdb.clone());
        from.state(poll::POLL).unwrap().ballots()
    });
}
