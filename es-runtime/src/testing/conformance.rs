//! The conformance suite every [`EventStore`] backend must pass.
//!
//! Each case is a public function taking a fresh, empty store. The [`conformance_tests!`]
//! macro turns the whole suite into one `#[test]` per case for a backend:
//!
//! ```
//! es_runtime::conformance_tests!(es_runtime::MemoryStore::new());
//! ```
//!
//! [`conformance_tests!`]: crate::conformance_tests

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Barrier;

use crate::error::AppendError;
use crate::event::{ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamId, Timestamp};
use crate::schema::{OwnedEvent, OwnedSchema, RecordedSchema};
use crate::store::{EventStore, Snapshot, StreamHead};

/// Generates one `#[test]` per conformance case; `$make` is an expression evaluated once per
/// case that yields a fresh, empty store.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            append_assigns_versions_and_positions,
            append_preserves_ids_types_metadata_and_payload,
            append_one_is_a_batch_of_one,
            expected_version_any,
            expected_version_no_stream,
            expected_version_exists,
            expected_version_exact,
            failed_append_writes_nothing,
            empty_batch_only_checks_expectation,
            read_stream_ranges,
            read_stream_stops_when_told,
            read_long_interleaved_stream_from_any_version,
            streams_sharing_a_prefix_stay_apart,
            unicode_and_long_stream_ids,
            read_all_is_gap_free_in_position_order,
            read_all_from_any_position,
            timestamps_never_go_back,
            large_payloads_and_batches,
            snapshots_keep_the_last_k,
            snapshot_of_same_version_replaces,
            checkpoints_round_trip,
            schemas_keep_a_history_per_aggregate,
            schemas_recorded_at_once_are_recorded_once,
            schemas_imported_keep_revisions_and_times,
            checkpoints_list_every_name_sorted,
            import_keeps_every_envelope_field_and_takes_the_next_positions,
            import_refuses_a_batch_that_skips_repeats_or_goes_back_in_time,
            imported_streams_read_and_append_as_appended_ones,
            streams_are_listed_with_their_heads,
            concurrent_appenders_one_stream,
            concurrent_appenders_many_streams,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::conformance::$case(&$make);
            }
        )*
    };
}

fn stream(id: &str) -> StreamId {
    StreamId::parse(id).expect("valid test stream id")
}

fn event(n: u64) -> NewEvent {
    NewEvent::raw(
        "Happened",
        crate::codec::encode(&BTreeMap::from([("n", n)])).expect("encodes"),
    )
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

fn all<S: EventStore + ?Sized>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(1, usize::MAX).expect("read_all")
}

/// How many versions `from..=to` spans (version 0 reads as 1): the count that reads them.
fn versions_in(from: u64, to: u64) -> usize {
    let first = from.max(1);
    if to < first {
        0
    } else {
        usize::try_from(to - first).map_or(usize::MAX, |n| n.saturating_add(1))
    }
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

fn wrong_version(err: AppendError) -> (ExpectedVersion, u64) {
    match err {
        AppendError::WrongExpectedVersion {
            expected, actual, ..
        } => (expected, actual),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
}

/// Versions start at 1 per stream; positions at 1 in the global log; results report both.
pub fn append_assigns_versions_and_positions<S: EventStore>(store: &S) {
    let a = stream("acc-a");
    let b = stream("acc-b");
    let r = store
        .append(&a, ExpectedVersion::NoStream, events(0..3))
        .unwrap();
    assert_eq!((r.first_version, r.first_position, r.count), (1, 1, 3));
    assert_eq!(r.stream_version(), 3);
    assert_eq!(r.last_position(), 3);
    let r = store
        .append(&b, ExpectedVersion::Any, events(0..2))
        .unwrap();
    assert_eq!((r.first_version, r.first_position, r.count), (1, 4, 2));
    let r = store
        .append(&a, ExpectedVersion::Exact(3), events(3..4))
        .unwrap();
    assert_eq!((r.first_version, r.first_position), (4, 6));
    assert_eq!(store.stream_version(&a).unwrap(), 4);
    assert_eq!(store.stream_version(&b).unwrap(), 2);
    assert_eq!(store.stream_version(&stream("acc-none")).unwrap(), 0);
    assert_eq!(store.head_position().unwrap(), 6);
}

/// What goes in comes out: ids, type names, metadata, payload bytes.
pub fn append_preserves_ids_types_metadata_and_payload<S: EventStore>(store: &S) {
    let s = stream("order-7");
    let meta = Metadata::default()
        .with_correlation_id(uuid::Uuid::now_v7())
        .with_causation_id(uuid::Uuid::now_v7())
        .with("user", "ada")
        .with("tenant", "t1");
    let mut first = NewEvent::raw("Placed", vec![1, 2, 3]);
    first.metadata = meta.clone();
    let second = NewEvent::raw("Shipped", Vec::new());
    let ids = [first.event_id, second.event_id];
    store
        .append(&s, ExpectedVersion::NoStream, vec![first, second])
        .unwrap();
    let read = store.read_stream(&s, 1, usize::MAX).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].stream, "order-7");
    assert_eq!([read[0].event_id, read[1].event_id], ids);
    assert_eq!(read[0].event_type, "Placed");
    assert_eq!(read[1].event_type, "Shipped");
    assert_eq!(read[0].metadata, meta);
    assert_eq!(read[1].metadata, Metadata::default());
    assert_eq!(read[0].payload, vec![1, 2, 3]);
    assert!(read[1].payload.is_empty());
    assert_eq!(
        read[0].timestamp, read[1].timestamp,
        "one batch, one timestamp"
    );
    assert_eq!(all(store), read);
}

