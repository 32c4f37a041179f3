//! What every backend shares in recording schemas: the names it takes, and when a schema is
//! recorded again.
//!
//! The rule: an aggregate's history only grows, by one revision each time its schema differs
//! from the newest recorded, compared as the JSON text that is stored. Names follow the
//! checkpoint names' rule (1 to 500 bytes), so a name one store refuses no other accepts.

use crate::error::{Location, WriteError};
use crate::schema::{OwnedSchema, RecordedSchema};

/// The most bytes an aggregate name has in a schema record.
pub(crate) const MAX_SCHEMA_NAME: usize = 500;

/// The name and JSON text to record for `schema`, or why it cannot be.
pub(crate) fn prepare(schema: &OwnedSchema) -> Result<(&str, String), WriteError> {
    let name = schema.name.as_str();
    if name.is_empty() || name.len() > MAX_SCHEMA_NAME {
        return Err(WriteError::InvalidInput {
            at: Location::Schema(name.to_owned()),
            reason: format!(
                "an aggregate name in a schema has 1 to {MAX_SCHEMA_NAME} bytes; this one has {}",
                name.len()
            ),
        });
    }
    Ok((name, schema.to_json()))
}

/// The revision to record `json` at, after `newest` (the newest revision and its text), or
/// `None` when it is the same schema.
pub(crate) fn next_revision(newest: Option<(u32, &str)>, json: &str) -> Option<u32> {
    match newest {
        Some((_, text)) if text == json => None,
        Some((revision, _)) => Some(revision + 1),
        None => Some(1),
    }
}

/// Orders records as [`EventStore::schemas`](crate::EventStore::schemas) returns them.
pub(crate) fn sort(records: &mut [RecordedSchema]) {
    records.sort_by(|a, b| (&a.name, a.revision).cmp(&(&b.name, b.revision)));
}
