//! The store conformance suite against [`MemoryStore`].

es_runtime::conformance_tests!(es_runtime::MemoryStore::new());