/// `append_one` checks the expectation, stores and reports exactly as a batch of one.
pub fn append_one_is_a_batch_of_one<S: EventStore>(store: &S) {
    let a = stream("one-a");
    let b = stream("one-b");
    let mut first = event(0);
    first.metadata = Metadata::default().with("user", "ada");
    let (id, meta) = (first.event_id, first.metadata.clone());
    let r = store
        .append_one(&a, ExpectedVersion::NoStream, first)
        .unwrap();
    assert_eq!((r.first_version, r.first_position, r.count), (1, 1, 1));
    store
        .append(&b, ExpectedVersion::NoStream, events(0..2))
        .unwrap();
    let r = store
        .append_one(&a, ExpectedVersion::Exact(1), event(1))
        .unwrap();
    assert_eq!(
        (r.first_version, r.first_position, r.stream_version()),
        (2, 4, 2)
    );
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(1)] {
        let err = store.append_one(&a, expected, event(9)).unwrap_err();
        assert_eq!(wrong_version(err), (expected, 2));
    }
    let r = store
        .append_one(&stream("one-c"), ExpectedVersion::Any, event(2))
        .unwrap();
    assert_eq!((r.first_version, r.first_position), (1, 5));
    let read = store.read_stream(&a, 1, usize::MAX).unwrap();
    assert_eq!(versions(&read), [1, 2]);
    assert_eq!(read[0].event_id, id);
    assert_eq!(read[0].metadata, meta);
    assert_eq!(
        all(store).iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.head_position().unwrap(), 5);
}

/// `Any` appends whatever the version.
pub fn expected_version_any<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::Any, events(0..1))
        .unwrap();
    store
        .append(&s, ExpectedVersion::Any, events(1..2))
        .unwrap();
    assert_eq!(store.stream_version(&s).unwrap(), 2);
}

/// `NoStream` (and `Exact(0)`) only appends to a stream without events.
pub fn expected_version_no_stream<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..1))
        .unwrap();
    let err = store
        .append(&s, ExpectedVersion::NoStream, events(1..2))
        .unwrap_err();
    assert_eq!(err.stream(), "x-1");
    assert_eq!(wrong_version(err), (ExpectedVersion::NoStream, 1));
    let err = store
        .append(&s, ExpectedVersion::Exact(0), events(1..2))
        .unwrap_err();
    assert_eq!(wrong_version(err), (ExpectedVersion::Exact(0), 1));
    store
        .append(&stream("x-2"), ExpectedVersion::Exact(0), events(0..1))
        .unwrap();
}

/// `Exists` only appends to a stream with events.
pub fn expected_version_exists<S: EventStore>(store: &S) {
    let s = stream("x-1");
    let err = store
        .append(&s, ExpectedVersion::Exists, events(0..1))
        .unwrap_err();
    assert_eq!(wrong_version(err), (ExpectedVersion::Exists, 0));
    store
        .append(&s, ExpectedVersion::Any, events(0..1))
        .unwrap();
    store
        .append(&s, ExpectedVersion::Exists, events(1..2))
        .unwrap();
    assert_eq!(store.stream_version(&s).unwrap(), 2);
}

/// `Exact(v)` only appends when the stream is at `v`, and the error tells the real version.
pub fn expected_version_exact<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::Exact(0), events(0..2))
        .unwrap();
    for wrong in [0, 1, 3, 100] {
        let err = store
            .append(&s, ExpectedVersion::Exact(wrong), events(2..3))
            .unwrap_err();
        assert_eq!(wrong_version(err), (ExpectedVersion::Exact(wrong), 2));
    }
    store
        .append(&s, ExpectedVersion::Exact(2), events(2..3))
        .unwrap();
    assert_eq!(store.stream_version(&s).unwrap(), 3);
}

/// A refused batch leaves no trace: no events, no positions used.
pub fn failed_append_writes_nothing<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .unwrap();
    let before = all(store);
    store
        .append(&s, ExpectedVersion::Exact(1), events(2..50))
        .unwrap_err();
    store
        .append(&stream("x-2"), ExpectedVersion::Exists, events(0..5))
        .unwrap_err();
    assert_eq!(all(store), before);
    assert_eq!(store.head_position().unwrap(), 2);
    let r = store
        .append(&s, ExpectedVersion::Exact(2), events(2..3))
        .unwrap();
    assert_eq!(
        r.first_position, 3,
        "no position was burnt by the failed appends"
    );
}

