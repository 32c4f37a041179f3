//! The read side's integration tests, linked as one binary: projections and history folds,
//! and subscriptions. The tests of what they promise over any store run over every backend
//! (`backends.rs`).

#[path = "../common/backends.rs"]
mod backends;
#[path = "../postgres/server.rs"]
mod server;

mod projections;
#[cfg(feature = "lmdb")]
mod subscriptions;
