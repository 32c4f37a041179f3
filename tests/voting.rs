//! The voting example's counts, checked against the ballots recorded in the store.

#[allow(unreachable_pub, dead_code)]
#[path = "../examples/voting/poll.rs"]
mod poll;

use std::collections::BTreeMap;
use std::sync::Arc;

use es::testing::AggregateTest;
use es::{Aggregate, Durability, EventStore, LmdbOptions, LmdbStore, StreamId};

use poll::{
    CHOICES, OneBallotPerVoter, Poll, PollCommand, PollError, PollEvent, Rule, Tally, is_valid,
};

/// A reference count, written independently of the projections.
fn tally<'a>(choices: impl IntoIterator<Item = &'a String>) -> Tally {
    let mut tally = Tally::default();
    for choice in choices {
        if CHOICES.contains(&choice.as_str()) {
            *tally.valid.entry(choice.clone()).or_default() += 1;
        } else {
            tally.invalid += 1;
        }
    }
    tally
}

#[test]
fn the_poll_records_repeats_and_write_ins_and_refuses_late_or_anonymous_ballots() {
    let cast = |voter: &str, choice: &str| PollCommand::Cast {
        voter: voter.to_owned(),
        choice: choice.to_owned(),
    };
    let vote = |voter: &str, choice: &str| PollEvent::VoteCast {
        voter: voter.to_owned(),
        choice: choice.to_owned(),
    };
    AggregateTest::<Poll>::given([vote("ann", "pizza")])
        .when(cast("ann", "pizza"))
        .then([vote("ann", "pizza")]);
    AggregateTest::<Poll>::given([])
        .when(cast("ann", "burgers"))
        .then([vote("ann", "burgers")]);
    AggregateTest::<Poll>::given([])
        .when(cast("  ", "pizza"))
        .then_error(PollError::NoVoter);
    AggregateTest::<Poll>::given([vote("ann", "pizza"), PollEvent::Closed])
        .when(cast("bob", "tacos"))
        .then_error(PollError::Closed);
}

#[test]
fn the_voters_are_drawn_the_same_every_time() {
    let voters = poll::voters(1000, 2024);
    assert_eq!(voters, poll::voters(1000, 2024));
    let twice = voters.iter().filter(|v| v.ballots.len() == 2).count();
    let invalid = voters
        .iter()
        .filter(|v| v.ballots.iter().any(|c| !is_valid(c)))
        .count();
    let ballots: usize = voters.iter().map(|v| v.ballots.len()).sum();
    assert_eq!((twice, invalid, ballots), (485, 217, 1485));
    // About half vote twice, about a fifth write in a choice not on the poll.
    assert!((450..550).contains(&twice), "{twice} voted twice");
    assert!((170..230).contains(&invalid), "{invalid} wrote in");
    for v in &voters {
        if let [first, second] = &v.ballots[..] {
            assert_ne!(first, second, "{} votes twice for the same choice", v.name);
        }
    }
}

#[test]
fn every_count_agrees_with_the_recorded_ballots() {
    // Durability is not what this test is about: no fsync per ballot.
    let options = LmdbOptions::new().durability(Durability::NoSync);
    let store = Arc::new(LmdbStore::temporary(options).unwrap());
    let voters = poll::voters(1000, 2024);
    let mut progress = Vec::new();
    let voting = poll::vote(store.clone(), &voters, 4).unwrap();
    let counts = poll::count(store.clone(), |p| progress.push(p)).unwrap();

    // The ballots as recorded, in log order.
    let events = store.read_all(1, usize::MAX).unwrap();
    let mut ballots: Vec<(String, String)> = Vec::new();
    for e in &events {
        if let PollEvent::VoteCast { voter, choice } =
            e.clone().decode::<PollEvent>().unwrap().payload
        {
            ballots.push((voter, choice));
        }
    }
    let vote_casts = events.iter().filter(|e| e.event_type == "VoteCast").count();
    assert_eq!(ballots.len(), vote_casts);
    assert_eq!(ballots.len(), 1485);
    let stream = StreamId::new(Poll::NAME, poll::POLL).unwrap();
    assert_eq!(
        store.stream_version(&stream).unwrap(),
        1486,
        "the ballots and the closing"
    );
    assert_eq!(voting.poll.ballots(), 1485);
    assert_eq!(voting.late_ballot, Some(PollError::Closed));
    assert_eq!(
        voting.host.commands, 1487,
        "the ballots, the closing and the late ballot"
    );

    // Each voter's ballots were recorded in the order they were cast.
    let mut by_voter: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (voter, choice) in &ballots {
        by_voter.entry(voter).or_default().push(choice.clone());
    }
    assert_eq!(by_voter.len(), 1000);
    for v in &voters {
        assert_eq!(
            by_voter[v.name.as_str()],
            v.ballots,
            "ballots of {}",
            v.name
        );
    }

    // The naive count: every ballot.
    let every = counts.every.tally();
    assert_eq!(every.total(), vote_casts as u64);
    assert_eq!(every, tally(ballots.iter().map(|(_, c)| c)));

    // One ballot per voter, the last.
    let last = counts.last.tally();
    assert_eq!(counts.last.rule(), Rule::Last);
    assert_eq!(last.total(), by_voter.len() as u64);
    assert_eq!(last, tally(by_voter.values().map(|b| b.last().unwrap())));

    // One valid ballot per voter, the last valid one.
    let valid = counts.valid.tally();
    let last_valid: Vec<&String> = by_voter
        .values()
        .filter_map(|b| b.iter().rev().find(|c| is_valid(c)))
        .collect();
    assert_eq!(valid.invalid, 0);
    assert_eq!(valid.total(), last_valid.len() as u64);
    assert_eq!(valid, tally(last_valid));
    let without_valid = by_voter.values().filter(|b| !b.iter().any(|c| is_valid(c)));
    assert_eq!(valid.total() + without_valid.count() as u64, 1000);

    // Per choice, a count of one ballot per voter never exceeds the count of every ballot.
    for choice in CHOICES {
        for count in [&last, &valid, &counts.rebuilt.tally()] {
            assert!(count.get(choice) <= every.get(choice), "{choice}");
        }
    }

    // The first 100 ballots in the log.
    assert_eq!(counts.first_100.total(), 100);
    assert_eq!(
        counts.first_100,
        tally(ballots.iter().take(100).map(|(_, c)| c))
    );

    // The rebuild with the new rule equals a fresh count with it, and the reference.
    assert_eq!(counts.rebuilt.rule(), Rule::First);
    let fresh = poll::replay(&*store, OneBallotPerVoter::new(Rule::First)).unwrap();
    assert_eq!(counts.rebuilt, fresh);
    assert_eq!(
        counts.rebuilt.tally(),
        tally(by_voter.values().map(|b| b.first().unwrap()))
    );
    assert_ne!(counts.rebuilt.tally(), last, "the rule change shows");
    assert_eq!(counts.rebuilt_events, 1486);

    // The rebuild reported its progress as it went, up to the head of the log.
    let head = store.head_position().unwrap();
    assert!(progress.len() > 10, "{} progress reports", progress.len());
    assert!(progress.windows(2).all(|w| w[0].position <= w[1].position));
    let end = progress.last().unwrap();
    assert_eq!((end.position, end.head, end.applied), (head, head, 1486));
}
