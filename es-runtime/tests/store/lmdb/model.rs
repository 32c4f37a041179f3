//! Randomized operations on an LMDB store compared with a reference model (`BTreeMap`s):
//! appends with right and wrong expected versions, reads of streams and of the global log,
//! snapshots, checkpoints and reopening the store.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use es_runtime::{
    AppendError, Durability, EventStore, ExpectedVersion, LmdbOptions, LmdbStore, NewEvent,
    RecordedEvent, Snapshot, StreamId,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const STREAMS: [&str; 4] = ["acc-1", "acc-10", "acc-1-x", "order-1"];

#[derive(Debug, Clone)]
enum Expect {
    /// `Exact` of the stream's real version.
    Right,
    /// `Exact` of the real version plus this (never right).
    Wrong(u64),
    Any,
    NoStream,
    Exists,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expect: Expect,
        count: usize,
    },
    ReadStream {
        stream: usize,
        from: u64,
        to: u64,
    },
    ReadAll {
        from: u64,
        limit: usize,
    },
    SaveSnapshot {
        stream: usize,
        version: u64,
        keep: usize,
    },
    LoadSnapshot {
        stream: usize,
    },
    Checkpoint {
        name: usize,
        position: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let stream = 0..STREAMS.len();
    let expect = prop_oneof![
        4 => Just(Expect::Right),
        1 => (1..3u64).prop_map(Expect::Wrong),
        2 => Just(Expect::Any),
        1 => Just(Expect::NoStream),
        1 => Just(Expect::Exists),
    ];
    prop_oneof![
        8 => (stream.clone(), expect, prop_oneof![6 => 0..5usize, 1 => 30..45usize])
            .prop_map(|(stream, expect, count)| Op::Append { stream, expect, count }),
        3 => (stream.clone(), 0..120u64, 0..130u64)
            .prop_map(|(stream, from, to)| Op::ReadStream { stream, from, to }),
        2 => (0..300u64, 0..100usize).prop_map(|(from, limit)| Op::ReadAll { from, limit }),
        2 => (stream.clone(), 0..12u64, 0..4usize)
            .prop_map(|(stream, version, keep)| Op::SaveSnapshot { stream, version, keep }),
        1 => stream.prop_map(|stream| Op::LoadSnapshot { stream }),
        1 => (0..2usize, 0..100u64).prop_map(|(name, position)| Op::Checkpoint { name, position }),
        1 => Just(Op::Reopen),
    ]
}

/// The reference: what a correct store holds.
#[derive(Default)]
struct Model {
    /// The global log: (stream, version, payload).
    log: Vec<(String, u64, Vec<u8>)>,
    versions: BTreeMap<String, u64>,
    snapshots: BTreeMap<String, BTreeMap<u64, Snapshot>>,
    checkpoints: BTreeMap<String, u64>,
    next_payload: u64,
}

