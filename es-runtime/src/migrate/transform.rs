//! Transforms: what each event of the source becomes in the target.
//!
//! The rule: a transform sees every event of the source once, in log order, and answers with
//! the events that stand for it in the target: itself (keep), none (drop), a changed copy
//! (rewrite, rename its stream), or several (split). The migration then gives each answer the
//! next version of its target stream and the next position of the target's log, so a
//! transform never computes versions; everything else it answers is stored as it is.

use std::borrow::Cow;
use std::marker::PhantomData;

use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::codec;
use crate::error::BoxError;
use crate::event::RecordedEvent;

/// What each event of a migration's source becomes in its target.
///
/// Answer `vec![event]` to keep it, an empty `Vec` to drop it, a changed event to rewrite it
/// (another stream, type, payload or metadata) and several events to split it. The `version`
/// and `position` of the events answered are not read: the migration assigns them. Events
/// added by a split need ids of their own ([`derived_id`] makes them reproducible).
///
/// Closures are transforms through [`Migration::transform_with`](super::Migration::transform_with)
/// or [`map`]; [`upcast`] is the ready-made transform that rewrites an aggregate's events at
/// their current shape.
pub trait Transform {
    /// The events `event` becomes in the target, in order.
    fn transform(&mut self, event: RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError>;

    /// This transform, then `next` on each of the events it answers.
    fn then<T: Transform>(self, next: T) -> Then<Self, T>
    where
        Self: Sized,
    {
        Then(self, next)
    }
}

impl<T: Transform + ?Sized> Transform for Box<T> {
    fn transform(&mut self, event: RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError> {
        (**self).transform(event)
    }
}

/// A closure as a [`Transform`].
///
/// ```
/// use es_runtime::migrate::{self, Transform};
///
/// // Drops every event of the `audit` category, keeps the others.
/// let mut t = migrate::map(|e| Ok(if e.stream.category() == "audit" { vec![] } else { vec![e] }));
/// # let _ = &mut t;
/// ```
pub fn map<F>(f: F) -> Map<F>
where
    F: FnMut(RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError>,
{
    Map(f)
}

/// A closure as a [`Transform`]; see [`map`].
#[derive(Debug, Clone)]
pub struct Map<F>(F);

impl<F> Transform for Map<F>
where
    F: FnMut(RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError>,
{
    fn transform(&mut self, event: RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError> {
        (self.0)(event)
    }
}

/// One transform, then another on each of its answers; see [`Transform::then`].
#[derive(Debug, Clone)]
pub struct Then<A, B>(A, B);

impl<A: Transform, B: Transform> Transform for Then<A, B> {
    fn transform(&mut self, event: RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError> {
        let mut out = Vec::new();
        for e in self.0.transform(event)? {
            out.extend(self.1.transform(e)?);
        }
        Ok(out)
    }
}

/// The id of the `n`-th event (1-based) added when the event `original` is split: the same
/// id every time, differing from `original` and from the other `n` in its last six bytes
/// only (random bits in a UUID v7), so that it keeps the original's creation time.
pub fn derived_id(original: Uuid, n: u64) -> Uuid {
    let mut bytes = *original.as_bytes();
    // Bytes 10..16 are random in a UUID v7; the version and variant bits (bytes 6 and 8)
    // stay as they are.
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
    for (b, m) in bytes[10..].iter_mut().zip(&mix[2..]) {
        *b ^= m;
    }
    Uuid::from_bytes(bytes)
}

/// The transform that rewrites the events of aggregate `A` at their current shape: each event
/// of `A`'s category is decoded through its upcasts, as every reader decodes it, and stored
/// as what it reads as now: its current type name and version, re-encoded. An event already
/// at its current shape is kept byte for byte; an upcast to none drops the event; an upcast
/// to several splits it (the first keeps the id, the others get [`derived_id`]s). Events of
/// other categories are kept.
///
/// An event of `A`'s category that does not decode fails the migration, naming it.
///
/// ```
/// # use es_runtime::{Aggregate, DomainEvent, MemoryStore};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # struct Counter;
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # enum CounterEvent { Incremented }
/// # impl DomainEvent for CounterEvent {
/// #     const TYPES: &'static [&'static str] = &["Incremented"];
/// #     fn event_type(&self) -> &'static str { "Incremented" }
/// # }
/// # impl Aggregate for Counter {
/// #     const NAME: &'static str = "counter";
/// #     type Command = ();
/// #     type Event = CounterEvent;
/// #     type Error = std::convert::Infallible;
/// #     type Services = ();
/// #     fn handle(&self, _: ()) -> Result<Vec<CounterEvent>, Self::Error> { Ok(vec![]) }
/// #     fn apply(&mut self, _: CounterEvent) {}
/// # }
/// use es_runtime::migrate::{self, Migration};
///
/// let (old, new) = (MemoryStore::new(), MemoryStore::new());
/// let report = Migration::new(&old, &new)
///     .transform(migrate::upcast::<Counter>())
///     .run()?;
/// assert_eq!(report.written, 0);
/// # Ok::<(), migrate::MigrateError>(())
/// ```
pub fn upcast<A: Aggregate>() -> Upcaster<A> {
    Upcaster(PhantomData)
}

/// The transform that rewrites `A`'s events at their current shape; see [`upcast`].
pub struct Upcaster<A>(PhantomData<fn() -> A>);

impl<A> std::fmt::Debug for Upcaster<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Upcaster")
            .field(&std::any::type_name::<A>())
            .finish()
    }
}

impl<A> Clone for Upcaster<A> {
    fn clone(&self) -> Self {
        Upcaster(PhantomData)
    }
}

impl<A: Aggregate> Transform for Upcaster<A> {
    fn transform(&mut self, event: RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError> {
        if event.stream.category() != A::NAME {
            return Ok(vec![event]);
        }
        let decoded = event.clone().decode_all::<A::Event>()?;
        if let [one] = decoded.as_slice() {
            let e = &one.payload;
            if e.event_type() == event.event_type && e.event_version() == event.event_version {
                return Ok(vec![event]);
            }
        }
        decoded
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let current = &d.payload;
                Ok(RecordedEvent {
                    event_type: Cow::Borrowed(current.event_type()),
                    event_version: current.event_version(),
                    event_id: match i {
                        0 => event.event_id,
                        n => derived_id(event.event_id, n as u64),
                    },
                    payload: codec::encode(current)?,
                    ..event.clone()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_reproducible_distinct_and_keep_the_time() {
        let original = crate::event::new_event_id();
        let ids: Vec<Uuid> = (1..=100).map(|n| derived_id(original, n)).collect();
        assert_eq!(ids[0], derived_id(original, 1));
        let mut unique = ids.clone();
        unique.push(original);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 101);
        for id in &ids {
            assert_eq!(id.as_bytes()[..10], original.as_bytes()[..10]);
            assert_eq!(id.get_version_num(), 7);
        }
    }
}
