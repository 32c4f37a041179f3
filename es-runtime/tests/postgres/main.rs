//! The PostgreSQL store's tests, against one server for the whole binary (see `server.rs`):
//! the conformance suite, the store's own behaviour, and processes sharing one database.

mod server;

mod conformance {
    es_runtime::conformance_tests!(super::server::store());
}

mod processes;
mod store;
mod tables;
