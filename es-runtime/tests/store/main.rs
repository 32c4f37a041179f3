//! The event stores' integration tests, linked as one binary: the conformance suite against
//! each backend, and the LMDB store's own tests.
//!
//! The process tests (`lmdb::processes`, `lmdb::tables`) run this binary again as their child
//! process, selecting one test by its full path (`--exact lmdb::processes::child`): a moved or
//! renamed `child` test must be renamed in its caller too.

#[path = "../common/mod.rs"]
mod common;

mod memory;

#[cfg(feature = "lmdb")]
mod lmdb {
    mod concurrency;
    mod conformance;
    mod corruption;
    mod damage;
    mod fixture;
    mod growth;
    mod limits;
    mod model;
    mod processes;
    mod read_only;
    mod tables;
}
