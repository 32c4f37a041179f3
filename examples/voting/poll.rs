//! A poll, its voters, and three ways to count the same ballots.
//!
//! The poll records every ballot cast while it is open, exactly as cast: a voter may vote
//! again, and may write in a choice that is not on the poll. What counts is decided by whoever
//! counts, here three projections over the same events, so the counting rule can change
//! after the vote and be applied to the full record.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

use es::Metrics;
use es::history::fold_filtered;
use es::prelude::*;
use es::projection::Progress;
use es::subscription::{Filter, Until};

/// The options on the poll; any other choice is invalid.
pub const CHOICES: [&str; 4] = ["pizza", "tacos", "sushi", "salad"];

/// Choices voters write in that are not on the poll.
const WRITE_INS: [&str; 4] = ["burgers", "Pizza", "sushi!", "none of these"];

/// Whether a choice is on the poll.
pub fn is_valid(choice: &str) -> bool {
    CHOICES.contains(&choice)
}

/// Why the poll refused a ballot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// The poll is closed.
    #[error("the poll is closed")]
    Closed,
    /// A ballot without a voter.
    #[error("a ballot needs a voter")]
    NoVoter,
}

/// A poll: open until closed, recording the ballots cast.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    ballots: u64,
    closed: bool,
}

/// A poll on where to go for lunch. It refuses only what cannot be a ballot at all (one
/// without a voter) and ballots after it closed; repeated ballots and choices not on the poll
/// are recorded, for the counting to interpret.
#[aggregate]
impl Poll {
    /// Cast a ballot for `choice`.
    #[command]
    pub fn cast(&self, voter: String, choice: String) -> Result<PollEvent, PollError> {
        if self.closed {
            return Err(PollError::Closed);
        }
        if voter.trim().is_empty() {
            return Err(PollError::NoVoter);
        }
        Ok(PollEvent::VoteCast { voter, choice })
    }

    /// Close the poll: later ballots are refused.
    #[command]
    pub fn close(&self) -> Result<PollEvent, PollError> {
        if self.closed {
            return Err(PollError::Closed);
        }
        Ok(PollEvent::Closed)
    }

    /// A ballot was cast. The poll keeps only the number of ballots: what they say matters
    /// to the counting, not to the poll.
    #[event]
    #[allow(unused_variables)]
    fn vote_cast(&mut self, voter: String, choice: String) {
        self.ballots += 1;
    }

    /// The poll was closed.
    #[event]
    fn closed(&mut self) {
        self.closed = true;
    }

    /// The number of ballots cast.
    pub fn ballots(&self) -> u64 {
        self.ballots
    }
}

/// Ballots per choice on the poll, and invalid ones together.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Ballots per valid choice.
    pub valid: BTreeMap<String, u64>,
    /// Ballots for a choice not on the poll.
    pub invalid: u64,
}

impl Tally {
    fn add(&mut self, choice: &str) {
        if is_valid(choice) {
            *self.valid.entry(choice.to_owned()).or_default() += 1;
        } else {
            self.invalid += 1;
        }
    }

    /// The ballots for `choice` (0 for an invalid one).
    pub fn get(&self, choice: &str) -> u64 {
        self.valid.get(choice).copied().unwrap_or(0)
    }

    /// All ballots counted, valid or not.
    pub fn total(&self) -> u64 {
        self.valid.values().sum::<u64>() + self.invalid
    }
}

/// The naive count: every ballot counts, repeats and invalid choices included.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EveryBallot {
    tally: Tally,
}

impl EveryBallot {
    /// The count.
    pub fn tally(&self) -> Tally {
        self.tally.clone()
    }
}

impl Projection for EveryBallot {
    type Event = PollEvent;
    type Error = Infallible;
    fn name(&self) -> &str {
        "every_ballot"
    }
    fn categories(&self) -> &[&str] {
        &[Poll::NAME]
    }
    fn apply(&mut self, e: Envelope<'_, PollEvent>) -> Result<(), Infallible> {
        if let PollEvent::VoteCast { choice, .. } = e.event {
            self.tally.add(choice);
        }
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Infallible> {
        self.tally = Tally::default();
        Ok(())
    }
}

/// Which of a voter's ballots counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The first: later ballots are ignored.
    First,
    /// The last: a voter may change their mind.
    Last,
}

