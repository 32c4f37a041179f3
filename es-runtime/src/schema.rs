//! A static description of an aggregate, for documentation and tools.
//!
//! `#[aggregate]` generates one per aggregate ([`Aggregate::schema`](crate::Aggregate::schema));
//! [`AggregateSchema::to_markdown`] renders it with a Mermaid diagram of commands and the events
//! each may emit.

use std::fmt::Write as _;

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
    /// The schema of an aggregate that does not describe itself (hand-written ones).
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
        }
    }

    /// The command with this variant name.
    pub fn command(&self, name: &str) -> Option<&CommandSchema> {
        self.commands.iter().find(|c| c.name == name)
    }

    /// The event with this variant name.
    pub fn event(&self, name: &str) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.name == name)
    }

    /// Renders the schema as Markdown: tables of commands and events (with the names each
    /// event is stored and read under) and a Mermaid flowchart from each command to the events
    /// it may emit.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# `{}` (stream category `{}`)\n",
            self.type_name, self.name
        );
        if !self.docs.is_empty() {
            let _ = writeln!(out, "{}\n", self.docs.trim());
        }
        let _ = writeln!(out, "```mermaid\nflowchart LR");
        for c in self.commands {
            let _ = writeln!(out, "    C_{0}[/{0}/]", c.name);
        }
        for e in self.events {
            let _ = writeln!(out, "    E_{0}([{0}])", e.name);
        }
        for c in self.commands {
            for e in c.emits {
                let _ = writeln!(out, "    C_{} --> E_{}", c.name, e);
            }
        }
        let _ = writeln!(out, "```\n\n## Commands\n");
        let _ = writeln!(
            out,
            "| command | fields | emits | description |\n|---|---|---|---|"
        );
        for c in self.commands {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.name,
                fields_md(c.fields),
                c.emits
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                first_line(c.docs)
            );
        }
        let _ = writeln!(out, "\n## Events\n");
        let _ = writeln!(
            out,
            "| event | stored as | fields | description |\n|---|---|---|---|"
        );
        for e in self.events {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                e.name,
                stored_md(e),
                fields_md(e.fields),
                first_line(e.docs)
            );
        }
        out
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
    /// Builds an event description; used by generated code.
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
        }
    }
}

impl FieldSchema {
    /// Builds a field description; used by generated code.
    pub const fn new(name: &'static str, ty: &'static str) -> Self {
        FieldSchema { name, ty }
    }
}

fn fields_md(fields: &[FieldSchema]) -> String {
    if fields.is_empty() {
        return "—".to_owned();
    }
    fields
        .iter()
        .map(|f| format!("`{}: {}`", f.name, f.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored type name, and the older names it is also read from.
fn stored_md(event: &EventSchema) -> String {
    let stored = format!("`{}`", event.type_name);
    if event.aliases.is_empty() {
        return stored;
    }
    let aliases = event
        .aliases
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{stored} (also {aliases})")
}

fn first_line(docs: &str) -> &str {
    docs.trim().lines().next().unwrap_or("")
}
