//! `execute_async`: commands from async code, on any runtime, without blocking its threads.

use crate::common;

use std::time::{Duration, Instant};

use common::{Account, AccountCommand, BankError};
use es_runtime::store::Visitor;
use es_runtime::{
    AppendError, AppendResult, EventStore, ExecuteError, ExpectedVersion, Host, MemoryStore,
    NewEvent, ReadError, Snapshot, StreamId, WriteError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_async_commands() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    let tasks: Vec<_> = (0..1_000u64)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move {
                host.execute_async(i % 10, AccountCommand::Deposit(i + 1))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for account in 0..10u64 {
        let expected: u64 = (0..1_000)
            .filter(|i| i % 10 == account)
            .map(|i| i + 1)
            .sum();
        assert_eq!(host.state(account).unwrap().balance, expected);
        assert_eq!(host.version(account).unwrap(), 100);
    }
}

#[tokio::test]
async fn async_errors_are_the_same_as_blocking_ones() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    let err = host
        .execute_async("a", AccountCommand::Withdraw(1))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ExecuteError::Rejected(BankError::InsufficientFunds { .. })
    ));
    let err = host
        .execute_async("a", AccountCommand::Explode)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecuteError::Panicked { .. }));
    let done = host
        .execute_async(
            "a",
            es_runtime::WithMetadata::new(
                AccountCommand::Deposit(3),
                es_runtime::Metadata::default().with("k", "v"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(done.events[0].metadata.user["k"], "v");
}

/// A store whose appends take 100 ms, like a slow disk's fsync.
#[derive(Debug, Default)]
struct SlowStore(MemoryStore);

impl EventStore for SlowStore {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        std::thread::sleep(Duration::from_millis(100));
        self.0.append(stream, expected, events)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, ReadError> {
        self.0.stream_version(stream)
    }
    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        self.0.read_stream_with(stream, from, visitor)
    }
    fn read_all_with(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        self.0.read_all_with(from, visitor)
    }
    fn head_position(&self) -> Result<u64, ReadError> {
        self.0.head_position()
    }
    fn save_snapshot(
        &self,
        s: &StreamId,
        snapshot: Snapshot,
        keep: usize,
    ) -> Result<(), WriteError> {
        self.0.save_snapshot(s, snapshot, keep)
    }
    fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, ReadError> {
        self.0.load_snapshot(stream)
    }
    fn snapshots(&self, stream: &StreamId) -> Result<Vec<Snapshot>, ReadError> {
        self.0.snapshots(stream)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), WriteError> {
        self.0.save_checkpoint(name, position)
    }
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, ReadError> {
        self.0.load_checkpoint(name)
    }
    fn checkpoints(&self) -> Result<Vec<(String, u64)>, ReadError> {
        self.0.checkpoints()
    }
    fn import(
        &self,
        events: Vec<es_runtime::RecordedEvent>,
    ) -> Result<es_runtime::ImportResult, es_runtime::AppendError> {
        self.0.import(events)
    }
    // The schema methods forward, so that hosts over this store record their schemas.
    fn save_schema(
        &self,
        schema: &es_runtime::OwnedSchema,
    ) -> Result<Option<es_runtime::RecordedSchema>, es_runtime::WriteError> {
        self.0.save_schema(schema)
    }
    fn schemas(&self) -> Result<Vec<es_runtime::RecordedSchema>, es_runtime::ReadError> {
        self.0.schemas()
    }
    fn import_schemas(
        &self,
        records: Vec<es_runtime::RecordedSchema>,
    ) -> Result<u64, es_runtime::WriteError> {
        self.0.import_schemas(records)
    }
}

/// On a single-threaded runtime, 20 slow commands on 20 aggregates overlap, and a timer task
/// keeps ticking meanwhile: the executor's one thread never waits for the store.
#[tokio::test(flavor = "current_thread")]
async fn slow_appends_do_not_block_the_executor() {
    let host = Host::<Account, _>::new(SlowStore::default());
    let ticker = tokio::spawn(async {
        let mut ticks = 0u32;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(150) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            ticks += 1;
        }
        ticks
    });
    let start = Instant::now();
    let commands: Vec<_> = (0..20u64)
        .map(|id| host.execute_async(id, AccountCommand::Deposit(1)))
        .collect();
    for c in commands {
        c.await.unwrap();
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(1_000),
        "took {elapsed:?}: the appends ran one by one"
    );
    assert!(ticker.await.unwrap() >= 5);
}

/// Holds aggregate `id` of `host` busy (a `read` runs on it) until the returned sender is
/// used or dropped.
fn hold(host: &Host<Account, MemoryStore>, id: &'static str) -> std::sync::mpsc::Sender<()> {
    let (held_tx, held) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let host = host.clone();
    std::thread::spawn(move || {
        host.read(id, |_, _| {
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .unwrap();
    });
    held.recv().unwrap();
    release
}

/// Commands sent to one aggregate without awaiting each run in the order they were sent,
/// even when they pile up behind a busy instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commands_to_one_aggregate_run_in_the_order_sent() {
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .max_blocking_threads(8)
        .build();
    let release = hold(&host, "a");
    let sent: Vec<_> = (1..=300u64)
        .map(|i| host.execute_async("a", AccountCommand::Deposit(i)))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(release);
    let mut versions = Vec::new();
    for c in sent {
        versions.push(c.await.unwrap().version);
    }
    assert_eq!(versions, (1..=300).collect::<Vec<_>>());
    let amounts: Vec<u64> = host
        .store()
        .read_stream(&StreamId::new("account", "a").unwrap(), 1, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| match es_runtime::codec::decode(&e.payload).unwrap() {
            common::AccountEvent::Deposited { amount } => amount,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(amounts, (1..=300).collect::<Vec<_>>());
}

/// A burst of commands to one busy aggregate does not take the pool's threads from the
/// others: with two threads, a command to `b` runs while ten wait for `a`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_waiting_for_a_busy_aggregate_leave_the_pool_to_others() {
    let host = Host::<Account, _>::builder(MemoryStore::new())
        .max_blocking_threads(2)
        .build();
    let release = hold(&host, "a");
    let waiting: Vec<_> = (1..=10u64)
        .map(|i| host.execute_async("a", AccountCommand::Deposit(i)))
        .collect();
    let other = tokio::time::timeout(
        Duration::from_secs(20),
        host.execute_async("b", AccountCommand::Deposit(7)),
    )
    .await
    .expect("`b` ran while `a` was busy")
    .unwrap();
    assert_eq!(other.version, 1);
    drop(release);
    for (i, c) in waiting.into_iter().enumerate() {
        assert_eq!(c.await.unwrap().version, i as u64 + 1);
    }
}

/// No runtime at all: the future is driven by a hand-written `block_on`.
#[test]
fn execute_async_needs_no_particular_runtime() {
    let host = Host::<Account, _>::new(MemoryStore::new());
    let done = common::block_on(host.execute_async("a", AccountCommand::Deposit(9))).unwrap();
    assert_eq!(done.version, 1);
}
