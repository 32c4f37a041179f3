//! A target that is not empty is refused unless appending is asked for, and the final
//! check catches a target that loses or changes events.

use es_runtime::error::{AppendError, ReadError, WriteError};
use es_runtime::migrate::{self, Count, MigrateError, Migration};
use es_runtime::store::Visitor;
use es_runtime::{
    AppendResult, EventRef, EventStore, ExpectedVersion, ImportResult, MemoryStore, NewEvent,
    RecordedEvent, Snapshot, StreamId,
};

use crate::{event, fill, log, stream};

#[test]
fn a_target_with_events_is_refused_unless_appending_is_asked_for() {
    let older = MemoryStore::new();
    fill(&older);
    let target = MemoryStore::new();
    let s = stream("account-1");
    target
        .append(&s, ExpectedVersion::NoStream, vec![event("Before", 0, 1)])
        .unwrap();
    target.save_checkpoint("untouched", 1).unwrap();
    let before = log(&target);
    let source = MemoryStore::new();
    fill(&source);
    match migrate::copy(&source, &target) {
        Err(MigrateError::TargetNotEmpty { head: 1 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(log(&target), before, "nothing written");
    // Appending events older than the target's last would take time backwards in its log.
    match Migration::new(&older, &target).append(true).run() {
        Err(MigrateError::Import {
            written: 0,
            source: AppendError::InvalidInput { .. },
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(log(&target), before, "nothing written");

    let report = Migration::new(&source, &target)
        .append(true)
        .checkpoints(true)
        .run()
        .unwrap();
    let original = log(&source);
    let n = original.len() as u64;
    assert_eq!((report.first_position, report.last_position), (2, n + 1));
    let copied = log(&target);
    assert_eq!(copied[0], before[0]);
    // account-1 continues after the target's own event; the other streams are as they were.
    let source_v = source.stream_version(&s).unwrap();
    assert_eq!(target.stream_version(&s).unwrap(), source_v + 1);
    for (got, want) in copied[1..].iter().zip(&original) {
        assert_eq!(
            (got.event_id, got.position),
            (want.event_id, want.position + 1)
        );
        let shift = u64::from(want.stream == s);
        assert_eq!(got.version, want.version + shift);
    }
    // account-1's snapshots no longer match its versions; account-2's do.
    assert_eq!((report.snapshots_copied, report.snapshots_skipped), (1, 2));
    assert!(target.snapshots(&s).unwrap().is_empty());
    // Checkpoints move with the positions; the target's own stay.
    let cps = target.checkpoints().unwrap();
    let cp = |name: &str| cps.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
    assert_eq!(cp("balances"), Some(41));
    assert_eq!(cp("audit"), Some(1));
    assert_eq!(cp("orders"), Some(n + 1));
    assert_eq!(cp("untouched"), Some(1));
}

/// A store that loses the last event of every import but says it wrote them all, or
/// hands back a changed payload.
struct Faulty {
    inner: MemoryStore,
    loses: bool,
}

impl EventStore for Faulty {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.inner.append(stream, expected, events)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.inner.stream_version(stream)
    }
    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        self.inner.read_stream_with(stream, from, visitor)
    }
    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        self.inner.read_all_with(from, &mut |e| {
            if !self.loses && e.position == 3 {
                let flipped: Vec<u8> = e.payload.iter().map(|b| b ^ 1).collect();
                return visitor(EventRef {
                    payload: &flipped,
                    ..e
                });
            }
            visitor(e)
        })?;
        Ok(())
    }
    fn head_position(&self) -> Result<u64, ReadError> {
        self.inner.head_position()
    }
    fn save_snapshot(
        &self,
        s: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        self.inner.save_snapshot(s, snapshot, keep)
    }
    fn load_snapshot(&self, s: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        self.inner.load_snapshot(s)
    }
    fn snapshots(&self, s: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        self.inner.snapshots(s)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        self.inner.save_checkpoint(name, position)
    }
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        self.inner.load_checkpoint(name)
    }
    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        self.inner.checkpoints()
    }
    fn import(&self, mut events: Vec<RecordedEvent>) -> Result<ImportResult, AppendError> {
        let count = events.len() as u64;
        if self.loses && count > 1 {
            events.pop();
        }
        let r = self.inner.import(events)?;
        Ok(ImportResult::new(r.first_position, count))
    }
    // The schema methods forward, so that hosts over this store record their schemas.
    fn save_schema(
        &self,
        schema: &es_runtime::OwnedSchema,
    ) -> Result<Option<es_runtime::RecordedSchema>, es_runtime::WriteError> {
        self.inner.save_schema(schema)
    }
    fn schemas(&self) -> Result<Vec<es_runtime::RecordedSchema>, es_runtime::ReadError> {
        self.inner.schemas()
    }
    fn import_schemas(
        &self,
        records: Vec<es_runtime::RecordedSchema>,
    ) -> Result<u64, es_runtime::WriteError> {
        self.inner.import_schemas(records)
    }
}

#[test]
fn the_count_check_catches_a_target_that_loses_events() {
    // One event per stream, so that no later import trips over a lost one: only the
    // count check can tell.
    let source = MemoryStore::new();
    for i in 0..10 {
        let s = stream(&format!("account-{i}"));
        source
            .append(&s, ExpectedVersion::NoStream, vec![event("Opened", i, 1)])
            .unwrap();
    }
    let lossy = Faulty {
        inner: MemoryStore::new(),
        loses: true,
    };
    let err = Migration::new(&source, &lossy)
        .batch_size(2)
        .run()
        .unwrap_err();
    match err {
        MigrateError::Mismatch {
            count: Count::TargetHead,
            expected: 10,
            found: 5,
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_read_back_catches_a_target_that_changes_events() {
    let source = MemoryStore::new();
    fill(&source);
    let changing = Faulty {
        inner: MemoryStore::new(),
        loses: false,
    };
    let err = Migration::new(&source, &changing).run().unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::Mismatch {
                count: Count::Content,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("the migration does not add up"),
        "{err}"
    );
    // Without the read back, only the counts are checked, and they hold.
    let changing = Faulty {
        inner: MemoryStore::new(),
        loses: false,
    };
    let report = Migration::new(&source, &changing)
        .verify(false)
        .run()
        .unwrap();
    assert!(!report.verified);
}
