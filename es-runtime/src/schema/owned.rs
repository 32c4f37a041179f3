//! The owned form of a schema: what a store records, as JSON a tool reads without Rust types.
//!
//! The rule: a record names its [`format`](OwnedSchema::format), and a reader takes every
//! format up to its own. Fields added by a later format are ignored by an older reader, and
//! fields a record lacks read as their defaults (no upcasts, version 1), so the records of
//! every build stay readable.

use serde::{Deserialize, Serialize};

use super::{
    AggregateSchema, CommandSchema, EventSchema, FieldSchema, UpcastReturns, UpcastSchema,
};
use crate::event::Timestamp;

/// An [`AggregateSchema`] with owned strings, serializable: what a store records.
///
/// ```
/// use es_runtime::schema::{AggregateSchema, OwnedSchema};
///
/// let schema = AggregateSchema::new("account", "Account", "", None, 1, &[], &[]);
/// let json = schema.to_owned_schema().to_json();
/// let read = OwnedSchema::from_json(&json)?;
/// assert_eq!(read, schema.to_owned_schema());
/// assert!(read.to_markdown().starts_with("# `Account` (stream category `account`)"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OwnedSchema {
    /// The layout of this record ([`OwnedSchema::FORMAT`] when written by this build).
    pub format: u32,
    /// The stream category.
    pub name: String,
    /// The Rust type of the state.
    pub type_name: String,
    /// The doc comment of the aggregate.
    pub docs: String,
    /// The error type of fallible commands, if any.
    pub error: Option<String>,
    /// The state version of snapshots.
    pub state_version: u32,
    /// The commands, in declaration order.
    pub commands: Vec<OwnedCommand>,
    /// The events, in declaration order.
    pub events: Vec<OwnedEvent>,
    /// The past shapes of stored events, in declaration order.
    pub upcasts: Vec<OwnedUpcast>,
}

/// A [`CommandSchema`], owned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OwnedCommand {
    /// The variant name in the command enum.
    pub name: String,
    /// The method that handles it.
    pub method: String,
    /// The method's doc comment.
    pub docs: String,
    /// The command's fields.
    pub fields: Vec<OwnedField>,
    /// Variant names of the events it may emit.
    pub emits: Vec<String>,
    /// Whether it can be refused with the aggregate's error.
    pub fallible: bool,
}

/// An [`EventSchema`], owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OwnedEvent {
    /// The variant name in the event enum.
    pub name: String,
    /// The stored type name.
    pub type_name: String,
    /// Other stored names that decode to it.
    pub aliases: Vec<String>,
    /// The method that applies it.
    pub method: String,
    /// The method's doc comment.
    pub docs: String,
    /// The event's fields.
    pub fields: Vec<OwnedField>,
    /// The version of its shape.
    pub version: u32,
}

/// An [`UpcastSchema`], owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OwnedUpcast {
    /// The stored type name of the past shape.
    pub from: String,
    /// The version of the past shape.
    pub version: u32,
    /// The function that reads it.
    pub method: String,
    /// The function's doc comment.
    pub docs: String,
    /// The fields of the past shape.
    pub fields: Vec<OwnedField>,
    /// How many current events it reads as.
    pub returns: UpcastReturns,
    /// Whether no current event is stored under `from` any more.
    pub retired: bool,
    /// Variant names of the current events it may read as.
    pub into: Vec<String>,
}

/// A [`FieldSchema`], owned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OwnedField {
    /// The field name.
    pub name: String,
    /// The field's Rust type, as written.
    pub ty: String,
}

/// One schema as a store recorded it ([`EventStore::schemas`](crate::EventStore::schemas)).
///
/// The schema is kept as the JSON text that was recorded, so that a record of any format can
/// be listed; [`schema`](Self::schema) reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordedSchema {
    /// The aggregate's stream category.
    pub name: String,
    /// Its place in the aggregate's history: 1 for the first schema recorded, then one more
    /// for each change.
    pub revision: u32,
    /// When it was recorded, by the store's clock.
    pub recorded_at: Timestamp,
    /// The [`OwnedSchema`] as JSON.
    pub json: String,
}

impl OwnedSchema {
    /// The format this build writes.
    pub const FORMAT: u32 = 1;

    /// The schema as JSON: what a store records. The same schema gives the same text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a schema of strings and numbers serializes")
    }

    /// Reads a schema from JSON written by [`to_json`](Self::to_json) of any build.
    pub fn from_json(json: &str) -> Result<OwnedSchema, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The command with this variant name.
    pub fn command(&self, name: &str) -> Option<&OwnedCommand> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// The event with this variant name.
    pub fn event(&self, name: &str) -> Option<&OwnedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    /// What a stored event of this type name and version is: the current event stored (or
    /// aliased) under that name at that version, or else the upcast that reads it.
    pub fn stored(&self, type_name: &str, version: u32) -> Option<Stored<'_>> {
        self.events
            .iter()
            .find(|e| {
                e.version == version
                    && (e.type_name == type_name || e.aliases.iter().any(|a| a == type_name))
            })
            .map(Stored::Current)
            .or_else(|| {
                self.upcasts
                    .iter()
                    .find(|u| u.from == type_name && u.version == version)
                    .map(Stored::Past)
            })
    }
}

