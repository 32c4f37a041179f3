//! Stores written by older builds (`tests/fixtures/lmdb-format-2`, `lmdb-format-3`,
//! `lmdb-format-4`), opened and
//! read by this one: what an operator's existing store must still do after a format change.
//!
//! Each fixture was written by the build of its format from [`plan`] with a fixed clock and fixed event ids, so every
//! field of every event is known here. Its writer left a tail (records after the stored heads
//! checkpoint) by not closing the store, as a crashed process would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use es_runtime::event::{Clock, Metadata, Timestamp};
use es_runtime::store::Snapshot;
use es_runtime::{
    EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent, RecordedEvent, StreamId,
};
use uuid::Uuid;

/// A clock that ticks one microsecond a reading, from a fixed start.
#[derive(Debug, Default)]
pub(crate) struct Ticks(AtomicU64);

impl Clock for Ticks {
    fn now(&self) -> Timestamp {
        Timestamp(1_700_000_000_000_000_000 + 1000 * self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// One append of the plan: the stream and its events.
pub(crate) struct Step {
    pub(crate) stream: StreamId,
    pub(crate) events: Vec<NewEvent>,
}

/// What the fixture holds, in the order it was appended: 5 streams, 70 events in 40 appends
/// (single events and batches), some with metadata.
pub(crate) fn plan() -> Vec<Step> {
    let streams = ["account-1", "account-2", "account-3", "order-7", "order-x9"];
    let mut id = 0u128;
    let mut steps = Vec::new();
    for i in 0..40u64 {
        let stream = StreamId::parse(streams[(i * 7 % 5) as usize]).unwrap();
        let size = if i % 3 == 0 { 1 + i % 4 } else { 1 };
        let events = (0..size)
            .map(|j| {
                id += 1;
                let mut e = NewEvent::raw(
                    if j % 2 == 0 { "Deposited" } else { "Withdrawn" },
                    es_runtime::codec::encode(&(i, j, "payload".repeat((i % 5) as usize))).unwrap(),
                );
                e.event_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | id);
                if i % 4 == 1 {
                    e.metadata = Metadata::default()
                        .with_correlation_id(Uuid::from_u128(0xC0 + id))
                        .with("user", format!("u{i}"));
                }
                e
            })
            .collect();
        steps.push(Step { stream, events });
    }
    steps
}

pub(crate) fn fixture_dir(format: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/lmdb-format-{format}"))
}

/// Writes the fixture into `dir` (used once, by the build of each fixture's format).
#[allow(dead_code)]
pub(crate) fn write(dir: &Path) {
    let store = LmdbOptions::new()
        .heads_every(16)
        .map_size(1 << 20)
        .durability(es_runtime::store::lmdb::Durability::NoSync)
        .clock(Arc::new(Ticks::default()))
        .open(dir)
        .unwrap();
    for step in plan() {
        store
            .append(&step.stream, ExpectedVersion::Any, step.events)
            .unwrap();
    }
    let stream = StreamId::parse("account-1").unwrap();
    let version = store.stream_version(&stream).unwrap();
    store
        .save_snapshot(
            &stream,
            Snapshot {
                version,
                state_version: 3,
                payload: vec![1, 2, 3, 4],
            },
            2,
        )
        .unwrap();
    store.save_checkpoint("balances", 42).unwrap();
    // Not closed: the heads after the last checkpoint stay unwritten, as after a crash.
    std::mem::forget(store);
}

/// The events of the plan as a store must return them from `read_all`.
fn expected() -> Vec<RecordedEvent> {
    let clock = Ticks::default();
    let mut versions = std::collections::HashMap::<String, u64>::new();
    let mut position = 0;
    let mut out = Vec::new();
    for step in plan() {
        let timestamp = clock.now();
        for e in step.events {
            position += 1;
            let version = versions.entry(step.stream.to_string()).or_default();
            *version += 1;
            out.push(RecordedEvent {
                stream: step.stream.clone(),
                version: *version,
                position,
                event_type: e.event_type,
                event_version: e.event_version,
                event_id: e.event_id,
                timestamp,
                metadata: e.metadata,
                payload: e.payload,
            });
        }
    }
    out
}

/// A copy of the fixture in a fresh temporary directory (opening may migrate it in place).
pub(crate) fn copy_of_fixture(format: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(format)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

#[test]
fn a_store_of_format_2_opens_and_reads_what_was_written() {
    opens_and_reads_what_was_written(2);
}

#[test]
fn a_store_of_format_3_opens_and_reads_what_was_written() {
    opens_and_reads_what_was_written(3);
}

#[test]
fn a_store_of_format_4_opens_and_reads_what_was_written() {
    opens_and_reads_what_was_written(4);
}

fn opens_and_reads_what_was_written(format: u32) {
    let dir = copy_of_fixture(format);
    let expected = expected();
    for round in 0..2 {
        // The second round reads what the first open left (a migrated store, if it was one).
        let store = LmdbStore::open(dir.path()).unwrap();
        let all = store.read_all(0, usize::MAX).unwrap();
        assert_eq!(all, expected, "round {round}");
        assert_eq!(store.head_position().unwrap(), expected.len() as u64);
        for stream in ["account-1", "account-2", "account-3", "order-7", "order-x9"] {
            let id = StreamId::parse(stream).unwrap();
            let mine: Vec<_> = expected
                .iter()
                .filter(|e| e.stream.as_str() == stream)
                .cloned()
                .collect();
            assert_eq!(store.stream_version(&id).unwrap(), mine.len() as u64);
            let read = store.read_stream(&id, 1, usize::MAX).unwrap();
            assert_eq!(read, mine, "round {round}, {stream}");
        }
        let id = StreamId::parse("account-1").unwrap();
        let snapshot = store.load_snapshot(&id).unwrap().unwrap();
        assert_eq!(
            (snapshot.state_version, snapshot.payload),
            (3, vec![1, 2, 3, 4])
        );
        assert_eq!(store.load_checkpoint("balances").unwrap(), Some(42));
    }
    // And it goes on: an append after the migration continues the log and the stream.
    let store = LmdbStore::open(dir.path()).unwrap();
    let id = StreamId::parse("order-7").unwrap();
    let version = store.stream_version(&id).unwrap();
    let appended = store
        .append(
            &id,
            ExpectedVersion::Exact(version),
            vec![NewEvent::raw("Shipped", vec![0xc0])],
        )
        .unwrap();
    assert_eq!(appended.last_position(), expected.len() as u64 + 1);
    assert_eq!(appended.stream_version(), version + 1);
}

#[test]
fn a_store_of_an_older_format_opened_read_only_reads_as_it_is_and_is_left_unchanged() {
    for format in [2, 3, 4] {
        let dir = copy_of_fixture(format);
        let identity = dir.path().join("es-store");
        let had_identity = identity.exists();
        let before = std::fs::read(dir.path().join("data.mdb")).unwrap();
        let expected = expected();
        let store = LmdbOptions::new().read_only(true).open(dir.path()).unwrap();
        assert_eq!(store.read_all(0, usize::MAX).unwrap(), expected);
        // Its stream heads are of the older form, without checksums: read as they are.
        for stream in ["account-1", "account-2", "account-3", "order-7", "order-x9"] {
            let id = StreamId::parse(stream).unwrap();
            let mine = expected.iter().filter(|e| e.stream == id).count();
            assert_eq!(store.stream_version(&id).unwrap(), mine as u64, "{format}");
            assert_eq!(store.read_stream(&id, 1, usize::MAX).unwrap().len(), mine);
        }
        assert_eq!(
            store
                .stream_version(&StreamId::parse("new-1").unwrap())
                .unwrap(),
            0
        );
        let id = StreamId::parse("account-1").unwrap();
        let snapshot = store.load_snapshot(&id).unwrap().unwrap();
        assert_eq!(snapshot.payload, vec![1, 2, 3, 4]);
        assert_eq!(store.load_checkpoint("balances").unwrap(), Some(42));
        let report = store.verify().unwrap();
        assert!(report.is_sound(), "format {format}: {report}");
        drop(store);
        assert!(std::fs::read(dir.path().join("data.mdb")).unwrap() == before);
        assert_eq!(identity.exists(), had_identity);
    }
}

#[test]
fn a_store_written_before_schemas_were_recorded_gains_them_and_reads_as_before() {
    use es_runtime::OwnedSchema;
    for format in [2, 3, 4] {
        let dir = copy_of_fixture(format);
        let mut schema = OwnedSchema::default();
        schema.name = "account".to_owned();
        {
            let store = LmdbStore::open(dir.path()).unwrap();
            assert_eq!(store.schemas().unwrap(), vec![], "format {format}");
            let recorded = store.save_schema(&schema).unwrap().unwrap();
            assert_eq!(recorded.revision, 1);
        }
        let store = LmdbStore::open(dir.path()).unwrap();
        let all = store.schemas().unwrap();
        assert_eq!(all.len(), 1, "format {format}");
        assert_eq!(all[0].schema().unwrap(), schema);
        assert_eq!(store.save_schema(&schema).unwrap(), None);
        assert_eq!(store.read_all(0, usize::MAX).unwrap(), expected());
    }
}

#[test]
fn a_store_without_schemas_opened_read_only_lists_none_and_cannot_record() {
    let dir = copy_of_fixture(2);
    let store = LmdbOptions::new().read_only(true).open(dir.path()).unwrap();
    assert_eq!(store.schemas().unwrap(), vec![]);
    let err = store
        .save_schema(&es_runtime::OwnedSchema::default())
        .unwrap_err();
    assert!(
        matches!(err, es_runtime::WriteError::InvalidInput { .. }),
        "an unnamed schema: {err:?}"
    );
    let mut schema = es_runtime::OwnedSchema::default();
    schema.name = "account".to_owned();
    let err = store.save_schema(&schema).unwrap_err();
    assert!(
        matches!(err, es_runtime::WriteError::ReadOnly { .. }),
        "{err:?}"
    );
    assert_eq!(store.read_all(0, usize::MAX).unwrap(), expected());
}

#[test]
fn a_store_of_format_3_opened_read_only_reads_as_it_is_and_is_left_unchanged() {
    let dir = copy_of_fixture(3);
    let files =
        |dir: &Path| ["data.mdb", "es-store"].map(|name| std::fs::read(dir.join(name)).unwrap());
    let before = files(dir.path());
    let expected = expected();
    let store = LmdbOptions::new().read_only(true).open(dir.path()).unwrap();
    let all = store.read_all(0, usize::MAX).unwrap();
    assert_eq!(all, expected);
    assert!(all.iter().all(|e| e.event_version == 1));
    let id = StreamId::parse("order-7").unwrap();
    let mine: Vec<_> = expected
        .iter()
        .filter(|e| e.stream == id)
        .cloned()
        .collect();
    assert_eq!(store.read_stream(&id, 1, usize::MAX).unwrap(), mine);
    assert_eq!(store.stream_version(&id).unwrap(), mine.len() as u64);
    let id = StreamId::parse("account-1").unwrap();
    let snapshot = store.load_snapshot(&id).unwrap().unwrap();
    assert_eq!(snapshot.payload, vec![1, 2, 3, 4]);
    assert_eq!(store.load_checkpoint("balances").unwrap(), Some(42));
    let err = store
        .append(
            &id,
            ExpectedVersion::Any,
            vec![NewEvent::raw("X", vec![0xc0])],
        )
        .unwrap_err();
    assert!(
        matches!(err, es_runtime::AppendError::ReadOnly { .. }),
        "{err:?}"
    );
    let record = es_runtime::RecordedSchema::new(
        "account".to_owned(),
        1,
        es_runtime::event::Timestamp(1),
        "{}".to_owned(),
    );
    let err = store.import_schemas(vec![record]).unwrap_err();
    assert!(
        matches!(err, es_runtime::WriteError::ReadOnly { .. }),
        "{err:?}"
    );
    drop(store);
    // No upgrade written, the marker of format 3 kept.
    assert!(files(dir.path()) == before);
}
