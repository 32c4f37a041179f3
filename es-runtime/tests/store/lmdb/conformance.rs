//! The store conformance suite against [`LmdbStore`], each case in a fresh temporary
//! directory.

use es_runtime::{LmdbOptions, LmdbStore};

es_runtime::conformance_tests!(LmdbStore::temporary(LmdbOptions::new()).expect("opens a store"));

/// The same with the stream heads written every other position, so that every case reads
/// heads from the log's tail, from the `heads` database and across their checkpoints.
mod heads_written_often {
    use es_runtime::{LmdbOptions, LmdbStore};

    es_runtime::conformance_tests!(
        LmdbStore::temporary(LmdbOptions::new().heads_every(2)).expect("opens a store")
    );
}