/// An empty batch checks the expectation and writes nothing.
pub fn empty_batch_only_checks_expectation<S: EventStore>(store: &S) {
    let s = stream("x-1");
    let err = store
        .append(&s, ExpectedVersion::Exists, Vec::new())
        .unwrap_err();
    assert_eq!(wrong_version(err), (ExpectedVersion::Exists, 0));
    let r = store
        .append(&s, ExpectedVersion::NoStream, Vec::new())
        .unwrap();
    assert_eq!(r.count, 0);
    assert_eq!(r.stream_version(), 0);
    assert_eq!(store.head_position().unwrap(), 0);
    assert_eq!(store.stream_version(&s).unwrap(), 0);
}

/// Reading a stream from a version, up to a count of events.
pub fn read_stream_ranges<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..10))
        .unwrap();
    store
        .append(&stream("x-2"), ExpectedVersion::NoStream, events(0..3))
        .unwrap();
    store
        .append(&s, ExpectedVersion::Exact(10), events(10..12))
        .unwrap();
    assert_eq!(
        versions(&store.read_stream(&s, 1, usize::MAX).unwrap()),
        (1..=12).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&store.read_stream(&s, 0, 3).unwrap()),
        vec![1, 2, 3]
    );
    assert_eq!(
        versions(&store.read_stream(&s, 5, 3).unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        versions(&store.read_stream(&s, 11, 90).unwrap()),
        vec![11, 12]
    );
    assert!(store.read_stream(&s, 13, 88).unwrap().is_empty());
    assert!(store.read_stream(&s, 5, 0).unwrap().is_empty());
    assert!(
        store
            .read_stream(&stream("x-3"), 1, usize::MAX)
            .unwrap()
            .is_empty()
    );
    let read = store.read_stream(&s, 10, 2).unwrap();
    assert_eq!(read[0].position, 10);
    assert_eq!(read[1].position, 14, "stream x-2 took positions 11..=13");
    for e in store.read_stream(&s, 1, usize::MAX).unwrap() {
        let n: BTreeMap<String, u64> = crate::codec::decode(&e.payload).unwrap();
        assert_eq!(n["n"], e.version - 1, "payloads come back in version order");
    }
}

