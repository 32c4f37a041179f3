//! Subscriptions: catch-up then live, filters, bounds, async waiting.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use es_runtime::subscription::{Filter, Subscription, Until};
use es_runtime::{
    EventStore, ExpectedVersion, ManualClock, MemoryStore, NewEvent, StreamId, Timestamp,
};

fn raw(event_type: &'static str, n: u64) -> NewEvent {
    NewEvent::raw(event_type, es_runtime::codec::encode(&n).unwrap())
}

fn append(store: &impl EventStore, stream: &str, event_type: &'static str, n: u64) -> u64 {
    let stream = StreamId::parse(stream).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![raw(event_type, n)])
        .unwrap()
        .first_position
}

/// A minimal executor: polls the future on this thread, parking between wake-ups.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn catch_up_then_live<S: EventStore + 'static>(store: Arc<S>) {
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 500;
    for i in 0..100 {
        append(&store, &format!("pre-{}", i % 5), "Pre", i);
    }
    let mut sub = Subscription::new(store.clone(), Filter::all());
    // Read part of the history before the writers start, the rest races with them.
    for _ in 0..40 {
        sub.next_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("history is there");
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..PER_WRITER {
                    append(&store, &format!("live-{w}"), "Live", i);
                }
            })
        })
        .collect();
    let total = 100 + WRITERS * PER_WRITER;
    let mut positions = (1..=40).collect::<Vec<u64>>();
    while (positions.len() as u64) < total {
        let e = sub
            .next_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("an event arrives");
        positions.push(e.position);
    }
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "every position once, in order"
    );
    assert!(sub.try_next().unwrap().is_none(), "nothing delivered twice");
    assert_eq!(sub.position(), total);
}

fn filters_by_category_and_event_type<S: EventStore + 'static>(store: Arc<S>) {
    append(&store, "poll-1", "Voted", 1);
    append(&store, "account-1", "Deposited", 2);
    append(&store, "poll-2", "Closed", 3);
    append(&store, "poll-1", "Voted", 4);
    append(&store, "pollster-1", "Voted", 5);
    let mut sub = Subscription::new(
        store.clone(),
        Filter::all().category("poll").event_type("Voted"),
    );
    let got: Vec<u64> = std::iter::from_fn(|| sub.try_next().unwrap())
        .map(|e| e.position)
        .collect();
    assert_eq!(got, vec![1, 4]);
    let mut sub = Subscription::new(
        store.clone(),
        Filter::all().category("poll").category("account"),
    );
    let got: Vec<u64> = std::iter::from_fn(|| sub.try_next().unwrap())
        .map(|e| e.position)
        .collect();
    assert_eq!(got, vec![1, 2, 3, 4]);
    let mut sub = Subscription::new(store.clone(), Filter::all().from_position(3));
    let got: Vec<u64> = std::iter::from_fn(|| sub.try_next().unwrap())
        .map(|e| e.position)
        .collect();
    assert_eq!(got, vec![3, 4, 5]);
}

#[test]
fn until_bounds_end_the_subscription() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    for i in 0..10 {
        append(
            &store,
            "poll-1",
            if i % 2 == 0 { "Voted" } else { "Other" },
            i,
        );
        clock.advance(Duration::from_nanos(100));
    }
    // Positions 1..=10 at times 1000, 1100, ..., 1900.
    let collect = |filter: Filter| -> Vec<u64> {
        Subscription::new(store.clone(), filter)
            .map(|e| e.unwrap().position)
            .collect()
    };
    assert_eq!(
        collect(Filter::all().until(Until::Position(4))),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        collect(Filter::all().until(Until::Time(Timestamp(1_250)))),
        vec![1, 2, 3]
    );
    assert_eq!(
        collect(Filter::all().event_type("Voted").until(Until::Count(3))),
        vec![1, 3, 5],
        "the first three votes"
    );
}

fn a_bound_beyond_the_head_waits_for_it<S: EventStore + 'static>(store: Arc<S>) {
    append(&store, "a-1", "E", 0);
    let mut sub = Subscription::new(store.clone(), Filter::all().until(Until::Position(3)));
    assert_eq!(
        sub.next_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .position,
        1
    );
    assert!(
        sub.next_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    assert!(!sub.is_finished());
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 0..5 {
                append(&store, "a-1", "E", i);
            }
        })
    };
    let rest: Vec<u64> = sub.by_ref().map(|e| e.unwrap().position).collect();
    writer.join().unwrap();
    assert_eq!(rest, vec![2, 3]);
    assert!(sub.is_finished());
}

fn async_next_waits<S: EventStore + 'static>(store: Arc<S>) {
    let mut sub = Subscription::new(store.clone(), Filter::all().category("late"));
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            append(&store, "early-1", "E", 0);
            append(&store, "late-1", "E", 1);
        })
    };
    let got: Vec<u64> = block_on(async {
        let first = sub.next_async().await.unwrap().unwrap();
        vec![first.position]
    });
    writer.join().unwrap();
    assert_eq!(got, vec![2]);
    let seen: BTreeSet<u64> = store
        .read_all(1, 10)
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(seen, BTreeSet::from([1, 2]));
}