/// One ballot per voter, chosen by a [`Rule`]; a ballot for a choice not on the poll counts
/// as invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct OneBallotPerVoter {
    rule: Rule,
    ballots: BTreeMap<String, String>,
}

impl OneBallotPerVoter {
    /// An empty count following `rule`.
    pub fn new(rule: Rule) -> Self {
        OneBallotPerVoter {
            rule,
            ballots: BTreeMap::new(),
        }
    }

    /// The rule in force.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Changes the rule; the count is wrong until rebuilt.
    pub fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
    }

    /// The count.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for choice in self.ballots.values() {
            tally.add(choice);
        }
        tally
    }
}

impl Projection for OneBallotPerVoter {
    type Event = PollEvent;
    type Error = Infallible;
    fn name(&self) -> &str {
        "one_ballot_per_voter"
    }
    fn categories(&self) -> &[&str] {
        &[Poll::NAME]
    }
    fn apply(&mut self, e: Envelope<'_, PollEvent>) -> Result<(), Infallible> {
        if let PollEvent::VoteCast { voter, choice } = e.event {
            match self.rule {
                Rule::Last => {
                    self.ballots.insert(voter.clone(), choice.clone());
                }
                Rule::First => {
                    self.ballots
                        .entry(voter.clone())
                        .or_insert_with(|| choice.clone());
                }
            }
        }
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Infallible> {
        self.ballots.clear();
        Ok(())
    }
}

/// One valid ballot per voter: ballots for a choice not on the poll are spoiled and ignored,
/// and each voter's last valid ballot counts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OneValidBallotPerVoter {
    ballots: BTreeMap<String, String>,
}

impl OneValidBallotPerVoter {
    /// The count (its `invalid` is always 0).
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for choice in self.ballots.values() {
            tally.add(choice);
        }
        tally
    }
}

impl Projection for OneValidBallotPerVoter {
    type Event = PollEvent;
    type Error = Infallible;
    fn name(&self) -> &str {
        "one_valid_ballot_per_voter"
    }
    fn categories(&self) -> &[&str] {
        &[Poll::NAME]
    }
    fn apply(&mut self, e: Envelope<'_, PollEvent>) -> Result<(), Infallible> {
        if let PollEvent::VoteCast { voter, choice } = e.event
            && is_valid(choice)
        {
            self.ballots.insert(voter.clone(), choice.clone());
        }
        Ok(())
    }
    fn reset(&mut self) -> Result<(), Infallible> {
        self.ballots.clear();
        Ok(())
    }
}

/// Folds the poll's events into a fresh projection, without a runner or a checkpoint.
pub fn replay<P, S>(store: &S, projection: P) -> Result<P, es::history::HistoryError>
where
    P: Projection<Event = PollEvent, Error = Infallible>,
    S: EventStore + ?Sized,
{
    let polls = Filter::all().category(Poll::NAME);
    let (projection, _) = fold_filtered(store, &polls, projection, |mut p, e| {
        let Ok(()) = p.apply(e);
        p
    })?;
    Ok(projection)
}

/// A tiny deterministic generator (xorshift64), so every run casts the same ballots.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A voter and the ballots they will cast, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// The voter's id.
    pub name: String,
    /// Their choices, in the order cast: one or two.
    pub ballots: Vec<String>,
}

/// `count` voters drawn from `seed`: about half vote twice (changing their mind), and about
/// a fifth write in a choice that is not on the poll in one of their ballots.
pub fn voters(count: usize, seed: u64) -> Vec<Voter> {
    let mut rng = Rng::new(seed);
    // Popularity of the choices, in percent.
    const WEIGHTS: [u64; 4] = [35, 30, 20, 15];
    let pick = |rng: &mut Rng| {
        let mut roll = rng.below(100);
        for (choice, weight) in CHOICES.iter().zip(WEIGHTS) {
            if roll < weight {
                return *choice;
            }
            roll -= weight;
        }
        unreachable!("the weights add up to 100")
    };
    (0..count)
        .map(|i| {
            let twice = rng.below(2) == 0;
            let invalid = rng.below(5) == 0;
            let first = pick(&mut rng);
            let mut ballots = vec![first.to_owned()];
            if twice {
                let second = loop {
                    let c = pick(&mut rng);
                    if c != first {
                        break c;
                    }
                };
                ballots.push(second.to_owned());
            }
            if invalid {
                let which = rng.below(ballots.len() as u64) as usize;
                ballots[which] = WRITE_INS[rng.below(WRITE_INS.len() as u64) as usize].to_owned();
            }
            Voter {
                name: format!("voter{i:04}"),
                ballots,
            }
        })
        .collect()
}

