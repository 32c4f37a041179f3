//! Store-to-store migration: round trips between every backend equal event by event,
//! snapshots, checkpoints and recorded schemas carried or dropped, transforms that drop, split and rename, a
//! non-empty target refused, and a count check that catches a target losing events.

#[path = "../postgres/server.rs"]
mod server;

mod checks;
mod round_trip;
mod transforms;

use std::collections::BTreeMap;

use es_runtime::{
    EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, Snapshot, StreamId,
};

pub(crate) fn stream(id: &str) -> StreamId {
    StreamId::parse(id).expect("a valid stream id")
}

/// An event of type `kind` with payload `{"n": n}`, shape version `v`, and metadata on every
/// third.
pub(crate) fn event(kind: &'static str, n: u64, v: u32) -> NewEvent {
    let payload = es_runtime::codec::encode(&BTreeMap::from([("n", n)])).unwrap();
    let mut e = NewEvent::raw(kind, payload).with_event_version(v);
    if n.is_multiple_of(3) {
        e.metadata = Metadata::default()
            .with_correlation_id(uuid::Uuid::now_v7())
            .with_causation_id(uuid::Uuid::now_v7())
            .with("user", format!("u{n}"));
    }
    e
}

/// Writes a store worth copying: interleaved streams of three categories (one long enough to
/// cross the LMDB stream index's blocks), batches of several events, snapshots and
/// checkpoints.
pub(crate) fn fill(store: &dyn EventStore) {
    let streams = [
        stream("account-1"),
        stream("account-2"),
        stream("audit-1"),
        stream("order-a-b"),
    ];
    let mut n = 0;
    for round in 0..60u64 {
        let s = &streams[(round % 4) as usize];
        let count = 1 + round % 3;
        let events = (0..count)
            .map(|i| {
                n += 1;
                event(
                    if i == 0 { "Opened" } else { "Changed" },
                    n,
                    1 + (n % 2) as u32,
                )
            })
            .collect();
        store.append(s, ExpectedVersion::Any, events).unwrap();
    }
    for (s, version) in [(&streams[0], 10), (&streams[0], 20), (&streams[1], 5)] {
        let snapshot = Snapshot {
            version,
            state_version: 2,
            payload: vec![version as u8; 3],
        };
        store.save_snapshot(s, snapshot, 5).unwrap();
    }
    for (name, event) in [
        ("account", "Opened"),
        ("account", "Changed"),
        ("order", "Opened"),
    ] {
        store.save_schema(&schema(name, event)).unwrap().unwrap();
    }
    store.save_checkpoint("balances", 40).unwrap();
    store.save_checkpoint("audit", 0).unwrap();
    store
        .save_checkpoint("orders", store.head_position().unwrap())
        .unwrap();
}

/// A schema of aggregate `name` whose one event is `event`.
pub(crate) fn schema(name: &str, event: &str) -> es_runtime::OwnedSchema {
    let mut schema = es_runtime::OwnedSchema::default();
    schema.name = name.to_owned();
    let mut e = es_runtime::schema::OwnedEvent::default();
    e.name = event.to_owned();
    schema.events.push(e);
    schema
}

pub(crate) fn log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store.read_all(1, usize::MAX).unwrap()
}

/// Every snapshot of every stream of `store`'s log, by stream.
pub(crate) fn snapshots(store: &dyn EventStore) -> BTreeMap<String, Vec<Snapshot>> {
    let mut all = BTreeMap::new();
    for e in log(store) {
        all.entry(e.stream.to_string())
            .or_insert_with(|| store.snapshots(&e.stream).unwrap());
    }
    all.retain(|_, v| !v.is_empty());
    all
}
