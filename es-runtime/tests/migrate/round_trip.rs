//! memory → LMDB → PostgreSQL → LMDB, equal event by event, with snapshots and checkpoints.

use es_runtime::migrate::{self, Migration, Progress};
use es_runtime::{EventStore, LmdbOptions, LmdbStore, MemoryStore};

use crate::{fill, log, server, snapshots};

#[test]
fn memory_to_lmdb_to_postgres_to_lmdb_keeps_every_event_as_it_was() {
    let memory = MemoryStore::new();
    fill(&memory);
    let original = log(&memory);
    assert!(original.len() > 100);

    let dir = tempfile::tempdir().unwrap();
    let lmdb = LmdbStore::open(dir.path().join("first")).unwrap();
    let postgres = server::store();
    let back = LmdbStore::open(dir.path().join("back")).unwrap();
    let hops: [(&dyn EventStore, &dyn EventStore); 3] =
        [(&memory, &lmdb), (&lmdb, &postgres), (&postgres, &back)];
    for (i, (from, to)) in hops.into_iter().enumerate() {
        let mut seen = Vec::new();
        let report = Migration::new(from, to)
            .batch_size(7 + i * 10)
            .checkpoints(true)
            .progress(|p: Progress| seen.push(p))
            .run()
            .unwrap();
        let n = original.len() as u64;
        assert_eq!(
            (report.read, report.written, report.dropped, report.added),
            (n, n, 0, 0)
        );
        assert_eq!((report.first_position, report.last_position), (1, n));
        assert_eq!(report.streams, 4);
        assert_eq!((report.snapshots_copied, report.snapshots_skipped), (3, 0));
        assert_eq!(report.checkpoints_copied, 3);
        assert_eq!(report.schemas_copied, 3);
        assert!(report.verified);
        assert_eq!(
            log(to),
            original,
            "hop {i}: ids, timestamps, metadata, positions, versions"
        );
        assert_eq!(snapshots(to), snapshots(&memory), "hop {i}");
        assert_eq!(
            to.checkpoints().unwrap(),
            memory.checkpoints().unwrap(),
            "hop {i}"
        );
        assert_eq!(
            to.schemas().unwrap(),
            memory.schemas().unwrap(),
            "hop {i}: revisions, times and texts"
        );
        // Progress climbs to the total, once per batch and once at the end.
        assert!(seen.windows(2).all(|w| w[0].read <= w[1].read));
        let last = seen.last().unwrap();
        assert_eq!((last.read, last.total, last.written), (n, n, n));
        assert!(seen.len() as u64 >= n / (7 + i as u64 * 10));
    }
    // Reopened from disk, the copy is the same, and it takes appends where the source would.
    drop(back);
    let back = LmdbStore::open(dir.path().join("back")).unwrap();
    assert_eq!(log(&back), original);
    // Imported records are as sound as appended ones: back pointers, index, heads.
    for store in [&lmdb, &back] {
        let checked = store.verify().unwrap();
        assert!(checked.is_sound(), "{:?}", checked.damage);
        assert_eq!(checked.events, original.len() as u64);
        assert_eq!((checked.snapshots, checked.checkpoints), (3, 3));
    }
    let s = crate::stream("account-1");
    let version = memory.stream_version(&s).unwrap();
    assert_eq!(back.stream_version(&s).unwrap(), version);
    let r = back
        .append(
            &s,
            es_runtime::ExpectedVersion::Exact(version),
            vec![crate::event("X", 0, 1)],
        )
        .unwrap();
    assert_eq!(r.first_position, original.len() as u64 + 1);
    assert!(r.timestamp >= original.last().unwrap().timestamp);
}

#[test]
fn snapshots_and_checkpoints_are_carried_or_left_by_choice() {
    let source = MemoryStore::new();
    fill(&source);
    let bare = MemoryStore::new();
    let report = Migration::new(&source, &bare)
        .snapshots(false)
        .checkpoints(false)
        .schemas(false)
        .run()
        .unwrap();
    assert_eq!((report.snapshots_copied, report.checkpoints_copied), (0, 0));
    assert_eq!(report.schemas_copied, 0);
    assert_eq!(bare.schemas().unwrap(), []);
    assert_eq!(log(&bare), log(&source));
    assert!(snapshots(&bare).is_empty());
    assert_eq!(bare.checkpoints().unwrap(), []);

    // The defaults: snapshots and schemas carried, checkpoints left behind (their read models are not
    // moved), so that projections rebuild in the target.
    let default = MemoryStore::new();
    let report = migrate::copy(&source, &default).unwrap();
    assert_eq!((report.snapshots_copied, report.checkpoints_copied), (3, 0));
    assert_eq!(report.schemas_copied, 3);
    assert_eq!(default.schemas().unwrap(), source.schemas().unwrap());
    assert_eq!(snapshots(&default), snapshots(&source));
    assert_eq!(default.checkpoints().unwrap(), []);

    let both = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    Migration::new(&source, &both)
        .checkpoints(true)
        .run()
        .unwrap();
    assert_eq!(snapshots(&both), snapshots(&source));
    assert_eq!(both.checkpoints().unwrap(), source.checkpoints().unwrap());
}

#[cfg(feature = "progress")]
#[test]
fn the_terminal_bar_stays_hidden_off_a_terminal() {
    use std::io::IsTerminal;
    let source = MemoryStore::new();
    fill(&source);
    let target = MemoryStore::new();
    let bar = migrate::TerminalProgress::new("copying");
    assert_eq!(bar.is_visible(), std::io::stderr().is_terminal());
    drop(bar);
    let report = Migration::new(&source, &target)
        .progress_bar()
        .run()
        .unwrap();
    assert_eq!(report.written, report.read);
}

#[test]
fn a_target_whose_schema_history_differs_is_refused_before_any_event_is_written() {
    let source = MemoryStore::new();
    fill(&source);
    let dir = tempfile::tempdir().unwrap();
    let target = LmdbStore::open(dir.path()).unwrap();
    // The target's first revision of `account` is another schema than the source's.
    target
        .save_schema(&crate::schema("account", "Created"))
        .unwrap()
        .unwrap();
    let err = migrate::copy(&source, &target).unwrap_err();
    assert!(
        matches!(
            err,
            migrate::MigrateError::Write(es_runtime::WriteError::InvalidInput { .. })
        ),
        "{err:?}"
    );
    assert_eq!(target.head_position().unwrap(), 0);
    assert_eq!(target.schemas().unwrap().len(), 1);

    // A target holding the same history takes in the rest of it alone.
    let partial = MemoryStore::new();
    partial
        .import_schemas(source.schemas().unwrap()[..1].to_vec())
        .unwrap();
    let report = migrate::copy(&source, &partial).unwrap();
    assert_eq!(report.schemas_copied, 2);
    assert_eq!(partial.schemas().unwrap(), source.schemas().unwrap());
}
