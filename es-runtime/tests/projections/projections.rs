//! Projections: checkpoints, failures, rebuilds with progress, historical reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use es_runtime::history::{fold_filtered, fold_log, state_at};
use es_runtime::projection::{Envelope, Projection, ProjectionError, ProjectionRunner};
use es_runtime::read::AsOf;
use es_runtime::subscription::{Filter, Until};
use es_runtime::{
    Aggregate, DomainEvent, EventStore, ExpectedVersion, ManualClock, MemoryStore, Metadata,
    NewEvent, StreamId, Timestamp,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PollEvent {
    Voted { voter: u32, choice: String },
    Closed,
}

impl DomainEvent for PollEvent {
    const TYPES: &'static [&'static str] = &["Voted", "Closed"];
    fn event_type(&self) -> &'static str {
        match self {
            PollEvent::Voted { .. } => "Voted",
            PollEvent::Closed => "Closed",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Poll {
    votes: BTreeMap<String, u64>,
    closed: bool,
}

impl Aggregate for Poll {
    const NAME: &'static str = "poll";
    type Command = PollEvent;
    type Event = PollEvent;
    type Error = std::convert::Infallible;
    type Services = ();
    fn handle(&self, command: PollEvent) -> Result<Vec<PollEvent>, Self::Error> {
        Ok(vec![command])
    }
    fn apply(&mut self, event: PollEvent) {
        match event {
            PollEvent::Voted { choice, .. } => *self.votes.entry(choice).or_default() += 1,
            PollEvent::Closed => self.closed = true,
        }
    }
}

fn vote(store: &impl EventStore, poll: u32, voter: u32, choice: &str) -> u64 {
    vote_in(store, "poll", poll, voter, choice)
}

/// A vote in stream `category-id`: other categories share the poll's event names.
fn vote_in(store: &impl EventStore, category: &str, id: u32, voter: u32, choice: &str) -> u64 {
    let stream = StreamId::new(category, id).unwrap();
    let event = PollEvent::Voted {
        voter,
        choice: choice.to_owned(),
    };
    let new = NewEvent::from_event(&event, Metadata::default()).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![new])
        .unwrap()
        .first_position
}

fn other(store: &impl EventStore) {
    let stream = StreamId::new("account", 1).unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::raw("Deposited", vec![0xc0])],
        )
        .unwrap();
}

/// Counts votes per choice; fails on a configured voter to test error handling.
#[derive(Debug, Default)]
struct Tally {
    counts: BTreeMap<String, u64>,
    seen: BTreeSet<u64>,
    refuse_voter: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("voter {0} is refused")]
struct Refused(u32);

impl Projection for Tally {
    type Event = PollEvent;
    type Error = Refused;
    fn name(&self) -> &str {
        "tally"
    }
    fn categories(&self) -> &[&str] {
        &["poll"]
    }
    fn apply(&mut self, e: Envelope<'_, PollEvent>) -> Result<(), Refused> {
        if let PollEvent::Voted { voter, choice } = e.event {
            if Some(*voter) == self.refuse_voter {
                return Err(Refused(*voter));
            }
            assert!(
                self.seen.insert(e.position),
                "position {} applied twice",
                e.position
            );
            *self.counts.entry(choice.clone()).or_default() += 1;
        }
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Refused> {
        self.counts.clear();
        self.seen.clear();
        Ok(())
    }
}

fn catch_up_resumes_from_the_stored_checkpoint<S: EventStore + 'static>(store: Arc<S>) {
    for i in 0..10 {
        vote(&store, 1, i, if i % 3 == 0 { "red" } else { "blue" });
        other(&store);
    }
    let mut runner = ProjectionRunner::new(store.clone(), Tally::default()).checkpoint_every(3);
    assert_eq!(runner.catch_up().unwrap(), 10);
    assert_eq!(runner.checkpoint().unwrap(), 20);
    assert_eq!(runner.projection().counts["red"], 4);
    // A new runner (a restarted process with a durable read model) continues from there.
    let mut restarted = ProjectionRunner::new(store.clone(), Tally::default());
    vote(&store, 1, 99, "red");
    assert_eq!(restarted.catch_up().unwrap(), 1, "only the new event");
    assert_eq!(restarted.projection().counts["red"], 1);
    assert_eq!(restarted.checkpoint().unwrap(), 21);
    assert_eq!(restarted.catch_up().unwrap(), 0);
}

