//! The description of an aggregate, for documentation and tools: static, as `#[aggregate]`
//! generates it, and owned, as a store records it.
//!
//! The rule: there is one rendering. [`AggregateSchema`] is what the compiled code knows (every
//! string `'static`); [`OwnedSchema`] is the same description in owned, serializable form,
//! which a host records in its store ([`EventStore::save_schema`](crate::EventStore::save_schema))
//! and a tool reads back as JSON without the application's types. Markdown is rendered from
//! the owned form only, so a page rendered from a recorded schema is the page the application
//! would render.
//!
//! `#[aggregate]` generates one schema per aggregate ([`Aggregate::schema`](crate::Aggregate::schema));
//! [`AggregateSchema::to_markdown`] renders it with a Mermaid diagram of commands, the events
//! each may emit, and the past shapes of events that upcasts read.

mod owned;
mod render;

pub use self::owned::{
    OwnedCommand, OwnedEvent, OwnedField, OwnedSchema, OwnedUpcast, RecordedSchema, Stored,
};

use serde::{Deserialize, Serialize};

/// The description of one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AggregateSchema {
    /// The stream category ([`Aggregate::NAME`](crate::Aggregate::NAME)).
    pub name: &'static str,
    /// The Rust type of the state.
    pub type_name: &'static str,
    /// The doc comment of the `impl` block or type, if any.
    pub docs: &'static str,
    /// The error type of fallible commands, if any.
    pub error: Option<&'static str>,
    /// The state version ([`Aggregate::STATE_VERSION`](crate::Aggregate::STATE_VERSION)).
    pub state_version: u32,
    /// The commands, in declaration order.
    pub commands: &'static [CommandSchema],
    /// The events, in declaration order.
    pub events: &'static [EventSchema],
    /// The past shapes of stored events and how they are read, in declaration order.
    pub upcasts: &'static [UpcastSchema],
}

/// The description of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandSchema {
    /// The variant name in the command enum (`Open`).
    pub name: &'static str,
    /// The method that handles it (`open`).
    pub method: &'static str,
    /// The method's doc comment.
    pub docs: &'static str,
    /// The command's fields.
    pub fields: &'static [FieldSchema],
    /// Variant names of the events this command may emit.
    pub emits: &'static [&'static str],
    /// Whether the command can be refused with the aggregate's error.
    pub fallible: bool,
}

/// The description of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventSchema {
    /// The variant name in the event enum (`Opened`).
    pub name: &'static str,
    /// The stored type name (the variant name unless pinned with `#[event(name = "...")]`).
    pub type_name: &'static str,
    /// Other stored names that decode to this event.
    pub aliases: &'static [&'static str],
    /// The method that applies it (`opened`).
    pub method: &'static str,
    /// The method's doc comment.
    pub docs: &'static str,
    /// The event's fields.
    pub fields: &'static [FieldSchema],
    /// The version of its shape, stored with each event (`#[event(version = N)]`, 1 unless
    /// given). Versions below it are read through [`UpcastSchema`]s.
    pub version: u32,
}

/// The description of one `#[upcast]`: a past shape of a stored event, and what it reads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpcastSchema {
    /// The stored type name of the past shape.
    pub from: &'static str,
    /// The version of the past shape.
    pub version: u32,
    /// The function that reads it (`opened_v1`).
    pub method: &'static str,
    /// The function's doc comment.
    pub docs: &'static str,
    /// The fields of the past shape: the function's parameters.
    pub fields: &'static [FieldSchema],
    /// How many current events it reads as.
    pub returns: UpcastReturns,
    /// Whether no current event is stored under [`from`](Self::from) any more.
    pub retired: bool,
    /// Variant names of the current events it may read as: those its body names, or else the
    /// current event stored under the same name.
    pub into: &'static [&'static str],
}

/// How many current events an upcast reads a past one as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpcastReturns {
    /// Exactly one (it returns the event enum).
    One,
    /// Any number (it returns a `Vec`: one old event became several).
    Several,
    /// One or none (it returns an `Option`: `None` drops the old event on read).
    OneOrNone,
}

