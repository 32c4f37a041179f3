//! The host's integration tests, one module per area, linked as one binary. The tests of
//! what the host promises over any store run over every backend (`backends.rs`).
//!
//! Two host tests stay binaries of their own because they own something process-wide:
//! `host_memory` installs a counting global allocator and `host_tracing` the global `tracing`
//! subscriber, and either would see the work of every other test here.

#[path = "../common/backends.rs"]
mod backends;
#[path = "../common/mod.rs"]
mod common;
#[path = "../postgres/server.rs"]
mod server;

mod async_;
mod basic;
mod concurrency;
mod panics;
mod snapshots;