/// The poll's id (its stream is `poll-lunch`).
pub const POLL: &str = "lunch";

/// How the vote went.
#[derive(Debug)]
pub struct Voting {
    /// How long casting the ballots took.
    pub time: Duration,
    /// The refusal of a ballot cast after the poll closed.
    pub late_ballot: Option<PollError>,
    /// The poll's state at the end, from the host.
    pub poll: Poll,
    /// The host's counters.
    pub host: Metrics,
}

/// Casts the ballots of `voters` on the poll through a `Host` over `store` from `threads`
/// threads (each voter's ballots from one thread, in order: every first ballot, then the
/// second ones), closes the poll, and tries a late ballot.
pub fn vote<S>(
    store: S,
    voters: &[Voter],
    threads: usize,
) -> Result<Voting, Box<dyn Error + Send + Sync>>
where
    S: EventStore + Send + Sync + 'static,
{
    let host = Host::<Poll, _>::new(store);
    let threads = threads.max(1);
    let started = Instant::now();
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let host = &host;
                scope.spawn(move || -> Result<(), ExecuteError<PollError>> {
                    for round in 0..2 {
                        for voter in voters.iter().skip(t).step_by(threads) {
                            if let Some(choice) = voter.ballots.get(round) {
                                let cast = PollCommand::Cast {
                                    voter: voter.name.clone(),
                                    choice: choice.clone(),
                                };
                                host.execute(POLL, cast)?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a voting thread panicked"))
    })?;
    let time = started.elapsed();
    host.execute(POLL, PollCommand::Close)?;
    let late = PollCommand::Cast {
        voter: "latecomer".to_owned(),
        choice: CHOICES[0].to_owned(),
    };
    let late_ballot = match host.execute(POLL, late) {
        Ok(_) => None,
        Err(ExecuteError::Rejected(why)) => Some(why),
        Err(other) => return Err(other.into()),
    };
    Ok(Voting {
        time,
        late_ballot,
        poll: host.state(POLL)?,
        host: host.metrics(),
    })
}

/// The counts of the ballots in a store.
#[derive(Debug)]
pub struct Counts {
    /// The naive count.
    pub every: EveryBallot,
    /// One ballot per voter, the last.
    pub last: OneBallotPerVoter,
    /// One valid ballot per voter, the last valid.
    pub valid: OneValidBallotPerVoter,
    /// The naive count of the first 100 ballots recorded.
    pub first_100: Tally,
    /// The one-per-voter count rebuilt after its rule changed to the first ballot.
    pub rebuilt: OneBallotPerVoter,
    /// Events the rebuild applied.
    pub rebuilt_events: u64,
}

/// Counts the ballots in `store`: three projections, each with its checkpoint in the store;
/// the first 100 ballots; and a rebuild of the one-per-voter count after its rule changes
/// from the last ballot to the first, reporting to `progress`.
pub fn count<S>(
    store: S,
    progress: impl FnMut(Progress),
) -> Result<Counts, Box<dyn Error + Send + Sync>>
where
    S: EventStore + Clone,
{
    let mut every = ProjectionRunner::new(store.clone(), EveryBallot::default());
    let mut last =
        ProjectionRunner::new(store.clone(), OneBallotPerVoter::new(Rule::Last)).progress_every(50);
    let mut valid = ProjectionRunner::new(store.clone(), OneValidBallotPerVoter::default());
    every.catch_up()?;
    last.catch_up()?;
    valid.catch_up()?;
    let last_counted = last.projection().clone();

    // The first 100 ballots, by position in the log.
    let first = Filter::all().category(Poll::NAME).until(Until::Count(100));
    let (first_100, _) = fold_filtered(&store, &first, Tally::default(), |mut t, e| {
        if let PollEvent::VoteCast { choice, .. } = e.event {
            t.add(choice);
        }
        t
    })?;

    // The rule changes: the first ballot counts. The same read model is rebuilt from zero.
    last.projection_mut().set_rule(Rule::First);
    let rebuilt_events = last.rebuild(progress)?;

    Ok(Counts {
        every: every.into_projection(),
        last: last_counted,
        valid: valid.into_projection(),
        first_100,
        rebuilt: last.into_projection(),
        rebuilt_events,
    })
}