/// A long stream written in batches of every size, interleaved with another stream, with one
/// run of 300 events in a row, reads correctly from any version to any version.
pub fn read_long_interleaved_stream_from_any_version<S: EventStore>(store: &S) {
    let s = stream("long-1");
    let other = stream("long-2");
    let mut version = 0;
    let mut size = 1;
    while version < 700 {
        let n = if (200..207).contains(&version) {
            300
        } else {
            size
        };
        store
            .append(
                &s,
                ExpectedVersion::Exact(version),
                events(version..version + n),
            )
            .unwrap();
        store
            .append(&other, ExpectedVersion::Any, events(0..1))
            .unwrap();
        version += n;
        size = size % 7 + 1;
    }
    let all_positions: Vec<u64> = store
        .read_stream(&s, 1, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(all_positions.len() as u64, version);
    for from in [
        0,
        1,
        2,
        31,
        32,
        33,
        63,
        64,
        65,
        100,
        201,
        255,
        256,
        257,
        288,
        289,
        500,
        511,
        512,
        513,
        version - 1,
        version,
        version + 1,
    ] {
        for to in [from, from + 1, from + 40, u64::MAX] {
            let read = store.read_stream(&s, from, versions_in(from, to)).unwrap();
            let want: Vec<u64> = (from.max(1)..=to.min(version)).collect();
            assert_eq!(versions(&read), want, "versions {from}..={to}");
            for e in &read {
                assert_eq!(e.position, all_positions[e.version as usize - 1]);
                let n: BTreeMap<String, u64> = crate::codec::decode(&e.payload).unwrap();
                assert_eq!(n["n"], e.version - 1);
            }
        }
    }
}

/// A visitor that breaks stops the read.
pub fn read_stream_stops_when_told<S: EventStore>(store: &S) {
    let s = stream("x-1");
    store
        .append(&s, ExpectedVersion::NoStream, events(0..100))
        .unwrap();
    let mut seen = 0;
    store
        .read_stream_with(&s, 1, &mut |_| {
            seen += 1;
            if seen == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, 5);
    let mut seen = 0;
    store
        .read_all_with(1, &mut |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(seen, 1);
}

/// Streams whose ids share a prefix (`acc-1`, `acc-10`, `acc-1-x`) never mix.
pub fn streams_sharing_a_prefix_stay_apart<S: EventStore>(store: &S) {
    let ids = ["acc-1", "acc-10", "acc-1-x", "acc-", "acc-1!", "acc-1~"];
    for (i, id) in ids.iter().enumerate() {
        let n = i as u64 + 1;
        store
            .append(&stream(id), ExpectedVersion::NoStream, events(0..n))
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let read = store.read_stream(&stream(id), 1, usize::MAX).unwrap();
        assert_eq!(read.len(), i + 1, "stream {id}");
        assert!(
            read.iter().all(|e| e.stream == *id),
            "stream {id} holds only its own events"
        );
        assert_eq!(store.stream_version(&stream(id)).unwrap(), i as u64 + 1);
    }
}

/// Any valid id is stored as given, up to the maximum length.
pub fn unicode_and_long_stream_ids<S: EventStore>(store: &S) {
    let long = format!("c-{}", "é".repeat((StreamId::MAX_LEN - 2) / 2));
    assert!(long.len() <= StreamId::MAX_LEN);
    for id in ["größe-ü", "日本-語", long.as_str()] {
        let s = stream(id);
        store
            .append(&s, ExpectedVersion::NoStream, events(0..2))
            .unwrap();
        let read = store.read_stream(&s, 1, usize::MAX).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].stream, id);
    }
}

/// The global log holds every event once, in position order, with no gaps.
pub fn read_all_is_gap_free_in_position_order<S: EventStore>(store: &S) {
    for round in 0..5u64 {
        for s in ["a-1", "b-2", "c-3"] {
            store
                .append(&stream(s), ExpectedVersion::Any, events(round..round + 2))
                .unwrap();
        }
    }
    let log = all(store);
    assert_eq!(log.len(), 30);
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
    let from_17 = store.read_all(17, usize::MAX).unwrap();
    assert_eq!(from_17.first().map(|e| e.position), Some(17));
    assert_eq!(from_17.len(), 14);
    assert_eq!(store.read_all(0, 3).unwrap().len(), 3);
    assert!(store.read_all(31, 10).unwrap().is_empty());
    assert_eq!(store.read_all(5, 0).unwrap().len(), 0);
}

/// The global log reads the same from any position, however long, and a read that stops early
/// hands out nothing after it stopped.
pub fn read_all_from_any_position<S: EventStore>(store: &S) {
    let mut size = 1;
    for round in 0..120u64 {
        let s = stream(["a-1", "b-2", "c-3"][round as usize % 3]);
        store
            .append(&s, ExpectedVersion::Any, events(0..size))
            .unwrap();
        size = size % 13 + 1;
    }
    store
        .append(&stream("d-4"), ExpectedVersion::Any, events(0..300))
        .unwrap();
    let log = all(store);
    let head = log.len() as u64;
    assert!(head > 1000, "{head} events");
    for from in [
        0,
        1,
        2,
        15,
        16,
        17,
        47,
        48,
        49,
        111,
        112,
        113,
        239,
        240,
        241,
        255,
        256,
        257,
        495,
        496,
        497,
        751,
        752,
        753,
        head - 1,
        head,
        head + 1,
    ] {
        let mut read = Vec::new();
        store
            .read_all_with(from, &mut |e| {
                read.push((e.position, e.stream.to_owned(), e.version));
                ControlFlow::Continue(())
            })
            .unwrap();
        let want: Vec<_> = log
            .iter()
            .skip(from.max(1) as usize - 1)
            .map(|e| (e.position, e.stream.to_string(), e.version))
            .collect();
        assert_eq!(read, want, "from {from}");
        for stop in [1, 16, 17, 300] {
            let mut seen = Vec::new();
            store
                .read_all_with(from, &mut |e| {
                    seen.push(e.position);
                    if seen.len() == stop {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            let want: Vec<u64> = (from.max(1)..=head).take(stop).collect();
            assert_eq!(seen, want, "from {from}, stopping after {stop}");
        }
    }
}

/// Timestamps along the global log never decrease.
pub fn timestamps_never_go_back<S: EventStore>(store: &S) {
    for i in 0..50 {
        store
            .append(
                &stream(&format!("t-{}", i % 7)),
                ExpectedVersion::Any,
                events(0..1),
            )
            .unwrap();
    }
    let log = all(store);
    assert!(log.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(log[0].timestamp.as_nanos() > 0);
}

/// Big payloads and big batches round-trip.
pub fn large_payloads_and_batches<S: EventStore>(store: &S) {
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let s = stream("big-1");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![NewEvent::raw("Big", big.clone())],
        )
        .unwrap();
    assert_eq!(store.read_stream(&s, 1, 1).unwrap()[0].payload, big);
    let s = stream("batch-1");
    let r = store
        .append(&s, ExpectedVersion::NoStream, events(0..10_000))
        .unwrap();
    assert_eq!(r.stream_version(), 10_000);
    let read = store.read_stream(&s, 1, usize::MAX).unwrap();
    assert_eq!(versions(&read), (1..=10_000).collect::<Vec<_>>());
}

fn snapshot(version: u64) -> Snapshot {
    Snapshot {
        version,
        state_version: 1,
        payload: version.to_be_bytes().to_vec(),
    }
}

/// Saving keeps the newest K snapshots; loading returns the newest.
pub fn snapshots_keep_the_last_k<S: EventStore>(store: &S) {
    let s = stream("snap-1");
    let other = stream("snap-10");
    assert_eq!(store.load_snapshot(&s).unwrap(), None);
    assert!(store.snapshots(&s).unwrap().is_empty());
    assert_eq!(store.load_snapshot_before(&s, u64::MAX).unwrap(), None);
    store.save_snapshot(&other, snapshot(7), 3).unwrap();
    for v in [10, 20, 30, 40, 50] {
        store.save_snapshot(&s, snapshot(v), 3).unwrap();
        assert_eq!(store.load_snapshot(&s).unwrap(), Some(snapshot(v)));
    }
    let kept: Vec<u64> = store
        .snapshots(&s)
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, vec![30, 40, 50]);
    // The newest below a version, never another stream's.
    let before = |stream: &StreamId, below: u64| {
        store
            .load_snapshot_before(stream, below)
            .unwrap()
            .map(|s| s.version)
    };
    assert_eq!(before(&s, u64::MAX), Some(50));
    assert_eq!(before(&s, 50), Some(40));
    assert_eq!(before(&s, 41), Some(40));
    assert_eq!(before(&s, 40), Some(30));
    assert_eq!(before(&s, 30), None);
    assert_eq!(before(&other, 8), Some(7));
    assert_eq!(before(&other, 7), None);
    store.save_snapshot(&s, snapshot(60), 0).unwrap();
    let kept: Vec<u64> = store
        .snapshots(&s)
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, vec![60], "keep 0 still keeps the newest");
    assert_eq!(store.load_snapshot(&other).unwrap(), Some(snapshot(7)));
    let mut v2 = snapshot(70);
    v2.state_version = 2;
    store.save_snapshot(&s, v2.clone(), 2).unwrap();
    assert_eq!(store.load_snapshot(&s).unwrap(), Some(v2));
}

/// A second snapshot at the same version replaces the first.
pub fn snapshot_of_same_version_replaces<S: EventStore>(store: &S) {
    let s = stream("snap-1");
    store.save_snapshot(&s, snapshot(5), 5).unwrap();
    let replacement = Snapshot {
        version: 5,
        state_version: 2,
        payload: vec![9],
    };
    store.save_snapshot(&s, replacement.clone(), 5).unwrap();
    assert_eq!(store.snapshots(&s).unwrap(), vec![replacement]);
}

/// Checkpoints are stored per name.
pub fn checkpoints_round_trip<S: EventStore>(store: &S) {
    assert_eq!(store.load_checkpoint("p").unwrap(), None);
    store.save_checkpoint("p", 10).unwrap();
    store.save_checkpoint("q", 3).unwrap();
    store.save_checkpoint("p", 12).unwrap();
    assert_eq!(store.load_checkpoint("p").unwrap(), Some(12));
    assert_eq!(store.load_checkpoint("q").unwrap(), Some(3));
}

/// A schema named `name` whose one event is `event`.
fn schema(name: &str, event: &str) -> OwnedSchema {
    OwnedSchema {
        name: name.to_owned(),
        type_name: "Account".to_owned(),
        events: vec![OwnedEvent {
            name: event.to_owned(),
            type_name: event.to_owned(),
            ..OwnedEvent::default()
        }],
        ..OwnedSchema::default()
    }
}

/// Schemas are recorded per aggregate name, once per change, oldest kept; each record reads
/// back as the schema recorded.
pub fn schemas_keep_a_history_per_aggregate<S: EventStore>(store: &S) {
    assert_eq!(store.schemas().unwrap(), vec![]);
    let first = schema("account", "Opened");
    let recorded = store.save_schema(&first).unwrap().expect("recorded");
    assert_eq!((recorded.name.as_str(), recorded.revision), ("account", 1));
    assert_eq!(recorded.schema().unwrap(), first);
    assert_eq!(store.save_schema(&first).unwrap(), None, "unchanged");

    let second = schema("account", "Created");
    let changed = store.save_schema(&second).unwrap().expect("recorded");
    assert_eq!(changed.revision, 2);
    assert!(changed.recorded_at >= recorded.recorded_at);
    assert_eq!(store.save_schema(&second).unwrap(), None, "unchanged");
    let other = store
        .save_schema(&schema("cart", "Opened"))
        .unwrap()
        .expect("another aggregate has its own history");
    assert_eq!(other.revision, 1);
    // Back to the first: a change from the newest, recorded as a third revision.
    assert_eq!(store.save_schema(&first).unwrap().unwrap().revision, 3);

    let all = store.schemas().unwrap();
    let listed: Vec<(&str, u32)> = all.iter().map(|r| (r.name.as_str(), r.revision)).collect();
    assert_eq!(
        listed,
        [("account", 1), ("account", 2), ("account", 3), ("cart", 1)]
    );
    assert_eq!(all[0], recorded);
    assert_eq!(all[1].schema().unwrap(), second);
    assert_eq!(all[2].schema().unwrap(), first);
    let latest: Vec<(&str, u32)> = RecordedSchema::latest(&all)
        .iter()
        .map(|r| (r.name.as_str(), r.revision))
        .collect();
    assert_eq!(latest, [("account", 3), ("cart", 1)]);

    let err = store.save_schema(&schema("", "Opened")).unwrap_err();
    assert!(
        matches!(err, crate::WriteError::InvalidInput { .. }),
        "an aggregate without a name: {err:?}"
    );
}

/// Schemas taken in from elsewhere keep their revisions and times, and read back as given;
/// taken in again they change nothing; a history that would not grow refuses the batch.
pub fn schemas_imported_keep_revisions_and_times<S: EventStore>(store: &S) {
    let record = |name: &str, revision: u32, at: u64, event: &str| {
        RecordedSchema::new(
            name.to_owned(),
            revision,
            Timestamp(at),
            schema(name, event).to_json(),
        )
    };
    assert_eq!(store.import_schemas(Vec::new()).unwrap(), 0);
    let history = vec![
        record("cart", 1, 7, "Opened"),
        record("account", 2, 20, "Created"),
        record("account", 1, 10, "Opened"),
    ];
    assert_eq!(store.import_schemas(history.clone()).unwrap(), 3);
    let mut expected = history.clone();
    expected.sort_by(|a, b| (&a.name, a.revision).cmp(&(&b.name, b.revision)));
    assert_eq!(store.schemas().unwrap(), expected);
    assert_eq!(store.import_schemas(history).unwrap(), 0, "held already");

    // Recording goes on after the imported history, and importing after that.
    let third = store
        .save_schema(&schema("account", "Renamed"))
        .unwrap()
        .expect("recorded");
    assert_eq!(third.revision, 3);
    assert_eq!(
        store
            .import_schemas(vec![record("account", 4, 40, "Opened")])
            .unwrap(),
        1
    );

    // All or nothing: one record that does not grow its history refuses the batch.
    let before = store.schemas().unwrap();
    for refused in [
        vec![
            record("order", 1, 1, "Placed"),
            record("account", 2, 1, "Other"),
        ],
        vec![
            record("order", 1, 1, "Placed"),
            record("account", 3, 1, "Lower"),
        ],
        vec![record("order", 0, 1, "Placed")],
        vec![record("", 1, 1, "Placed")],
    ] {
        let err = store.import_schemas(refused).unwrap_err();
        assert!(
            matches!(err, crate::WriteError::InvalidInput { .. }),
            "{err:?}"
        );
    }
    assert_eq!(store.schemas().unwrap(), before);
}

/// Threads recording the same schema at once record it once.
pub fn schemas_recorded_at_once_are_recorded_once<S: EventStore>(store: &S) {
    let threads = 4;
    let barrier = Barrier::new(threads);
    let recorded: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    store.save_schema(&schema("account", "Opened")).unwrap()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap().is_some()))
            .sum()
    });
    assert_eq!(recorded, 1);
    assert_eq!(store.schemas().unwrap().len(), 1);
}