impl UpcastReturns {
    /// As shown in the Markdown: `one event`, `several events`, `one event or none`.
    pub fn describe(self) -> &'static str {
        match self {
            UpcastReturns::One => "one event",
            UpcastReturns::Several => "several events",
            UpcastReturns::OneOrNone => "one event or none",
        }
    }
}

/// The description of one field of a command or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldSchema {
    /// The field name.
    pub name: &'static str,
    /// The field's Rust type, as written.
    pub ty: &'static str,
}

impl AggregateSchema {
    /// The schema of an aggregate that does not describe itself (hand-written ones). A host
    /// does not record it.
    pub const UNDESCRIBED: AggregateSchema = AggregateSchema::new("", "", "", None, 1, &[], &[]);

    /// Builds a schema; used by generated code.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        type_name: &'static str,
        docs: &'static str,
        error: Option<&'static str>,
        state_version: u32,
        commands: &'static [CommandSchema],
        events: &'static [EventSchema],
    ) -> Self {
        AggregateSchema {
            name,
            type_name,
            docs,
            error,
            state_version,
            commands,
            events,
            upcasts: &[],
        }
    }

    /// The same schema with these upcasts; used by generated code.
    pub const fn with_upcasts(mut self, upcasts: &'static [UpcastSchema]) -> Self {
        self.upcasts = upcasts;
        self
    }

    /// Whether this is [`UNDESCRIBED`](Self::UNDESCRIBED): no name, no commands, no events.
    pub fn is_undescribed(&self) -> bool {
        self.name.is_empty() && self.commands.is_empty() && self.events.is_empty()
    }

    /// The command with this variant name.
    pub fn command(&self, name: &str) -> Option<&CommandSchema> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// The event with this variant name.
    pub fn event(&self, name: &str) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.name == name)
    }

    /// The upcast that reads version `version` of the events stored as `from`.
    pub fn upcast(&self, from: &str, version: u32) -> Option<&UpcastSchema> {
        self.upcasts
            .iter()
            .find(|u| u.from == from && u.version == version)
    }

    /// The owned, serializable form of this schema, as a store records it.
    pub fn to_owned_schema(&self) -> OwnedSchema {
        OwnedSchema::from(self)
    }

    /// Renders the schema as Markdown (see [`OwnedSchema::to_markdown`]).
    pub fn to_markdown(&self) -> String {
        self.to_owned_schema().to_markdown()
    }
}

impl CommandSchema {
    /// Builds a command description; used by generated code.
    pub const fn new(
        name: &'static str,
        method: &'static str,
        docs: &'static str,
        fields: &'static [FieldSchema],
        emits: &'static [&'static str],
        fallible: bool,
    ) -> Self {
        CommandSchema {
            name,
            method,
            docs,
            fields,
            emits,
            fallible,
        }
    }
}

impl EventSchema {
    /// Builds an event description at version 1; used by generated code.
    pub const fn new(
        name: &'static str,
        type_name: &'static str,
        aliases: &'static [&'static str],
        method: &'static str,
        docs: &'static str,
        fields: &'static [FieldSchema],
    ) -> Self {
        EventSchema {
            name,
            type_name,
            aliases,
            method,
            docs,
            fields,
            version: 1,
        }
    }

    /// The same description at shape version `version`; used by generated code.
    pub const fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }
}

impl UpcastSchema {
    /// Builds an upcast description; used by generated code.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        from: &'static str,
        version: u32,
        method: &'static str,
        docs: &'static str,
        fields: &'static [FieldSchema],
        returns: UpcastReturns,
        retired: bool,
        into: &'static [&'static str],
    ) -> Self {
        UpcastSchema {
            from,
            version,
            method,
            docs,
            fields,
            returns,
            retired,
            into,
        }
    }
}

impl FieldSchema {
    /// Builds a field description; used by generated code.
    pub const fn new(name: &'static str, ty: &'static str) -> Self {
        FieldSchema { name, ty }
    }
}
