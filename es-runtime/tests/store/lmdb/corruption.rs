//! Bad bytes in an LMDB store are typed errors naming the record, never panics; a store of a
//! newer format is refused at open.

use std::ops::{Bound, ControlFlow};
use std::path::Path;

use es_runtime::store::lmdb::FORMAT_VERSION;
use es_runtime::{
    AppendError, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, OpenError,
    ReadError, Snapshot, StreamId,
};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions};

/// Runs `f` on one database of the environment in `dir` in a raw heed write transaction (the
/// store must be closed).
fn raw_write(
    dir: &Path,
    db: &str,
    f: impl FnOnce(&Database<'_, Bytes, Bytes>, &mut heed::RwTxn<'_>),
) {
    // SAFETY: the store is closed, and nothing else touches the directory during the test.
    let env = unsafe { EnvOpenOptions::new().max_dbs(8).open(dir) }.unwrap();
    let txn = env.write_txn().unwrap();
    env.create_databases_and_commit(txn, |opener, txn| -> heed::Result<_> {
        let db: Database<Bytes, Bytes> = opener.create_database(txn, Some(db))?;
        f(&db, txn);
        Ok(CommitOrAbort::<(), ()>::Commit(()))
    })
    .unwrap();
}

/// Writes the head of the stream under `key` as the store does: CRC-32 (LE) of the key and
/// the rest, version, position, and the CRC-32 of the key before it in `heads`. The key must
/// be there already (a new one would need the head after it linked to it).
fn put_head(
    db: &Database<'_, Bytes, Bytes>,
    txn: &mut heed::RwTxn<'_>,
    key: &[u8],
    version: u64,
    position: u64,
) {
    let before = db
        .rev_range(txn, &(Bound::Unbounded, Bound::Excluded(key)))
        .unwrap()
        .next()
        .map(|found| found.unwrap().0.to_vec())
        .unwrap_or_default();
    let mut value = vec![0; 4];
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&position.to_be_bytes());
    value.extend_from_slice(&crc32fast::hash(&before).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(key);
    crc.update(&value[4..]);
    value[..4].copy_from_slice(&crc.finalize().to_le_bytes());
    db.put(txn, key, &value).unwrap();
}

fn position_key(p: u64) -> [u8; 8] {
    p.to_be_bytes()
}

fn stream(id: &str) -> StreamId {
    StreamId::parse(id).unwrap()
}

/// Three events of `acc-1` at positions 1..=3, the middle one with a recognisable payload.
fn store_with_events(dir: &Path) {
    let store = LmdbStore::open(dir).unwrap();
    let events = vec![
        NewEvent::raw("A", b"first-payload".to_vec()),
        NewEvent::raw("B", b"MARKER-of-the-second-event".to_vec()),
        NewEvent::raw("C", b"third-payload".to_vec()),
    ];
    store
        .append(&stream("acc-1"), ExpectedVersion::NoStream, events)
        .unwrap();
}