/// `streams` lists every stream once with its version and last position, in id order,
/// filtered by category, continued after a given id, and bounded by a limit.
pub fn streams_are_listed_with_their_heads<S: EventStore>(store: &S) {
    assert_eq!(store.streams(None, None, usize::MAX).unwrap(), []);
    // Ids chosen so that byte order differs from insertion order, and a category is a
    // prefix of another ("acc" of "account").
    let appends = [
        ("account-b", 2),
        ("acc-1", 1),
        ("account-a", 3),
        ("account-b", 1),
        ("order-9", 1),
        ("account", 1),
    ];
    for (id, n) in appends {
        let id = StreamId::parse(id).unwrap();
        store
            .append(&id, ExpectedVersion::Any, events(0..n))
            .unwrap();
    }
    let heads = |category, after: Option<&str>, limit| -> Vec<(String, u64, u64)> {
        let after = after.map(|a| StreamId::parse(a).unwrap());
        store
            .streams(category, after.as_ref(), limit)
            .unwrap()
            .into_iter()
            .map(|h: StreamHead| (h.stream.to_string(), h.version, h.position))
            .collect()
    };
    let all = heads(None, None, usize::MAX);
    let expected = [
        ("acc-1".to_owned(), 1, 3),
        ("account".to_owned(), 1, 9),
        ("account-a".to_owned(), 3, 6),
        ("account-b".to_owned(), 3, 7),
        ("order-9".to_owned(), 1, 8),
    ];
    assert_eq!(all, expected);
    assert_eq!(heads(Some("account"), None, usize::MAX), expected[1..4]);
    assert_eq!(heads(Some("acc"), None, usize::MAX), expected[..1]);
    assert_eq!(heads(Some("nothing"), None, usize::MAX), []);
    assert_eq!(heads(None, None, 2), expected[..2]);
    assert_eq!(heads(None, Some("account"), 2), expected[2..4]);
    assert_eq!(
        heads(Some("account"), Some("account-a"), 10),
        expected[3..4]
    );
    assert_eq!(heads(None, Some("order-9"), 10), []);
    assert_eq!(heads(None, None, 0), []);
    // Every stream with its version, page after page.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = heads(None, after.as_deref(), 2);
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        paged.extend(page);
    }
    assert_eq!(paged, expected);
}

