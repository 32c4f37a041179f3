//! One definition of the store-independent tests, run over every backend.
//!
//! A test is a generic function taking a fresh store, `fn name<S: EventStore + 'static>(store:
//! Arc<S>)`; [`over_every_backend!`] makes a `#[test]` of it in one module per backend:
//! `memory::name`, `lmdb::name` (a temporary LMDB store) and `postgres::name` (a fresh schema
//! of the shared PostgreSQL server, see `postgres/server.rs`). A binary using it declares
//! `mod server` (the PostgreSQL server) and `mod backends` at its root.

/// A temporary LMDB store that does not fsync (the tests do not crash the machine).
#[cfg(feature = "lmdb")]
pub(crate) fn lmdb() -> es_runtime::LmdbStore {
    es_runtime::LmdbStore::temporary(
        es_runtime::LmdbOptions::new().durability(es_runtime::Durability::NoSync),
    )
    .expect("opens a temporary LMDB store")
}

/// Makes a `#[test]` per backend of each generic test function named.
macro_rules! over_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $test() {
                    super::$test(::std::sync::Arc::new(::es_runtime::MemoryStore::new()));
                }
            )*
        }
        #[cfg(feature = "lmdb")]
        mod lmdb {
            $(
                #[test]
                fn $test() {
                    super::$test(::std::sync::Arc::new(crate::backends::lmdb()));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(::std::sync::Arc::new(crate::server::store()));
                }
            )*
        }
    };
}

pub(crate) use over_every_backend;