#[test]
fn a_runner_and_a_subscription_can_borrow_a_local_store() {
    let store = MemoryStore::new();
    vote(&store, 1, 1, "red");
    vote(&store, 1, 2, "blue");
    let mut runner = ProjectionRunner::new(&store, Tally::default());
    assert_eq!(runner.catch_up().unwrap(), 2);
    assert_eq!(runner.projection().counts["red"], 1);
    let mut subscription = es_runtime::subscription::Subscription::new(
        &store,
        es_runtime::subscription::Filter::all(),
    );
    let first = subscription
        .next_timeout(std::time::Duration::from_secs(1))
        .unwrap()
        .expect("an event");
    assert_eq!(first.position, 1);
    // The borrowed store is still the caller's.
    vote(&store, 1, 3, "red");
    assert_eq!(runner.catch_up().unwrap(), 1);
}

fn a_failing_projection_stops_at_the_event_and_keeps_its_checkpoint_before_it<
    S: EventStore + 'static,
>(
    store: Arc<S>,
) {
    for i in 0..6 {
        vote(&store, 1, i, "red");
    }
    let tally = Tally {
        refuse_voter: Some(4),
        ..Tally::default()
    };
    let mut runner = ProjectionRunner::new(store.clone(), tally);
    let err = runner.catch_up().unwrap_err();
    match &err {
        ProjectionError::Apply {
            projection,
            stream,
            version,
            position,
            event_type,
            ..
        } => {
            assert_eq!((projection.as_str(), stream.as_str()), ("tally", "poll-1"));
            assert_eq!((*version, *position, event_type.as_str()), (5, 5, "Voted"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("position 5"), "{err}");
    assert_eq!(
        runner.checkpoint().unwrap(),
        4,
        "events before the failure are done"
    );
    assert_eq!(runner.projection().counts["red"], 4);
    // The user decides to skip the voter; the runner carries on after the checkpoint.
    runner.projection_mut().refuse_voter = None;
    assert_eq!(runner.catch_up().unwrap(), 2);
    assert_eq!(runner.projection().counts["red"], 6);
}

fn an_undecodable_event_stops_the_projection_with_its_position<S: EventStore + 'static>(
    store: Arc<S>,
) {
    vote(&store, 1, 1, "red");
    let stream = StreamId::new("poll", 1).unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::raw("Voted", vec![0xc1])],
        )
        .unwrap();
    let mut runner = ProjectionRunner::new(store, Tally::default());
    match runner.catch_up().unwrap_err() {
        ProjectionError::Decode {
            position, source, ..
        } => {
            assert_eq!(position, 2);
            assert!(
                source.to_string().contains("event 2 of stream \"poll-1\""),
                "{source}"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(runner.checkpoint().unwrap(), 1);
}

fn rebuild_replays_everything_and_reports_progress<S: EventStore + 'static>(store: Arc<S>) {
    for i in 0..2_500 {
        vote(&store, i % 7, i, if i % 2 == 0 { "red" } else { "blue" });
    }
    let mut runner = ProjectionRunner::new(store.clone(), Tally::default()).progress_every(500);
    runner.catch_up().unwrap();
    runner.projection_mut().counts.insert("stale".into(), 99);
    let mut reports = Vec::new();
    let applied = runner
        .rebuild(|p| reports.push((p.position, p.head, p.applied)))
        .unwrap();
    assert_eq!(applied, 2_500);
    assert!(
        !runner.projection().counts.contains_key("stale"),
        "reset before replay"
    );
    assert_eq!(runner.projection().counts["red"], 1_250);
    let positions: Vec<u64> = reports.iter().map(|r| r.0).collect();
    assert_eq!(positions, vec![500, 1000, 1500, 2000, 2500, 2500]);
    assert!(reports.iter().all(|r| r.1 == 2_500));
    assert_eq!(reports.last().unwrap().2, 2_500);
}

fn run_until_the_first_hundred_votes<S: EventStore + 'static>(store: Arc<S>) {
    for i in 0..300 {
        if i % 4 == 0 {
            other(&store);
        }
        vote(&store, 1, i, if i < 100 { "early" } else { "late" });
    }
    let mut runner = ProjectionRunner::new(store.clone(), Tally::default());
    assert_eq!(runner.run_until(Until::Count(100)).unwrap(), 100);
    assert_eq!(runner.projection().counts.get("early"), Some(&100));
    assert_eq!(runner.projection().counts.get("late"), None);
}

fn follow_applies_live_commits_until_stopped<S: EventStore + 'static>(store: Arc<S>) {
    vote(&store, 1, 0, "red");
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runner = ProjectionRunner::new(store, Tally::default());
            let applied = runner.follow(&stop, Duration::from_millis(20)).unwrap();
            (applied, runner.into_projection())
        })
    };
    for i in 1..200 {
        vote(&store, 1 + i % 3, i, "red");
    }
    // Wait until the follower has seen everything, then stop it.
    while store.load_checkpoint("tally").unwrap() != Some(200) {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (applied, tally) = follower.join().unwrap();
    assert_eq!(applied, 200);
    assert_eq!(tally.counts["red"], 200);
}