/// Threads racing on one stream with exact expected versions: exactly one wins each version,
/// and the stream and the log have no gaps.
pub fn concurrent_appenders_one_stream<S: EventStore>(store: &S) {
    const THREADS: usize = 8;
    const TARGET: u64 = 200;
    let s = stream("race-1");
    let barrier = Barrier::new(THREADS);
    let wins: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let mut won = Vec::new();
                    loop {
                        let v = store.stream_version(&s).unwrap();
                        if v >= TARGET {
                            return won;
                        }
                        match store.append(&s, ExpectedVersion::Exact(v), events(v..v + 1)) {
                            Ok(r) => {
                                assert_eq!(r.first_version, v + 1);
                                won.push(r.first_version);
                            }
                            Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                                assert!(actual > v, "a conflict means someone else moved on");
                            }
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all_wins: Vec<u64> = wins.into_iter().flatten().collect();
    all_wins.sort_unstable();
    assert_eq!(
        all_wins,
        (1..=TARGET).collect::<Vec<_>>(),
        "each version won exactly once"
    );
    let read = store.read_stream(&s, 1, usize::MAX).unwrap();
    assert_eq!(versions(&read), (1..=TARGET).collect::<Vec<_>>());
    for e in &read {
        let n: BTreeMap<String, u64> = crate::codec::decode(&e.payload).unwrap();
        assert_eq!(
            n["n"] + 1,
            e.version,
            "the winner's payload is the one stored"
        );
    }
    let log = all(store);
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
}

/// Threads appending to their own streams all succeed, and the log interleaves them without
/// gaps.
pub fn concurrent_appenders_many_streams<S: EventStore>(store: &S) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let s = stream(&format!("many-{t}-{}", i % 4));
                    let batch = 1 + i % 3;
                    store
                        .append(&s, ExpectedVersion::Any, events(0..batch))
                        .unwrap();
                }
            });
        }
    });
    let log = all(store);
    let expected: u64 = THREADS * (0..PER_THREAD).map(|i| 1 + i % 3).sum::<u64>();
    assert_eq!(log.len() as u64, expected);
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
    let mut per_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &log {
        per_stream
            .entry(e.stream.as_str())
            .or_default()
            .push(e.version);
    }
    for (s, vs) in per_stream {
        assert_eq!(
            vs,
            (1..=vs.len() as u64).collect::<Vec<_>>(),
            "stream {s} is contiguous"
        );
    }
}

