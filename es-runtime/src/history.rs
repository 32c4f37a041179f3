//! Historical reads: the state of an aggregate, or any fold of the global log, as it was at a
//! version, a position or a time ("the balance as of Tuesday", "the first 100 votes").

use std::ops::ControlFlow;

use crate::error::{DecodeError, ReadError};
use crate::event::StreamId;
use crate::projection::Envelope;
use crate::store::EventStore;
use crate::subscription::{Filter, Until};
use crate::{Aggregate, DomainEvent};

/// A historical read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// An event did not decode (the error names the stream and version).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// An aggregate's state at some point of its history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StateAt<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied (0: none).
    pub version: u64,
}

/// Folds the stream of aggregate `A` with id `id` from its first event up to `until`
/// (inclusive): `Until::Count(v)` stops at version `v`, `Until::Position(p)` at global position
/// `p`, `Until::Time(t)` at the last event recorded at or before `t`.
///
/// Snapshots are not used: they hold the latest state, not past ones.
pub fn state_at<A: Aggregate, S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
    until: Until,
) -> Result<StateAt<A>, HistoryError> {
    let mut state = A::default();
    let mut version = 0;
    let mut failure = None;
    store.read_stream_with(stream, 1, &mut |e| {
        let past = match until {
            Until::Count(v) => e.version > v,
            Until::Position(p) => e.position > p,
            Until::Time(t) => e.timestamp > t,
        };
        if past {
            return ControlFlow::Break(());
        }
        match e.decode::<A::Event>() {
            Ok(event) => {
                state.apply(event);
                version = e.version;
                ControlFlow::Continue(())
            }
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    match failure {
        Some(err) => Err(err.into()),
        None => Ok(StateAt { state, version }),
    }
}

/// Folds the events of type `E` in the global log, in position order, from the start up to
/// `until` (inclusive; `Until::Count(n)` stops after `n` events of type `E`). Events of other
/// types are skipped without decoding. Returns the accumulator and the number of events folded.
///
/// Every stream whose events have a type name of `E` is folded; when several aggregates share
/// a name (a `Closed` event, say), restrict the fold to a category with [`fold_filtered`].
pub fn fold_log<E: DomainEvent, T, S: EventStore + ?Sized>(
    store: &S,
    until: Until,
    init: T,
    f: impl FnMut(T, Envelope<'_, E>) -> T,
) -> Result<(T, u64), HistoryError> {
    fold_filtered(store, &Filter::all().until(until), init, f)
}

/// Folds the events of type `E` that pass `filter` (categories, type names, start position
/// and bound), in position order. A filter without a bound folds up to the current head.
/// Returns the accumulator and the number of events folded.
///
/// ```
/// # use es_runtime::{DomainEvent, EventStore, MemoryStore};
/// # use es_runtime::history::fold_filtered;
/// # use es_runtime::subscription::{Filter, Until};
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # enum PollEvent { VoteCast { choice: String } }
/// # impl DomainEvent for PollEvent {
/// #     const TYPES: &'static [&'static str] = &["VoteCast"];
/// #     fn event_type(&self) -> &'static str { "VoteCast" }
/// # }
/// # let store = MemoryStore::new();
/// // The first 100 votes of polls, whatever else shares the log.
/// let filter = Filter::all().category("poll").until(Until::Count(100));
/// let (votes, n) = fold_filtered(&store, &filter, 0u64, |n, _e: es_runtime::projection::Envelope<'_, PollEvent>| n + 1)?;
/// assert_eq!((votes, n), (0, 0));
/// # Ok::<(), es_runtime::history::HistoryError>(())
/// ```
pub fn fold_filtered<E: DomainEvent, T, S: EventStore + ?Sized>(
    store: &S,
    filter: &Filter,
    init: T,
    mut f: impl FnMut(T, Envelope<'_, E>) -> T,
) -> Result<(T, u64), HistoryError> {
    let until = filter.end();
    let head = match until {
        None => store.head_position()?,
        Some(_) => u64::MAX,
    };
    let mut acc = Some(init);
    let mut folded = 0u64;
    let mut failure = None;
    store.read_all_with(filter.start(), &mut |e| {
        let past = match until {
            Some(Until::Count(n)) => folded >= n,
            Some(Until::Position(p)) => e.position > p,
            Some(Until::Time(t)) => e.timestamp > t,
            None => e.position > head,
        };
        if past {
            return ControlFlow::Break(());
        }
        if !E::TYPES.contains(&e.event_type) || !filter.matches(&e) {
            return ControlFlow::Continue(());
        }
        match e.decode::<E>() {
            Ok(event) => {
                let envelope = Envelope {
                    stream: e.stream,
                    version: e.version,
                    position: e.position,
                    event_id: e.event_id,
                    timestamp: e.timestamp,
                    event: &event,
                };
                acc = acc.take().map(|a| f(a, envelope));
                folded += 1;
                ControlFlow::Continue(())
            }
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    match (failure, acc) {
        (Some(err), _) => Err(err.into()),
        (None, Some(acc)) => Ok((acc, folded)),
        (None, None) => unreachable!("the accumulator is only taken to be replaced"),
    }
}