#[test]
fn state_at_a_version_a_position_and_a_time() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let store = MemoryStore::with_clock(clock.clone());
    let mut positions = Vec::new();
    for (i, choice) in ["a", "b", "a", "c", "a"].iter().enumerate() {
        other(&store);
        positions.push(vote(&store, 1, i as u32, choice));
        clock.advance(Duration::from_secs(3600));
    }
    let stream = StreamId::new("poll", 1).unwrap();
    let at = state_at::<Poll, _>(&store, &stream, AsOf::Version(3)).unwrap();
    assert_eq!(at.version, 3);
    assert_eq!(
        at.state.votes,
        BTreeMap::from([("a".into(), 2), ("b".into(), 1)])
    );
    let at = state_at::<Poll, _>(&store, &stream, AsOf::Position(positions[1])).unwrap();
    assert_eq!(at.version, 2);
    // Two hours after the first vote: three votes were in.
    let tuesday = Timestamp(1_000_000 + 2 * 3_600_000_000_000);
    let at = state_at::<Poll, _>(&store, &stream, AsOf::Time(tuesday)).unwrap();
    assert_eq!(at.version, 3);
    let at = state_at::<Poll, _>(&store, &stream, AsOf::Version(u64::MAX)).unwrap();
    assert_eq!(at.state.votes["a"], 3);
    let (choices, n) =
        fold_log::<PollEvent, _, _>(&store, Until::Count(2), Vec::new(), |mut v, e| {
            if let PollEvent::Voted { choice, .. } = e.event {
                v.push(choice.clone());
            }
            v
        })
        .unwrap();
    assert_eq!((choices, n), (vec!["a".to_owned(), "b".to_owned()], 2));
}

#[test]
fn fold_filtered_keeps_to_its_categories_and_bounds() {
    let store = MemoryStore::new();
    // A survey shares the poll's event names.
    for i in 0..6u32 {
        vote(&store, 1, i, if i % 2 == 0 { "a" } else { "b" });
        vote_in(&store, "survey", 1, i, "survey");
    }
    let choices = |mut v: Vec<String>, e: Envelope<'_, PollEvent>| {
        if let PollEvent::Voted { choice, .. } = e.event {
            v.push(choice.clone());
        }
        v
    };
    let (all, n) = fold_log(&store, Until::Count(4), Vec::new(), choices).unwrap();
    assert_eq!(
        (all, n),
        (
            vec!["a".into(), "survey".into(), "b".into(), "survey".into()],
            4
        )
    );
    let polls = Filter::all().category("poll");
    let (only, n) = fold_filtered(&store, &polls, Vec::new(), choices).unwrap();
    assert_eq!(n, 6);
    assert_eq!(only, ["a", "b", "a", "b", "a", "b"]);
    // From position 3 (the poll's second vote), three poll votes.
    let three = polls.clone().from_position(3).until(Until::Count(3));
    let (some, n) = fold_filtered(&store, &three, Vec::new(), choices).unwrap();
    assert_eq!((some, n), (vec!["b".into(), "a".into(), "b".into()], 3));
}

/// The same events, declared as belonging to polls only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PollOnlyEvent {
    Voted { voter: u32, choice: String },
    Closed,
}

impl DomainEvent for PollOnlyEvent {
    const TYPES: &'static [&'static str] = &["Voted", "Closed"];
    const CATEGORIES: &'static [&'static str] = &["poll"];
    fn event_type(&self) -> &'static str {
        match self {
            PollOnlyEvent::Voted { .. } => "Voted",
            PollOnlyEvent::Closed => "Closed",
        }
    }
}

