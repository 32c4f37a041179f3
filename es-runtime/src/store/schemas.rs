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

/// Of `records` taken in from elsewhere, those to write into a store holding `held` (every
/// record of the names concerned, any order): see
/// [`EventStore::import_schemas`](crate::EventStore::import_schemas) for the rule. The
/// records to write come out ordered by name, then revision.
pub(crate) fn to_import(
    held: &[RecordedSchema],
    mut records: Vec<RecordedSchema>,
) -> Result<Vec<RecordedSchema>, WriteError> {
    sort(&mut records);
    let mut out: Vec<RecordedSchema> = Vec::with_capacity(records.len());
    for record in records {
        let at = || Location::Schema(record.name.clone());
        let name = record.name.as_str();
        if name.is_empty() || name.len() > MAX_SCHEMA_NAME {
            return Err(WriteError::InvalidInput {
                at: at(),
                reason: format!(
                    "an aggregate name in a schema has 1 to {MAX_SCHEMA_NAME} bytes; this one \
                     has {}",
                    name.len()
                ),
            });
        }
        if record.revision == 0 {
            return Err(WriteError::InvalidInput {
                at: at(),
                reason: "schema revisions start at 1; this record has revision 0".to_owned(),
            });
        }
        if let Some(same) = held
            .iter()
            .find(|h| h.name == record.name && h.revision == record.revision)
        {
            if *same == record {
                continue;
            }
            return Err(WriteError::InvalidInput {
                at: at(),
                reason: format!(
                    "revision {} is recorded here already, as another schema or at another time",
                    record.revision
                ),
            });
        }
        let newest = held
            .iter()
            .chain(&out)
            .filter(|h| h.name == record.name)
            .map(|h| h.revision)
            .max();
        if let Some(newest) = newest.filter(|&n| n >= record.revision) {
            return Err(WriteError::InvalidInput {
                at: at(),
                reason: format!(
                    "revision {} is not after the newest recorded here ({newest}, or the same \
                     revision twice in what is taken in): a history only grows",
                    record.revision
                ),
            });
        }
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn record(name: &str, revision: u32, json: &str) -> RecordedSchema {
        RecordedSchema::new(
            name.to_owned(),
            revision,
            Timestamp(u64::from(revision)),
            json.to_owned(),
        )
    }

    #[test]
    fn records_held_already_are_passed_over_and_a_history_only_grows() {
        let held = [record("a", 1, "x"), record("a", 2, "y")];
        let taken = to_import(
            &held,
            vec![
                record("b", 2, "q"),
                record("a", 3, "z"),
                record("a", 1, "x"),
                record("b", 1, "p"),
            ],
        )
        .unwrap();
        let taken: Vec<_> = taken
            .iter()
            .map(|r| (r.name.as_str(), r.revision))
            .collect();
        assert_eq!(taken, [("a", 3), ("b", 1), ("b", 2)]);

        for refused in [
            vec![record("a", 2, "other")],
            vec![record("a", 1, "x"), record("a", 0, "x")],
            vec![record("c", 4, "x"), record("c", 4, "y")],
            vec![record("", 1, "x")],
        ] {
            assert!(
                matches!(
                    to_import(&held, refused.clone()),
                    Err(WriteError::InvalidInput { .. })
                ),
                "{refused:?}"
            );
        }
        let mut moved = record("a", 2, "y");
        moved.recorded_at = Timestamp(99);
        assert!(to_import(&held, vec![moved]).is_err(), "another time");
    }
}
