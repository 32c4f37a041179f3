//! Transforms that keep, drop, split and rename: the copy has what the transform answered,
//! in the source's order, at versions that follow in each target stream.

use std::borrow::Cow;

use es_runtime::migrate::{self, MigrateError, Migration, Transform};
use es_runtime::{EventStore, LmdbOptions, LmdbStore, MemoryStore, RecordedEvent, StreamId};

use crate::{fill, log, snapshots, stream};

/// Drops the audit stream, splits every `Changed` into itself and a `Noted`, and renames
/// `account-2` to `account-two`.
fn reshape(e: RecordedEvent) -> Result<Vec<RecordedEvent>, es_runtime::error::BoxError> {
    if e.stream.category() == "audit" {
        return Ok(vec![]);
    }
    let mut e = e;
    if e.stream == "account-2" {
        e.stream = StreamId::parse("account-two")?;
    }
    if e.event_type == "Changed" {
        let note = RecordedEvent {
            event_type: Cow::Borrowed("Noted"),
            event_id: migrate::derived_id(e.event_id, 1),
            payload: es_runtime::codec::encode(&"noted")?,
            ..e.clone()
        };
        return Ok(vec![e, note]);
    }
    Ok(vec![e])
}

#[test]
fn drop_split_and_rename_give_the_answered_events_in_order() {
    let source = MemoryStore::new();
    fill(&source);
    let original = log(&source);
    let target = LmdbStore::temporary(LmdbOptions::new()).unwrap();
    let report = Migration::new(&source, &target)
        .batch_size(16)
        .transform_with(reshape)
        .run()
        .unwrap();

    // What the transform would answer, event by event, in the source's order.
    let expected: Vec<RecordedEvent> = original
        .iter()
        .cloned()
        .flat_map(|e| reshape(e).unwrap())
        .collect();
    let copied = log(&target);
    assert_eq!(copied.len(), expected.len());
    let audit = original
        .iter()
        .filter(|e| e.stream.category() == "audit")
        .count() as u64;
    let changed = original
        .iter()
        .filter(|e| e.event_type == "Changed" && e.stream.category() != "audit")
        .count() as u64;
    assert_eq!((report.dropped, report.added), (audit, changed));
    assert_eq!(report.written, report.read - audit + changed);
    let mut versions = std::collections::HashMap::new();
    for (i, (got, want)) in copied.iter().zip(&expected).enumerate() {
        let version = versions.entry(want.stream.clone()).or_insert(0u64);
        *version += 1;
        assert_eq!(got.position, i as u64 + 1);
        assert_eq!(
            got.version, *version,
            "versions follow in each target stream"
        );
        assert_eq!(
            (
                &got.stream,
                &got.event_type,
                got.event_id,
                got.timestamp,
                &got.metadata,
                &got.payload,
                got.event_version
            ),
            (
                &want.stream,
                &want.event_type,
                want.event_id,
                want.timestamp,
                &want.metadata,
                &want.payload,
                want.event_version
            ),
        );
    }
    assert_eq!(target.stream_version(&stream("audit-1")).unwrap(), 0);
    assert_eq!(target.stream_version(&stream("account-2")).unwrap(), 0);
    assert!(target.stream_version(&stream("account-two")).unwrap() > 0);
    // Every stream changed (split events, a rename): no snapshot holds any more.
    assert_eq!(report.snapshots_copied, 0);
    assert_eq!(report.snapshots_skipped, 3);
    assert!(snapshots(&target).is_empty());
}

#[test]
fn transforms_chain_and_only_unchanged_streams_keep_their_snapshots() {
    let source = MemoryStore::new();
    fill(&source);
    let drop_audit = migrate::map(|e| {
        Ok(if e.stream.category() == "audit" {
            vec![]
        } else {
            vec![e]
        })
    });
    let rename = migrate::map(|mut e: RecordedEvent| {
        if e.stream == "account-2" {
            e.stream = StreamId::parse("account-two")?;
        }
        Ok(vec![e])
    });
    let target = MemoryStore::new();
    let report = Migration::new(&source, &target)
        .transform(drop_audit.then(rename))
        .run()
        .unwrap();
    // account-1 kept every event at its version: its two snapshots hold; account-2's do not.
    assert_eq!((report.snapshots_copied, report.snapshots_skipped), (2, 1));
    let kept = snapshots(&target);
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["account-1"]);
    assert_eq!(
        kept["account-1"],
        source.snapshots(&stream("account-1")).unwrap()
    );
}

#[test]
fn a_failing_transform_names_the_event_and_stops_the_migration() {
    let source = MemoryStore::new();
    fill(&source);
    let target = MemoryStore::new();
    let err = Migration::new(&source, &target)
        .batch_size(10)
        .transform_with(|e| {
            if e.position == 25 {
                Err("cannot rewrite this one".into())
            } else {
                Ok(vec![e])
            }
        })
        .run()
        .unwrap_err();
    let at = &log(&source)[24];
    match err {
        MigrateError::Transform {
            stream,
            version,
            position,
            source,
        } => {
            assert_eq!((&stream, version, position), (&at.stream, at.version, 25));
            assert_eq!(source.to_string(), "cannot rewrite this one");
        }
        other => panic!("{other:?}"),
    }
    // The batches before the failing one were written whole; nothing after.
    assert_eq!(target.head_position().unwrap(), 20);
}