/// Every checkpoint is listed with its position, sorted by name.
pub fn checkpoints_list_every_name_sorted<S: EventStore>(store: &S) {
    assert_eq!(store.checkpoints().unwrap(), []);
    for (name, position) in [("votes", 7), ("a-b", 1), ("Zed", 0), ("ballots", 9)] {
        store.save_checkpoint(name, position).unwrap();
    }
    store.save_checkpoint("votes", 8).unwrap();
    let listed = store.checkpoints().unwrap();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Zed", "a-b", "ballots", "votes"], "byte order");
    assert_eq!(listed[3], ("votes".to_owned(), 8));
    assert_eq!(listed[0], ("Zed".to_owned(), 0));
}

/// A recorded event as another store would hand it out: `version` of `stream`, stamped `t`.
fn recorded(stream_id: &str, version: u64, t: u64, n: u64) -> RecordedEvent {
    RecordedEvent {
        stream: stream(stream_id),
        version,
        // Not read by an import: the target assigns positions.
        position: 1_000 + n,
        event_type: std::borrow::Cow::Owned(format!("Imported{}", n % 3)),
        event_version: 1 + (n % 4) as u32,
        event_id: uuid::Uuid::now_v7(),
        timestamp: Timestamp(t),
        metadata: if n.is_multiple_of(2) {
            Metadata::default()
                .with_correlation_id(uuid::Uuid::now_v7())
                .with("n", n.to_string())
        } else {
            Metadata::default()
        },
        payload: crate::codec::encode(&BTreeMap::from([("n", n)])).expect("encodes"),
    }
}