fn open(dir: &Path) -> LmdbStore {
    LmdbOptions::new()
        .durability(Durability::NoSync)
        .map_size(1 << 20)
        .heads_every(3)
        .open(dir)
        .expect("opens")
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

fn summary(events: &[RecordedEvent]) -> Vec<(String, u64, u64, Vec<u8>)> {
    events
        .iter()
        .map(|e| {
            (
                e.stream.to_string(),
                e.version,
                e.position,
                e.payload.clone(),
            )
        })
        .collect()
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append {
                stream,
                expect,
                count,
            } => {
                let name = STREAMS[*stream];
                let current = model.versions.get(name).copied().unwrap_or(0);
                let expected = match expect {
                    Expect::Right => ExpectedVersion::Exact(current),
                    Expect::Wrong(d) => ExpectedVersion::Exact(current + d),
                    Expect::Any => ExpectedVersion::Any,
                    Expect::NoStream => ExpectedVersion::NoStream,
                    Expect::Exists => ExpectedVersion::Exists,
                };
                let payloads: Vec<Vec<u8>> = (0..*count)
                    .map(|_| {
                        model.next_payload += 1;
                        model.next_payload.to_be_bytes().to_vec()
                    })
                    .collect();
                let events = payloads
                    .iter()
                    .map(|p| NewEvent::raw("E", p.clone()))
                    .collect();
                let result = store.append(&StreamId::parse(name).unwrap(), expected, events);
                if expected.matches(current) {
                    let r = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let head = model.log.len() as u64;
                    prop_assert_eq!(
                        (r.first_version, r.first_position, r.count),
                        (current + 1, head + 1, *count as u64)
                    );
                    for (i, p) in payloads.into_iter().enumerate() {
                        model.log.push((name.to_owned(), current + 1 + i as u64, p));
                    }
                    if *count > 0 {
                        model
                            .versions
                            .insert(name.to_owned(), current + *count as u64);
                    }
                } else {
                    match result {
                        Err(AppendError::WrongExpectedVersion {
                            stream: s, actual, ..
                        }) => {
                            prop_assert_eq!(s, name);
                            prop_assert_eq!(actual, current);
                        }
                        other => prop_assert!(false, "expected a conflict, got {:?}", other),
                    }
                }
            }
            Op::ReadStream { stream, from, to } => {
                let name = STREAMS[*stream];
                let got = store
                    .read_stream(
                        &StreamId::parse(name).unwrap(),
                        *from,
                        versions_in(*from, *to),
                    )
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want: Vec<_> = model
                    .log
                    .iter()
                    .enumerate()
                    .filter(|(_, (s, v, _))| s == name && *v >= *from && *v <= *to)
                    .map(|(i, (s, v, p))| (s.clone(), *v, i as u64 + 1, p.clone()))
                    .collect();
                prop_assert_eq!(summary(&got), want);
                prop_assert_eq!(
                    store
                        .stream_version(&StreamId::parse(name).unwrap())
                        .unwrap(),
                    model.versions.get(name).copied().unwrap_or(0)
                );
            }
            Op::ReadAll { from, limit } => {
                let got = store
                    .read_all(*from, *limit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want: Vec<_> = model
                    .log
                    .iter()
                    .enumerate()
                    .map(|(i, (s, v, p))| (s.clone(), *v, i as u64 + 1, p.clone()))
                    .filter(|e| e.2 >= *from)
                    .take(*limit)
                    .collect();
                prop_assert_eq!(summary(&got), want);
                prop_assert_eq!(store.head_position().unwrap(), model.log.len() as u64);
            }
            Op::SaveSnapshot {
                stream,
                version,
                keep,
            } => {
                let name = STREAMS[*stream];
                let snapshot = Snapshot {
                    version: *version,
                    state_version: 1,
                    payload: vec![*version as u8; 3],
                };
                store
                    .save_snapshot(&StreamId::parse(name).unwrap(), snapshot.clone(), *keep)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let kept = model.snapshots.entry(name.to_owned()).or_default();
                kept.insert(*version, snapshot);
                while kept.len() > (*keep).max(1) {
                    kept.pop_first();
                }
                let got = store.snapshots(&StreamId::parse(name).unwrap()).unwrap();
                prop_assert_eq!(got, kept.values().cloned().collect::<Vec<_>>());
            }
            Op::LoadSnapshot { stream } => {
                let name = STREAMS[*stream];
                let got = store
                    .load_snapshot(&StreamId::parse(name).unwrap())
                    .unwrap();
                let want = model
                    .snapshots
                    .get(name)
                    .and_then(|s| s.last_key_value())
                    .map(|(_, s)| s.clone());
                prop_assert_eq!(got, want);
            }
            Op::Checkpoint { name, position } => {
                let name = ["projection", "projection-2"][*name];
                store.save_checkpoint(name, *position).unwrap();
                model.checkpoints.insert(name.to_owned(), *position);
                for (n, p) in &model.checkpoints {
                    prop_assert_eq!(store.load_checkpoint(n).unwrap(), Some(*p));
                }
            }
            Op::Reopen => {
                drop(store);
                store = open(dir.path());
            }
        }
    }
    // Finally the whole log matches.
    let all = store.read_all(1, usize::MAX).unwrap();
    prop_assert_eq!(all.len(), model.log.len());
    Ok(())
}

#[test]
fn random_operations_match_the_model() {
    let cases = std::env::var("ES_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let ran = AtomicUsize::new(0);
    let ops = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |case| {
        ran.fetch_add(1, Ordering::Relaxed);
        ops.fetch_add(case.len(), Ordering::Relaxed);
        run(&case)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ran, ops) = (ran.into_inner(), ops.into_inner());
    let _ = writeln!(
        std::io::stderr().lock(),
        "model test: {ran} random cases, {ops} operations, all matching the model"
    );
    assert!(ran >= cases as usize);
}
