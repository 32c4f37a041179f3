//! One module per command. Each reads the store through `EventStore` (and, for LMDB's
//! environment, `LmdbStore`), and writes to the output it is given.

pub(crate) mod copy;
pub(crate) mod docs;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod projections;
pub(crate) mod show;
pub(crate) mod snapshots;
pub(crate) mod stats;
pub(crate) mod streams;
pub(crate) mod tail;
pub(crate) mod verify;

use es_runtime::{EventStore, StreamHead, StreamId};

use crate::error::{CliError, Result};

/// A stream id from the command line.
pub(crate) fn stream_id(s: &str) -> Result<StreamId> {
    StreamId::parse(s).map_err(|e| CliError::usage(format_args!("{s:?} is not a stream id: {e}")))
}

/// Every stream of `category` (all with `None`), up to `limit`, page by page.
pub(crate) fn all_streams(
    store: &dyn EventStore,
    category: Option<&str>,
    limit: usize,
) -> Result<Vec<StreamHead>> {
    const PAGE: usize = 1000;
    let mut found: Vec<StreamHead> = Vec::new();
    while found.len() < limit {
        let after = found.last().map(|h| h.stream.clone());
        let page = store.streams(category, after.as_ref(), PAGE.min(limit - found.len()))?;
        let full = page.len() == PAGE.min(limit - found.len());
        found.extend(page);
        if !full {
            break;
        }
    }
    Ok(found)
}