/// An import keeps ids, timestamps, metadata, types, versions of shape, payloads and stream
/// versions, and its events take the positions after the head, in the order given.
pub fn import_keeps_every_envelope_field_and_takes_the_next_positions<S: EventStore>(store: &S) {
    let a = stream("acc-a");
    store
        .append(&a, ExpectedVersion::NoStream, events(0..2))
        .unwrap();
    let t = all(store)[1].timestamp.as_nanos();
    let batch = vec![
        recorded("acc-a", 3, t, 0),
        recorded("acc-b", 1, t + 5, 1),
        recorded("acc-a", 4, t + 5, 2),
        recorded("acc-b", 2, t + 9, 3),
    ];
    let r = store.import(batch.clone()).unwrap();
    assert_eq!((r.first_position, r.count, r.last_position()), (3, 4, 6));
    assert_eq!(store.head_position().unwrap(), 6);
    assert_eq!(store.stream_version(&a).unwrap(), 4);
    assert_eq!(store.stream_version(&stream("acc-b")).unwrap(), 2);
    let log = all(store);
    for (read, (sent, position)) in log[2..].iter().zip(batch.iter().zip(3..)) {
        let expected = RecordedEvent {
            position,
            ..sent.clone()
        };
        assert_eq!(read, &expected);
    }
    let empty = store.import(Vec::new()).unwrap();
    assert_eq!((empty.first_position, empty.count), (7, 0));
    assert_eq!(store.head_position().unwrap(), 6);
}

/// A batch with an event that is not the next of its stream (a gap, a version already
/// stored, a new stream not starting at 1), or stamped before the event before it in the
/// log, is refused whole: nothing of it is written.
pub fn import_refuses_a_batch_that_skips_repeats_or_goes_back_in_time<S: EventStore>(store: &S) {
    let a = stream("acc-a");
    store
        .append(&a, ExpectedVersion::NoStream, events(0..2))
        .unwrap();
    let before = all(store);
    let t = before[1].timestamp.as_nanos();
    let refused = |batch: Vec<RecordedEvent>| {
        let err = store.import(batch).unwrap_err();
        assert_eq!(all(store), before, "nothing written");
        err
    };
    let gap = refused(vec![recorded("acc-b", 1, t, 0), recorded("acc-a", 4, t, 1)]);
    assert_eq!(gap.stream(), "acc-a");
    assert_eq!(wrong_version(gap), (ExpectedVersion::Exact(3), 2));
    let repeat = refused(vec![recorded("acc-a", 2, t, 0)]);
    assert_eq!(wrong_version(repeat), (ExpectedVersion::Exact(1), 2));
    let inside = refused(vec![recorded("acc-b", 1, t, 0), recorded("acc-b", 1, t, 1)]);
    assert_eq!(wrong_version(inside), (ExpectedVersion::Exact(0), 1));
    let late_start = refused(vec![recorded("acc-c", 2, t, 0)]);
    assert_eq!(wrong_version(late_start), (ExpectedVersion::Exact(1), 0));
    let back = refused(vec![recorded("acc-a", 3, t.saturating_sub(1), 0)]);
    assert!(matches!(back, AppendError::InvalidInput { .. }), "{back:?}");
    let back_inside = refused(vec![
        recorded("acc-a", 3, t + 10, 0),
        recorded("acc-a", 4, t + 9, 1),
    ]);
    assert!(
        matches!(back_inside, AppendError::InvalidInput { .. }),
        "{back_inside:?}"
    );
}

/// Streams written by imports, long and interleaved, read by version from anywhere, and
/// appends continue them with no earlier timestamp than the imported events'.
pub fn imported_streams_read_and_append_as_appended_ones<S: EventStore>(store: &S) {
    let start = 1_000_000_000u64;
    let names = ["long-a", "long-b", "long-c"];
    let mut versions = [0u64; 3];
    let mut sent = Vec::new();
    let mut n = 0;
    for batch in 0..12 {
        let mut events = Vec::new();
        for _ in 0..(batch * 7 + 3) {
            let s = (n + n / 5) as usize % 3;
            versions[s] += 1;
            events.push(recorded(names[s], versions[s], start + n / 4, n));
            n += 1;
        }
        sent.extend(events.clone());
        store.import(events).unwrap();
    }
    assert_eq!(store.head_position().unwrap(), n);
    for (s, name) in names.iter().enumerate() {
        let id = stream(name);
        assert_eq!(store.stream_version(&id).unwrap(), versions[s]);
        let mine: Vec<&RecordedEvent> = sent.iter().filter(|e| e.stream == id).collect();
        assert!(versions[s] > 65, "{name} is long enough: {}", versions[s]);
        for from in [1, 2, 31, 32, 33, 64, 65, versions[s]] {
            let read = store.read_stream(&id, from, usize::MAX).unwrap();
            let ids: Vec<_> = read.iter().map(|e| (e.version, e.event_id)).collect();
            let want: Vec<_> = mine[from as usize - 1..]
                .iter()
                .map(|e| (e.version, e.event_id))
                .collect();
            assert_eq!(ids, want, "{name} from {from}");
        }
    }
    let a = stream(names[0]);
    let r = store
        .append(&a, ExpectedVersion::Exact(versions[0]), events(0..1))
        .unwrap();
    assert_eq!(
        (r.first_version, r.first_position),
        (versions[0] + 1, n + 1)
    );
    assert!(r.timestamp.as_nanos() >= start + (n - 1) / 4);
    let err = store
        .append(&a, ExpectedVersion::Exact(versions[0]), events(0..1))
        .unwrap_err();
    assert_eq!(wrong_version(err).1, versions[0] + 1);
}
