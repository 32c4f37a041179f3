//! # es — event-sourced aggregates for Rust
//!
//! Write an aggregate as plain Rust: a state struct and an `impl` block whose `#[command]`
//! methods decide which events happen and whose `#[event]` methods apply them. `#[aggregate]`
//! generates the command and event enums, dispatch, apply, docs and a schema; the runtime
//! stores events, rehydrates aggregates and runs projections.
//!
//! This crate re-exports [`es_runtime`] and the [`macro@aggregate`] macro from `es-macros`;
//! `use es::prelude::*` brings what aggregate code needs into scope.
#![warn(missing_docs)]

pub use es_macros::aggregate;
#[doc(inline)]
pub use es_runtime::*;

/// What aggregate code needs: the macro, the traits, the stores and serde's derives.
pub mod prelude {
    pub use es_macros::aggregate;
    pub use es_runtime::projection::{Envelope, Projection, ProjectionRunner};
    #[cfg(feature = "lmdb")]
    pub use es_runtime::store::lmdb::{Table, TableProjection, TableRunner};
    pub use es_runtime::{
        Aggregate, DomainEvent, EventStore, ExecuteError, Executed, ExpectedVersion, Host,
        MemoryStore, Metadata, RecordedEvent, StreamId, WithMetadata,
    };
    #[cfg(feature = "lmdb")]
    pub use es_runtime::{Durability, LmdbOptions, LmdbStore};
    pub use serde::{Deserialize, Serialize};
}
