//! The vocabulary every reader of the log shares, whatever it reads into: which events
//! ([`Filter`]), how far ([`Until`] over the global log, [`AsOf`] within one stream), and how
//! each event is handed over ([`Envelope`]).
//!
//! Subscriptions, projection runners, table runners and historical reads all speak it; it
//! depends on nothing but the event types.

use uuid::Uuid;

use crate::aggregate::DomainEvent;
use crate::event::{EventRef, Timestamp};

/// One event handed to a projection or a fold: the decoded event and where it was recorded.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a, E> {
    /// The stream (`category-id`).
    pub stream: &'a str,
    /// The event's version in its stream.
    pub version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's unique id.
    pub event_id: Uuid,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// The event.
    pub event: &'a E,
}

impl<'a, E> Envelope<'a, E> {
    /// The envelope of `event`, decoded from the stored `e`.
    pub(crate) fn new(e: &EventRef<'a>, event: &'a E) -> Self {
        Envelope {
            stream: e.stream,
            version: e.version,
            position: e.position,
            event_id: e.event_id,
            timestamp: e.timestamp,
            event,
        }
    }

    /// The aggregate id: the stream id after its category.
    pub fn aggregate_id(&self) -> &str {
        self.stream.split_once('-').map_or("", |(_, id)| id)
    }
}

/// Where a read of the global log stops (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Up to and including this global position.
    Position(u64),
    /// Up to and including the last event recorded at or before this time.
    Time(Timestamp),
    /// After this many events taken by the reader ("the first 100 votes"): events its
    /// filter or projection skips do not count.
    Count(u64),
}

impl Until {
    /// Whether `event` lies beyond the bound, `counted` events having been taken so far.
    pub(crate) fn reached(self, event: &EventRef<'_>, counted: u64) -> bool {
        match self {
            Until::Position(p) => event.position > p,
            Until::Time(t) => event.timestamp > t,
            Until::Count(n) => counted >= n,
        }
    }
}

/// Where a read of one stream stops (inclusive): the point of its history that
/// [`state_at`](crate::history::state_at) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Up to and including this version of the stream (`u64::MAX`: all of it).
    Version(u64),
    /// Up to and including the stream's last event at or before this global position.
    Position(u64),
    /// Up to and including the stream's last event recorded at or before this time.
    Time(Timestamp),
}

impl AsOf {
    /// Whether `event` of the stream lies beyond the bound.
    pub(crate) fn excludes(self, event: &EventRef<'_>) -> bool {
        match self {
            AsOf::Version(v) => event.version > v,
            AsOf::Position(p) => event.position > p,
            AsOf::Time(t) => event.timestamp > t,
        }
    }
}

/// Which events of the global log a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    categories: Vec<String>,
    event_types: Vec<String>,
    from: u64,
    until: Option<Until>,
}

impl Filter {
    /// Every event, from the start of the log, with no end.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Also accepts events of streams in this category (an aggregate's `NAME`). With no
    /// category given, every stream matches.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.categories.push(category.into());
        self
    }

    /// Also accepts events with this stored type name. With no type given, every type
    /// matches.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    /// Accepts these stored type names (see [`event_type`](Filter::event_type)).
    pub fn event_types<I: IntoIterator<Item = T>, T: Into<String>>(mut self, types: I) -> Self {
        self.event_types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Starts at this global position (inclusive; positions start at 1).
    pub fn from_position(mut self, position: u64) -> Self {
        self.from = position;
        self
    }

    /// Stops at this bound instead of following the log forever.
    pub fn until(mut self, until: Until) -> Self {
        self.until = Some(until);
        self
    }

    /// The first position read.
    pub fn start(&self) -> u64 {
        self.from.max(1)
    }

    /// The bound, if any.
    pub fn end(&self) -> Option<Until> {
        self.until
    }

    /// Whether an event passes the category and type filters.
    pub fn matches(&self, event: &EventRef<'_>) -> bool {
        let category = event.category();
        (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            && (self.event_types.is_empty()
                || self.event_types.iter().any(|t| t == event.event_type))
    }

    /// Whether an event lies beyond a `Position` or `Time` bound.
    pub(crate) fn is_past_end(&self, event: &EventRef<'_>) -> bool {
        // A count is kept by the reader, not the filter.
        self.until
            .is_some_and(|u| !matches!(u, Until::Count(_)) && u.reached(event, 0))
    }
}

/// Whether a projection reading events `E` from `categories` (empty: all) takes `e`.
pub(crate) fn reads<E: DomainEvent>(categories: &[impl AsRef<str>], e: &EventRef<'_>) -> bool {
    E::TYPES.contains(&e.event_type)
        && (categories.is_empty() || categories.iter().any(|c| c.as_ref() == e.category()))
}