/// What [`OwnedSchema::stored`] found for a stored type name and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored<'a> {
    /// A current event.
    Current(&'a OwnedEvent),
    /// A past shape, read through an upcast.
    Past(&'a OwnedUpcast),
}

impl Stored<'_> {
    /// The fields the stored payload has.
    pub fn fields(&self) -> &[OwnedField] {
        match self {
            Stored::Current(e) => &e.fields,
            Stored::Past(u) => &u.fields,
        }
    }
}

impl RecordedSchema {
    /// Builds a record; for backends.
    pub fn new(name: String, revision: u32, recorded_at: Timestamp, json: String) -> Self {
        RecordedSchema {
            name,
            revision,
            recorded_at,
            json,
        }
    }

    /// The recorded schema, read from its JSON.
    pub fn schema(&self) -> Result<OwnedSchema, serde_json::Error> {
        OwnedSchema::from_json(&self.json)
    }

    /// The newest record of each aggregate among `records` (as
    /// [`EventStore::schemas`](crate::EventStore::schemas) returns them), by name.
    pub fn latest(records: &[RecordedSchema]) -> Vec<&RecordedSchema> {
        let mut latest: Vec<&RecordedSchema> = Vec::new();
        for record in records {
            match latest.iter_mut().find(|r| r.name == record.name) {
                Some(found) if found.revision < record.revision => *found = record,
                Some(_) => {}
                None => latest.push(record),
            }
        }
        latest.sort_by(|a, b| a.name.cmp(&b.name));
        latest
    }
}

impl Default for OwnedSchema {
    fn default() -> Self {
        OwnedSchema {
            format: OwnedSchema::FORMAT,
            name: String::new(),
            type_name: String::new(),
            docs: String::new(),
            error: None,
            state_version: 1,
            commands: Vec::new(),
            events: Vec::new(),
            upcasts: Vec::new(),
        }
    }
}

impl Default for OwnedEvent {
    fn default() -> Self {
        OwnedEvent {
            name: String::new(),
            type_name: String::new(),
            aliases: Vec::new(),
            method: String::new(),
            docs: String::new(),
            fields: Vec::new(),
            version: 1,
        }
    }
}

impl Default for OwnedUpcast {
    fn default() -> Self {
        OwnedUpcast {
            from: String::new(),
            version: 1,
            method: String::new(),
            docs: String::new(),
            fields: Vec::new(),
            returns: UpcastReturns::One,
            retired: false,
            into: Vec::new(),
        }
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

impl From<&FieldSchema> for OwnedField {
    fn from(f: &FieldSchema) -> Self {
        OwnedField {
            name: f.name.to_owned(),
            ty: f.ty.to_owned(),
        }
    }
}

fn fields(fields: &[FieldSchema]) -> Vec<OwnedField> {
    fields.iter().map(OwnedField::from).collect()
}

impl From<&CommandSchema> for OwnedCommand {
    fn from(c: &CommandSchema) -> Self {
        OwnedCommand {
            name: c.name.to_owned(),
            method: c.method.to_owned(),
            docs: c.docs.to_owned(),
            fields: fields(c.fields),
            emits: strings(c.emits),
            fallible: c.fallible,
        }
    }
}

impl From<&EventSchema> for OwnedEvent {
    fn from(e: &EventSchema) -> Self {
        OwnedEvent {
            name: e.name.to_owned(),
            type_name: e.type_name.to_owned(),
            aliases: strings(e.aliases),
            method: e.method.to_owned(),
            docs: e.docs.to_owned(),
            fields: fields(e.fields),
            version: e.version,
        }
    }
}

impl From<&UpcastSchema> for OwnedUpcast {
    fn from(u: &UpcastSchema) -> Self {
        OwnedUpcast {
            from: u.from.to_owned(),
            version: u.version,
            method: u.method.to_owned(),
            docs: u.docs.to_owned(),
            fields: fields(u.fields),
            returns: u.returns,
            retired: u.retired,
            into: strings(u.into),
        }
    }
}

impl From<&AggregateSchema> for OwnedSchema {
    fn from(s: &AggregateSchema) -> Self {
        OwnedSchema {
            format: OwnedSchema::FORMAT,
            name: s.name.to_owned(),
            type_name: s.type_name.to_owned(),
            docs: s.docs.to_owned(),
            error: s.error.map(str::to_owned),
            state_version: s.state_version,
            commands: s.commands.iter().map(OwnedCommand::from).collect(),
            events: s.events.iter().map(OwnedEvent::from).collect(),
            upcasts: s.upcasts.iter().map(OwnedUpcast::from).collect(),
        }
    }
}

impl From<AggregateSchema> for OwnedSchema {
    fn from(s: AggregateSchema) -> Self {
        OwnedSchema::from(&s)
    }
}