fn expect_corrupt<T: std::fmt::Debug>(result: Result<T, ReadError>, mentions: &[&str]) -> String {
    match result {
        Err(ReadError::Corrupt { at, reason }) => {
            let what = at.to_string();
            for m in mentions {
                assert!(what.contains(m), "{what:?} mentions {m:?} ({reason})");
            }
            format!("{what}: {reason}")
        }
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

fn read_all(store: &LmdbStore) -> Result<usize, ReadError> {
    read_all_from(store, 1)
}

/// How many records the global log reads from position `from` on.
fn read_all_from(store: &LmdbStore, from: u64) -> Result<usize, ReadError> {
    let mut n = 0;
    store.read_all_with(from, &mut |_| {
        n += 1;
        ControlFlow::Continue(())
    })?;
    Ok(n)
}

#[test]
fn a_flipped_bit_in_a_record_is_reported_with_stream_version_and_position() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    raw_write(dir.path(), "log", |db, txn| {
        let mut value = db.get(txn, &position_key(2)).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01; // one bit of the payload
        db.put(txn, &position_key(2), &value).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    let s = stream("acc-1");
    let msg = expect_corrupt(
        store.read_stream(&s, 1, usize::MAX),
        &["event 2", "acc-1", "position 2"],
    );
    assert!(msg.contains("checksum"), "{msg}");
    expect_corrupt(read_all(&store), &["position 2"]);
    // What is intact still reads.
    assert_eq!(read_all_from(&store, 3).unwrap(), 1);
    assert_eq!(store.read_stream(&s, 3, 1).unwrap().len(), 1);
    assert_eq!(store.stream_version(&s).unwrap(), 3);
}

#[test]
fn garbled_and_truncated_records_and_heads_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    let s = stream("acc-1");
    for garbage in [&b""[..], &b"\x01\x02\x03"[..], &[0xff; 200][..]] {
        raw_write(dir.path(), "log", |db, txn| {
            db.put(txn, &position_key(3), garbage).unwrap();
        });
        let store = LmdbStore::open(dir.path()).unwrap();
        expect_corrupt(store.read_stream(&s, 1, usize::MAX), &["event 3", "acc-1"]);
        expect_corrupt(read_all(&store), &["position 3"]);
    }
    store_with_events_again(dir.path());
    // A stream head that points at the wrong event.
    raw_write(dir.path(), "heads", |db, txn| {
        put_head(db, txn, b"acc-1", 3, 2)
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    let msg = expect_corrupt(store.read_stream(&s, 1, 3), &["event 3", "acc-1"]);
    assert!(msg.contains("event 2"), "{msg}");
    drop(store);
    // A stream head that is not a head at all.
    raw_write(dir.path(), "heads", |db, txn| {
        db.put(txn, b"acc-1", b"short").unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    expect_corrupt(store.stream_version(&s), &["head", "acc-1"]);
    expect_corrupt(store.read_stream(&s, 1, 1), &["head", "acc-1"]);
    match store.append(&s, ExpectedVersion::Any, vec![NewEvent::raw("D", vec![])]) {
        Err(AppendError::Storage { stream, source }) => {
            assert_eq!(stream, "acc-1");
            assert!(source.to_string().contains("corrupt"), "{source}");
        }
        other => panic!("expected a Storage error, got {other:?}"),
    }
}

/// Writes the three events of [`store_with_events`] again over whatever position 3 holds.
fn store_with_events_again(dir: &Path) {
    let store = LmdbStore::open(dir).unwrap();
    drop(store);
    raw_write(dir, "log", |db, txn| {
        db.delete(txn, &position_key(3)).unwrap();
    });
    raw_write(dir, "heads", |db, txn| put_head(db, txn, b"acc-1", 2, 2));
    // A repair that removes records takes the heads checkpoint back with them.
    rewind_heads(dir, 2);
    let store = LmdbStore::open(dir).unwrap();
    store
        .append(
            &stream("acc-1"),
            ExpectedVersion::Exact(2),
            vec![NewEvent::raw("C", b"third-payload".to_vec())],
        )
        .unwrap();
}

#[test]
fn a_byte_changed_in_the_data_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    let file = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&file).unwrap();
    let marker = b"MARKER-of-the-second-event";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the payload is in the data file");
    bytes[at + 3] = b'#';
    std::fs::write(&file, &bytes).unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    expect_corrupt(
        store.read_stream(&stream("acc-1"), 1, usize::MAX),
        &["event 2", "acc-1", "position 2"],
    );
    expect_corrupt(read_all(&store), &["position 2"]);
}

#[test]
fn a_corrupt_snapshot_is_reported_with_its_stream_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let s = stream("acc-1");
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        for version in [5, 10] {
            store
                .save_snapshot(
                    &s,
                    Snapshot {
                        version,
                        state_version: 1,
                        payload: vec![1, 2, 3],
                    },
                    5,
                )
                .unwrap();
        }
    }
    let mut key = b"acc-1\0".to_vec();
    key.extend_from_slice(&10u64.to_be_bytes());
    raw_write(dir.path(), "snapshots", |db, txn| {
        let mut value = db.get(txn, &key).unwrap().unwrap().to_vec();
        value[5] ^= 0x80;
        db.put(txn, &key, &value).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    expect_corrupt(store.load_snapshot(&s), &["snapshot 10", "acc-1"]);
    expect_corrupt(store.snapshots(&s), &["snapshot 10", "acc-1"]);
    // Saving a newer snapshot recovers.
    let fresh = Snapshot {
        version: 12,
        state_version: 1,
        payload: vec![4],
    };
    store.save_snapshot(&s, fresh.clone(), 5).unwrap();
    assert_eq!(store.load_snapshot(&s).unwrap(), Some(fresh));
}

#[test]
fn a_newer_format_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    raw_write(dir.path(), "meta", |db, txn| {
        db.put(txn, b"format", &(FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
    });
    match LmdbStore::open(dir.path()) {
        Err(OpenError::UnsupportedFormat {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    // Refusing wrote nothing: restoring the version makes the store readable again.
    raw_write(dir.path(), "meta", |db, txn| {
        db.put(txn, b"format", &FORMAT_VERSION.to_be_bytes())
            .unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().unwrap(), 3);
}

/// Rewinds the heads checkpoint to `position`, as if the store had been closed without
/// writing the heads since (a crash).
fn rewind_heads(dir: &Path, position: u64) {
    raw_write(dir, "meta", |db, txn| {
        db.put(txn, b"heads_at", &position.to_be_bytes()).unwrap();
    });
}

fn heads_at(dir: &Path) -> Option<u64> {
    let mut found = None;
    raw_write(dir, "meta", |db, txn| {
        found = db
            .get(txn, b"heads_at")
            .unwrap()
            .map(|v| u64::from_be_bytes(v.try_into().unwrap()));
    });
    found
}

#[test]
fn heads_are_rebuilt_from_the_log_after_an_unclean_close() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (stream("acc-1"), stream("acc-2"));
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        for i in 0..10u64 {
            let s = if i % 3 == 0 { &b } else { &a };
            store
                .append(
                    s,
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("E", vec![0x80])],
                )
                .unwrap();
        }
    }
    // Closing wrote the heads of everything appended.
    assert_eq!(heads_at(dir.path()), Some(10));
    // As if the last heads written were those of position 4: a's head there is version 2,
    // b's is 2, and positions 5..=10 are the tail.
    rewind_heads(dir.path(), 4);
    raw_write(dir.path(), "heads", |db, txn| {
        put_head(db, txn, b"acc-1", 2, 3);
        put_head(db, txn, b"acc-2", 2, 4);
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.stream_version(&a).unwrap(), 6);
    assert_eq!(store.stream_version(&b).unwrap(), 4);
    assert_eq!(store.read_stream(&a, 1, usize::MAX).unwrap().len(), 6);
    let last = store.read_stream(&b, 4, 1).unwrap();
    assert_eq!((last[0].version, last[0].position), (4, 10));
    // Appends continue from the rebuilt heads, and a stale expectation still fails.
    store
        .append(
            &a,
            ExpectedVersion::Exact(6),
            vec![NewEvent::raw("E", vec![0x80])],
        )
        .unwrap();
    assert!(matches!(
        store.append(
            &b,
            ExpectedVersion::Exact(3),
            vec![NewEvent::raw("E", vec![0x80])]
        ),
        Err(AppendError::WrongExpectedVersion { actual: 4, .. })
    ));
    drop(store);
    assert_eq!(heads_at(dir.path()), Some(11));
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.stream_version(&a).unwrap(), 7);
}

#[test]
fn an_unreadable_record_in_the_tail_is_reported_and_blocks_only_the_streams_it_may_belong_to() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (stream("acc-1"), stream("acc-2"));
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store
            .append(
                &a,
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("A", vec![0x80])],
            )
            .unwrap();
        store
            .append(
                &a,
                ExpectedVersion::Exact(1),
                vec![NewEvent::raw("A", vec![0x80])],
            )
            .unwrap();
        store
            .append(
                &b,
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("B", vec![0x80])],
            )
            .unwrap();
    }
    rewind_heads(dir.path(), 0);
    raw_write(dir.path(), "heads", |db, txn| {
        db.clear(txn).unwrap();
    });
    raw_write(dir.path(), "log", |db, txn| {
        let mut value = db.get(txn, &position_key(2)).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        db.put(txn, &position_key(2), &value).unwrap();
    });
    // Heads due every 4 positions: the damaged record keeps them from being stored, and that
    // must not stop the appends whose streams are known.
    let store = LmdbOptions::new().heads_every(4).open(dir.path()).unwrap();
    // Position 2 could be a's second event or anyone's: a's version is unknown, and so is
    // a new stream's...
    let msg = expect_corrupt(store.stream_version(&a), &["position 2"]);
    assert!(msg.contains("checksum"), "{msg}");
    expect_corrupt(store.stream_version(&stream("acc-3")), &["position 2"]);
    match store.append(&a, ExpectedVersion::Any, vec![NewEvent::raw("A", vec![])]) {
        Err(AppendError::Storage { source, .. }) => {
            assert!(source.to_string().contains("position 2"), "{source}");
        }
        other => panic!("expected a Storage error, got {other:?}"),
    }
    // ...but b's is known (its event comes after), and the log reads around the damage.
    assert_eq!(store.stream_version(&b).unwrap(), 1);
    // Appends to b from several threads go on, in whatever groups they land with the
    // refused appends to a, well past the positions where the heads were due.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (store, a, b) = (&store, &a, &b);
            s.spawn(move || {
                for _ in 0..10 {
                    if t == 0 {
                        let refused =
                            store.append(a, ExpectedVersion::Any, vec![NewEvent::raw("A", vec![])]);
                        assert!(matches!(refused, Err(AppendError::Storage { .. })));
                    } else {
                        store
                            .append(
                                b,
                                ExpectedVersion::Any,
                                vec![NewEvent::raw("B", vec![0x80])],
                            )
                            .unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(store.stream_version(&b).unwrap(), 31);
    assert_eq!(store.read_stream(&b, 1, usize::MAX).unwrap().len(), 31);
    assert_eq!(read_all_from(&store, 3).unwrap(), 31);
    // Closing cannot store the heads either, and says so without failing; the next open
    // finds the same.
    drop(store);
    assert_eq!(heads_at(dir.path()), Some(0));
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.stream_version(&b).unwrap(), 31);
    expect_corrupt(store.stream_version(&a), &["position 2"]);
}

#[test]
fn a_format_1_store_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    // Format 1 kept every head up to date and had no heads checkpoint.
    raw_write(dir.path(), "meta", |db, txn| {
        db.put(txn, b"format", &1u32.to_be_bytes()).unwrap();
        db.delete(txn, b"heads_at").unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.stream_version(&stream("acc-1")).unwrap(), 3);
    drop(store);
    assert_eq!(heads_at(dir.path()), Some(3));
    let mut format = None;
    raw_write(dir.path(), "meta", |db, txn| {
        format = db.get(txn, b"format").unwrap().map(|v| v.to_vec());
    });
    assert_eq!(format.unwrap(), FORMAT_VERSION.to_be_bytes());
    assert_eq!(FORMAT_VERSION, 5);
}

#[test]
fn a_store_directory_that_cannot_be_created_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    match LmdbStore::open(file.join("store")) {
        Err(OpenError::Storage { path, .. }) => assert!(path.contains("not-a-directory")),
        other => panic!("expected a Storage error, got {other:?}"),
    }
}

#[test]
fn opening_the_same_directory_twice_in_one_process_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let _store = LmdbStore::open(dir.path()).unwrap();
    assert!(matches!(
        LmdbStore::open(dir.path()),
        Err(OpenError::Storage { .. })
    ));
}

#[test]
fn undecodable_payloads_and_unknown_types_are_decode_errors_naming_the_event() {
    use es_runtime::{DecodeError, DomainEvent};
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    enum Known {
        #[allow(dead_code)]
        Opened { initial: u64 },
    }
    impl DomainEvent for Known {
        const TYPES: &'static [&'static str] = &["Opened"];
        fn event_type(&self) -> &'static str {
            "Opened"
        }
    }
    let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    let s = stream("acc-1");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![
                NewEvent::raw("Renamed", vec![0xc0]),
                NewEvent::raw("Opened", vec![0xc1, 0xff]),
            ],
        )
        .unwrap();
    let mut errors = Vec::new();
    store
        .read_stream_with(&s, 1, &mut |e| {
            errors.push(e.decode::<Known>().unwrap_err());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(matches!(
        &errors[0],
        DecodeError::UnknownEventType { stream, version: 1, event_type } if stream == "acc-1" && event_type == "Renamed"
    ));
    assert!(matches!(
        &errors[1],
        DecodeError::Payload { stream, version: 2, .. } if stream == "acc-1"
    ));
}

use crate::common;

/// A snapshot damaged on disk does not stop the host: it is skipped with a warning, and the
/// account is rebuilt from the snapshot before it and the events after that.
#[test]
fn the_host_rebuilds_from_an_older_snapshot_past_a_damaged_one() {
    use common::{Account, AccountCommand};
    use es_runtime::{Aggregate, Host};

    let dir = tempfile::tempdir().unwrap();
    let s = StreamId::new(Account::NAME, "a").unwrap();
    let expected = {
        let store = LmdbStore::open(dir.path()).unwrap();
        let host = Host::<Account, _>::builder(store)
            .snapshot_every(5)
            .background_snapshots(false)
            .build();
        for amount in 1..=12 {
            host.execute("a", AccountCommand::Deposit(amount)).unwrap();
        }
        host.state("a").unwrap()
    };
    // Damage the newest snapshot (version 10).
    let mut key = format!("{s}\0").into_bytes();
    key.extend_from_slice(&10u64.to_be_bytes());
    raw_write(dir.path(), "snapshots", |db, txn| {
        let mut value = db
            .get(txn, &key)
            .unwrap()
            .expect("a snapshot at 10")
            .to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x55;
        db.put(txn, &key, &value).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    let host = Host::<Account, _>::builder(store)
        .snapshot_every(5)
        .background_snapshots(false)
        .build();
    assert_eq!(host.state("a").unwrap(), expected);
    assert_eq!(expected.balance, (1..=12).sum::<u64>());
    let m = host.metrics();
    assert_eq!(
        (m.snapshots_corrupt, m.snapshot_hits, m.replayed_events),
        (1, 1, 7),
        "the snapshot at 5, then events 6 to 12"
    );
}

/// The positions a read of the global log from `from` visits, and how it ended.
fn positions_from(store: &LmdbStore, from: u64) -> (Vec<u64>, Result<(), ReadError>) {
    let mut seen = Vec::new();
    let result = store.read_all_with(from, &mut |e| {
        seen.push(e.position);
        ControlFlow::Continue(())
    });
    (seen, result)
}

/// `batches` appends of 10 events each, to three streams in turn.
fn store_with_batches(dir: &Path, batches: u64) {
    let store = LmdbStore::open(dir).unwrap();
    for i in 0..batches {
        let batch = (0..10)
            .map(|_| NewEvent::raw("E", b"payload".to_vec()))
            .collect();
        store
            .append(
                &stream(&format!("acc-{}", i % 3)),
                ExpectedVersion::Any,
                batch,
            )
            .unwrap();
    }
}

#[test]
fn a_damaged_record_deep_in_the_log_ends_a_read_after_every_event_before_it() {
    // The log is read in chunks, each from its end back; a damaged record in the middle of a
    // chunk must still let the events before it through, in order, before the error.
    let dir = tempfile::tempdir().unwrap();
    store_with_batches(dir.path(), 40);
    raw_write(dir.path(), "log", |db, txn| {
        let mut value = db.get(txn, &position_key(300)).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        db.put(txn, &position_key(300), &value).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    for from in [1, 200, 299] {
        let (seen, result) = positions_from(&store, from);
        expect_corrupt(result, &["position 300"]);
        assert_eq!(seen, (from..300).collect::<Vec<_>>(), "from {from}");
    }
    assert_eq!(read_all_from(&store, 301).unwrap(), 100);
}

#[test]
fn a_hole_in_the_log_ends_a_read_with_an_error_naming_the_missing_position() {
    // Positions have no gaps when the store writes them; a log edited from outside may have
    // one. A read of the global log hands out every event before it, then fails naming the
    // first missing position: a projection built from the log is never silently incomplete.
    let dir = tempfile::tempdir().unwrap();
    store_with_batches(dir.path(), 50);
    raw_write(dir.path(), "log", |db, txn| {
        for p in 100..400u64 {
            db.delete(txn, &position_key(p)).unwrap();
        }
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    for from in [1, 99, 100, 250, 399] {
        let (seen, result) = positions_from(&store, from);
        let error = result.unwrap_err().to_string();
        let missing = from.max(100);
        assert!(error.contains(&format!("position {missing}")), "{error}");
        assert_eq!(seen, (from..100).collect::<Vec<_>>(), "from {from}");
    }
    let (seen, result) = positions_from(&store, 400);
    result.unwrap();
    assert_eq!(seen, (400..=500).collect::<Vec<_>>());
}

#[test]
fn a_record_that_cannot_be_read_ends_a_read_after_every_event_before_it() {
    // A key that is not a position (7 bytes, sorting between positions 255 and 256) fails in
    // the cursor rather than in a record's checksum: the chunk holding it is read again
    // forwards, so that the events before it still come first.
    let dir = tempfile::tempdir().unwrap();
    store_with_batches(dir.path(), 40);
    raw_write(dir.path(), "log", |db, txn| {
        let value = db.get(txn, &position_key(255)).unwrap().unwrap().to_vec();
        db.put(txn, &position_key(256)[..7], &value).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    for from in [1, 250, 255] {
        let (seen, result) = positions_from(&store, from);
        assert!(
            matches!(result, Err(ReadError::Storage(_))),
            "from {from}: {result:?}"
        );
        assert_eq!(seen, (from..=255).collect::<Vec<_>>(), "from {from}");
    }
}

/// An index entry that points at another stream's event of the same version (a log edited
/// from outside) is caught by the stream id, not handed out as the stream's own history.
#[test]
fn an_index_entry_pointing_into_another_stream_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        for id in ["acc-a", "acc-b"] {
            let events = (0..40).map(|_| NewEvent::raw("E", vec![0xc0])).collect();
            store
                .append(&stream(id), ExpectedVersion::NoStream, events)
                .unwrap();
        }
    }
    // `acc-a` holds positions 1..=40 and `acc-b` 41..=80: point a's version 32 at b's.
    let mut key = b"acc-a\0".to_vec();
    key.extend_from_slice(&32u64.to_be_bytes());
    raw_write(dir.path(), "index", |db, txn| {
        assert_eq!(db.get(txn, &key).unwrap(), Some(&32u64.to_be_bytes()[..]));
        db.put(txn, &key, &72u64.to_be_bytes()).unwrap();
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    let err = store
        .read_stream(&stream("acc-a"), 1, usize::MAX)
        .unwrap_err();
    match &err {
        ReadError::Corrupt { at, reason } => {
            let what = at.to_string();
            assert!(what.contains("event 32 of stream \"acc-a\""), "{what}");
            assert!(reason.contains("event 32 of stream \"acc-b\""), "{reason}");
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    }
    // The other stream, and a's events past the damaged chunk, still read.
    assert_eq!(
        store
            .read_stream(&stream("acc-b"), 1, usize::MAX)
            .unwrap()
            .len(),
        40
    );
    assert_eq!(
        store
            .read_stream(&stream("acc-a"), 33, usize::MAX)
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn a_log_that_lost_its_last_records_is_an_error_not_a_shorter_log() {
    // A damaged leaf or branch page can hide the log's last records from LMDB: the heads
    // stored as of a later position say they were there.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        for i in 0..10u64 {
            store
                .append(
                    &stream(&format!("acc-{}", i % 3)),
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("E", vec![0x80])],
                )
                .unwrap();
        }
    }
    assert_eq!(heads_at(dir.path()), Some(10));
    raw_write(dir.path(), "log", |db, txn| {
        for p in 8..=10 {
            db.delete(txn, &position_key(p)).unwrap();
        }
    });
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().unwrap(), 10);
    expect_corrupt(read_all(&store), &["position 8"]);
    let events = store.read_all(0, usize::MAX);
    expect_corrupt(events, &["position 8"]);
    // acc-1's head is at position 10: its last events are missing.
    expect_corrupt(
        store.read_stream(&stream("acc-1"), 1, usize::MAX),
        &["acc-1"],
    );
    // An append would give the lost positions to other events.
    let appended = store.append(
        &stream("acc-new"),
        ExpectedVersion::NoStream,
        vec![NewEvent::raw("E", vec![0x80])],
    );
    match appended {
        Err(AppendError::Storage { source, .. }) => {
            assert!(source.to_string().contains("position 8"), "{source}")
        }
        other => panic!("expected a Storage error, got {other:?}"),
    }
    let report = store.verify().unwrap();
    assert!(!report.is_sound());
}

#[test]
fn verify_names_a_database_the_store_does_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    store_with_events(dir.path());
    raw_write(dir.path(), "stray", |db, txn| {
        db.put(txn, b"k", b"v").unwrap();
    });
    let report = es_runtime::store::lmdb::verify_path(dir.path()).unwrap();
    assert!(
        report
            .damage
            .iter()
            .any(|d| d.reason.contains("\"stray\" is no database of the store")),
        "{report}"
    );
    assert_eq!(
        report.events, 3,
        "the records are read all the same: {report}"
    );
}
