//! The host's integration tests, one module per area, linked as one binary.
//!
//! Two host tests stay binaries of their own because they own something process-wide:
//! `host_memory` installs a counting global allocator and `host_tracing` the global `tracing`
//! subscriber, and either would see the work of every other test here.

#[path = "../common/mod.rs"]
mod common;

mod async_;
mod basic;
mod concurrency;
mod panics;
mod snapshots;