/// The threads of this process, as the kernel counts them.
#[cfg(target_os = "linux")]
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// Idle async subscribers share the process's one timer: waiting costs no thread each.
#[cfg(target_os = "linux")]
#[test]
fn idle_async_subscribers_start_no_thread_each() {
    const SUBSCRIBERS: usize = 500;
    let store = Arc::new(MemoryStore::new());
    append(&store, "poll-1", "Voted", 1);
    let mut subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| Subscription::new(store.clone(), Filter::all().from_position(2)))
        .collect();
    let mut cx = Context::from_waker(Waker::noop());
    // One waiting subscriber starts whatever the runtime keeps for good.
    let mut first = Subscription::new(store.clone(), Filter::all().from_position(2));
    assert!(pin!(first.next_async()).poll(&mut cx).is_pending());
    let before = threads();
    let mut waiting: Vec<_> = subs.iter_mut().map(|s| Box::pin(s.next_async())).collect();
    for next in &mut waiting {
        assert!(next.as_mut().poll(&mut cx).is_pending());
    }
    let during = threads();
    drop(waiting);
    assert!(
        during < before + 50,
        "{SUBSCRIBERS} waiting subscribers took {} threads",
        during.saturating_sub(before)
    );
}

/// A store whose log hands out the event at `bad` with metadata that does not decode.
struct BadMetadataAt {
    inner: MemoryStore,
    bad: u64,
}

impl EventStore for BadMetadataAt {
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<es_runtime::AppendResult, es_runtime::AppendError> {
        self.inner.append(stream, expected, events)
    }
    fn stream_version(&self, stream: &StreamId) -> Result<u64, es_runtime::ReadError> {
        self.inner.stream_version(stream)
    }
    fn read_stream_with(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut es_runtime::store::Visitor<'_>,
    ) -> Result<(), es_runtime::ReadError> {
        self.inner.read_stream_with(stream, from, visitor)
    }
    fn read_all_with(
        &self,
        from: u64,
        visitor: &mut es_runtime::store::Visitor<'_>,
    ) -> Result<(), es_runtime::ReadError> {
        let bad = self.bad;
        self.inner.read_all_with(from, &mut |mut e| {
            if e.position == bad {
                // 0xc1 is never valid MessagePack.
                e.metadata = &[0xc1];
            }
            visitor(e)
        })
    }
    fn head_position(&self) -> Result<u64, es_runtime::ReadError> {
        self.inner.head_position()
    }
    fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: es_runtime::Snapshot,
        keep: usize,
    ) -> Result<(), es_runtime::WriteError> {
        self.inner.save_snapshot(stream, snapshot, keep)
    }
    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<es_runtime::Snapshot>, es_runtime::ReadError> {
        self.inner.load_snapshot(stream)
    }
    fn snapshots(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<es_runtime::Snapshot>, es_runtime::ReadError> {
        self.inner.snapshots(stream)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), es_runtime::WriteError> {
        self.inner.save_checkpoint(name, position)
    }
    fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, es_runtime::ReadError> {
        self.inner.load_checkpoint(name)
    }
    fn checkpoints(&self) -> Result<Vec<(String, u64)>, es_runtime::ReadError> {
        self.inner.checkpoints()
    }
    fn import(
        &self,
        events: Vec<es_runtime::RecordedEvent>,
    ) -> Result<es_runtime::ImportResult, es_runtime::AppendError> {
        self.inner.import(events)
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
fn an_event_whose_metadata_does_not_decode_is_named_by_its_own_position() {
    let store = BadMetadataAt {
        inner: MemoryStore::new(),
        bad: 3,
    };
    for n in 1..=5 {
        append(&store, "poll-1", "Voted", n);
    }
    let mut subscription = Subscription::new(&store, Filter::all());
    assert_eq!(subscription.try_next().unwrap().unwrap().position, 1);
    assert_eq!(subscription.try_next().unwrap().unwrap().position, 2);
    match subscription.try_next() {
        Err(es_runtime::ReadError::Corrupt { at, .. }) => {
            assert_eq!(at, es_runtime::Location::Position(3), "{at}");
        }
        other => panic!("expected the event at position 3 to be corrupt, got {other:?}"),
    }
    // Asking again fails at the same event: nothing before it is handed out twice.
    assert!(subscription.try_next().is_err());
    assert_eq!(subscription.position(), 2);
}

crate::backends::over_every_backend!(
    catch_up_then_live,
    async_next_waits,
    filters_by_category_and_event_type,
    a_bound_beyond_the_head_waits_for_it,
);
