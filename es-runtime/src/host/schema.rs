//! The host records its aggregate's schema in its store, so that the store describes itself.
//!
//! The rule: recording never stops a host from running. A host records when built; a store
//! open read-only, or one that keeps no schemas, is passed over (a read-only store cannot be
//! written by anything, and its readers still work); any other failure is logged as a warning
//! and the host runs on. [`Host::record_schema`] records on demand and returns the error.

use super::Host;
use crate::aggregate::Aggregate;
use crate::error::WriteError;
use crate::schema::RecordedSchema;
use crate::store::EventStore;

impl<A: Aggregate, S: EventStore + 'static> Host<A, S> {
    /// Records the aggregate's schema ([`Aggregate::schema`], as an
    /// [`OwnedSchema`](crate::OwnedSchema)) in the store, unless the newest one recorded for
    /// [`A::NAME`](Aggregate::NAME) is the same: returns the new record, or `None` when
    /// unchanged (or when the aggregate does not describe itself).
    ///
    /// A host does this when built (unless [`HostBuilder::record_schema`](crate::HostBuilder::record_schema)
    /// says not to), so a store holds the history of each aggregate's schema: the first, and
    /// one more each time the aggregate's commands, events, fields, versions or upcasts
    /// changed. Read it back with [`EventStore::schemas`].
    ///
    /// ```
    /// use es_runtime::{Aggregate, EventStore, Host, MemoryStore};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Default, Serialize, Deserialize)]
    /// # struct Counter;
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # enum CounterEvent {}
    /// # impl es_runtime::DomainEvent for CounterEvent {
    /// #     const TYPES: &'static [&'static str] = &[];
    /// #     fn event_type(&self) -> &'static str { match *self {} }
    /// # }
    /// # impl Aggregate for Counter {
    /// #     const NAME: &'static str = "counter";
    /// #     type Command = ();
    /// #     type Event = CounterEvent;
    /// #     type Error = std::convert::Infallible;
    /// #     type Services = ();
    /// #     fn handle(&self, _: ()) -> Result<Vec<CounterEvent>, Self::Error> { Ok(vec![]) }
    /// #     fn apply(&mut self, e: CounterEvent) { match e {} }
    /// # }
    /// let host = Host::<Counter, _>::new(MemoryStore::new());
    /// // A hand-written aggregate does not describe itself: nothing is recorded.
    /// assert_eq!(host.record_schema()?, None);
    /// assert!(host.store().schemas()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_schema(&self) -> Result<Option<RecordedSchema>, WriteError> {
        let schema = A::schema();
        if schema.is_undescribed() {
            return Ok(None);
        }
        self.store().save_schema(&schema.to_owned_schema())
    }

    pub(super) fn record_schema_at_build(&self) {
        match self.record_schema() {
            Ok(Some(record)) => {
                tracing::debug!(aggregate = %record.name, revision = record.revision, "recorded the aggregate's schema");
            }
            Ok(None) => {}
            Err(error @ WriteError::ReadOnly { .. }) => {
                tracing::debug!(aggregate = A::NAME, %error, "the schema is not recorded");
            }
            Err(error @ WriteError::InvalidInput { .. })
                if matches!(error.location(), crate::Location::Schema(_)) =>
            {
                tracing::debug!(aggregate = A::NAME, %error, "the schema is not recorded");
            }
            Err(error) => {
                tracing::warn!(aggregate = A::NAME, %error, "could not record the aggregate's schema; the host runs without");
            }
        }
    }
}
