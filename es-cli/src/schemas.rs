//! The recorded schemas, as a reader of payloads uses them: the newest schema of each
//! category, and what it declares of a stored event (its fields and their types), checked
//! against the payload.
//!
//! The rule: a payload is a map from its stored type name to the map of its fields (how the
//! codec writes an event); a payload whose field names differ from those declared for its
//! type name and version of shape is flagged, never hidden or corrected.

use std::collections::HashMap;

use es_runtime::schema::Stored;
use es_runtime::{EventRef, OwnedSchema, RecordedSchema};
use serde_json::{Value, json};

use crate::error::Result;
use crate::open::Store;

/// The newest readable schema of each category the store recorded.
#[derive(Debug, Default)]
pub(crate) struct Schemas {
    by_category: HashMap<String, (u32, OwnedSchema)>,
}

/// What the schema says of one stored event.
#[derive(Debug)]
pub(crate) struct Declared {
    /// The declared fields with their types, and each one's value in the payload.
    pub(crate) fields: Vec<(String, String, Option<Value>)>,
    /// How the payload differs from the declaration, if it does.
    pub(crate) mismatch: Option<String>,
    /// The declaration read: `Aggregate revision R`, and the upcast when it is a past shape.
    pub(crate) source: String,
}

impl Schemas {
    pub(crate) fn read(store: &Store) -> Result<Schemas> {
        let records = store.events().schemas()?;
        let mut by_category = HashMap::new();
        for r in RecordedSchema::latest(&records) {
            if let Ok(schema) = r.schema() {
                by_category.insert(r.name.clone(), (r.revision, schema));
            }
        }
        Ok(Schemas { by_category })
    }

    /// What the schema of the event's category declares for it, when the store recorded
    /// one; `payload` is the event's payload as JSON.
    pub(crate) fn declared(&self, e: &EventRef<'_>, payload: Option<&Value>) -> Option<Declared> {
        let (revision, schema) = self.by_category.get(e.category())?;
        let source = format!("schema of {} revision {revision}", schema.type_name);
        let Some(stored) = schema.stored(e.event_type, e.event_version) else {
            return Some(Declared {
                fields: Vec::new(),
                mismatch: Some(format!(
                    "type {} version {} is not declared in the {source}",
                    e.event_type, e.event_version
                )),
                source,
            });
        };
        let source = match stored {
            Stored::Current(_) => source,
            Stored::Past(u) => format!("{source}, a past shape read by {}", u.method),
        };
        let found: Option<&serde_json::Map<String, Value>> = payload.and_then(|p| match p {
            Value::Object(o) if o.len() == 1 => o.values().next().and_then(Value::as_object),
            _ => None,
        });
        let declared = stored.fields();
        let fields = declared
            .iter()
            .map(|f| {
                let value = found.and_then(|o| o.get(&f.name)).cloned();
                (f.name.clone(), f.ty.clone(), value)
            })
            .collect();
        let mismatch = match (payload, found) {
            (None, _) => None,
            (Some(p), None) => {
                let unit = declared.is_empty() && matches!(p, Value::String(_) | Value::Object(_));
                (!unit).then(|| "the payload is not a map of named fields".to_owned())
            }
            (Some(_), Some(o)) => {
                let missing: Vec<&str> = declared
                    .iter()
                    .map(|f| f.name.as_str())
                    .filter(|n| !o.contains_key(*n))
                    .collect();
                let extra: Vec<&str> = o
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !declared.iter().any(|f| f.name == *k))
                    .collect();
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("declared but missing: {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    parts.push(format!("stored but not declared: {}", extra.join(", ")));
                }
                (!parts.is_empty()).then(|| {
                    format!(
                        "the payload differs from the {source}: {}",
                        parts.join("; ")
                    )
                })
            }
        };
        Some(Declared {
            fields,
            mismatch,
            source,
        })
    }
}

impl Declared {
    /// `name: type = value` for each declared field.
    pub(crate) fn text(&self) -> String {
        if self.fields.is_empty() {
            return "none declared".to_owned();
        }
        self.fields
            .iter()
            .map(|(name, ty, value)| match value {
                Some(v) => format!("{name}: {ty} = {v}"),
                None => format!("{name}: {ty} (missing)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn to_json(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|(name, ty, value)| json!({"name": name, "type": ty, "value": value}))
            .collect();
        json!({"declared_by": self.source, "fields": fields, "mismatch": self.mismatch})
    }
}
