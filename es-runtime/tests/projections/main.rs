//! The read side's integration tests, linked as one binary: projections and history folds,
//! and subscriptions.

mod projections;
#[cfg(feature = "lmdb")]
mod subscriptions;
