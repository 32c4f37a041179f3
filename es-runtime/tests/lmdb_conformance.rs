//! The store conformance suite against [`LmdbStore`], each case in a fresh temporary
//! directory.

use es_runtime::{LmdbOptions, LmdbStore};

es_runtime::conformance_tests!(LmdbStore::temporary(LmdbOptions::new()).expect("opens a store"));