#[test]
fn projections_and_folds_default_to_the_event_types_categories() {
    #[derive(Default)]
    struct Voters(Vec<String>);
    impl Projection for Voters {
        type Event = PollOnlyEvent;
        type Error = std::convert::Infallible;
        fn name(&self) -> &str {
            "voters"
        }
        fn apply(&mut self, e: Envelope<'_, PollOnlyEvent>) -> Result<(), Self::Error> {
            self.0.push(e.stream.to_owned());
            Ok(())
        }
        fn reset(&mut self) -> Result<(), Self::Error> {
            self.0.clear();
            Ok(())
        }
    }
    let store = Arc::new(MemoryStore::new());
    for i in 0..3u32 {
        vote(&store, 1, i, "a");
        vote_in(&store, "survey", 1, i, "survey");
    }
    let mut runner = ProjectionRunner::new(store.clone(), Voters::default());
    assert_eq!(runner.catch_up().unwrap(), 3);
    assert_eq!(runner.projection().0, ["poll-1", "poll-1", "poll-1"]);
    let (n, _) = fold_log(
        &*store,
        Until::Count(u64::MAX),
        0,
        |n, _: Envelope<'_, PollOnlyEvent>| n + 1,
    )
    .unwrap();
    assert_eq!(n, 3);
}

/// Counts votes, and panics on a configured voter or when reset while told to.
#[derive(Debug, Default)]
struct Fragile {
    votes: u64,
    panic_on_voter: Option<u32>,
    panic_on_reset: bool,
}

impl Projection for Fragile {
    type Event = PollEvent;
    type Error = std::convert::Infallible;
    fn name(&self) -> &str {
        "fragile"
    }
    fn apply(&mut self, e: Envelope<'_, PollEvent>) -> Result<(), Self::Error> {
        if let PollEvent::Voted { voter, .. } = e.event
            && Some(*voter) == self.panic_on_voter
        {
            panic!("voter {voter} breaks the tally");
        }
        self.votes += 1;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Self::Error> {
        if self.panic_on_reset {
            panic!("cannot forget");
        }
        self.votes = 0;
        Ok(())
    }
}

fn a_panicking_projection_is_an_error_naming_the_event_and_resumes_there<
    S: EventStore + 'static,
>(
    store: Arc<S>,
) {
    for i in 0..6 {
        vote(&store, 1, i, "red");
    }
    let fragile = Fragile {
        panic_on_voter: Some(4),
        ..Fragile::default()
    };
    let mut runner = ProjectionRunner::new(store.clone(), fragile).checkpoint_every(2);
    let err = runner.catch_up().unwrap_err();
    match &err {
        ProjectionError::Panicked {
            projection,
            stream,
            version,
            position,
            message,
        } => {
            assert_eq!(
                (projection.as_str(), stream.as_str()),
                ("fragile", "poll-1")
            );
            assert_eq!((*version, *position), (5, 5));
            assert!(message.contains("voter 4 breaks the tally"), "{message}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("position 5"), "{err}");
    assert_eq!(
        runner.checkpoint().unwrap(),
        4,
        "the checkpoint is before it"
    );
    assert_eq!(runner.projection().votes, 4);
    runner.projection_mut().panic_on_voter = None;
    assert_eq!(runner.catch_up().unwrap(), 2);
    assert_eq!(runner.projection().votes, 6);
    assert_eq!(runner.checkpoint().unwrap(), 6);

    // A reset that panics leaves the checkpoint where it was.
    runner.projection_mut().panic_on_reset = true;
    let err = runner.rebuild(|_| {}).unwrap_err();
    match &err {
        ProjectionError::ResetPanicked {
            projection,
            message,
        } => {
            assert_eq!(projection, "fragile");
            assert!(message.contains("cannot forget"), "{message}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(runner.checkpoint().unwrap(), 6);
    runner.projection_mut().panic_on_reset = false;
    assert_eq!(runner.rebuild(|_| {}).unwrap(), 6);
    assert_eq!(runner.projection().votes, 6);
}

crate::backends::over_every_backend!(
    catch_up_resumes_from_the_stored_checkpoint,
    a_failing_projection_stops_at_the_event_and_keeps_its_checkpoint_before_it,
    an_undecodable_event_stops_the_projection_with_its_position,
    rebuild_replays_everything_and_reports_progress,
    run_until_the_first_hundred_votes,
    follow_applies_live_commits_until_stopped,
    a_panicking_projection_is_an_error_naming_the_event_and_resumes_there,
);
