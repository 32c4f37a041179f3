//! Markdown of a schema, with a Mermaid flowchart: commands, the events each may emit, and the
//! past shapes of stored events with the current events they read as.

use std::fmt::Write as _;

use super::owned::{OwnedEvent, OwnedField, OwnedSchema, OwnedUpcast};

impl OwnedSchema {
    /// Renders the schema as Markdown: a Mermaid flowchart from each command to the events it
    /// may emit and from each past shape of a stored event (an upcast) to the events it reads
    /// as; the error commands are refused with; tables of commands, of events (with the names
    /// and version each is stored under) and of the past shapes upcasts read.
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
        self.diagram(&mut out);
        let _ = writeln!(out, "\n## Commands\n");
        let fallible: Vec<String> = self
            .commands
            .iter()
            .filter(|c| c.fallible)
            .map(|c| format!("`{}`", c.name))
            .collect();
        if let (Some(error), false) = (&self.error, fallible.is_empty()) {
            let _ = writeln!(out, "Refused with `{error}`: {}.\n", fallible.join(", "));
        }
        let _ = writeln!(
            out,
            "| command | fields | emits | description |\n|---|---|---|---|"
        );
        for c in &self.commands {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.name,
                fields_md(&c.fields),
                names_md(&c.emits),
                first_line(&c.docs)
            );
        }
        let _ = writeln!(out, "\n## Events\n");
        let _ = writeln!(
            out,
            "| event | stored as | version | fields | description |\n|---|---|---|---|---|"
        );
        for e in &self.events {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                e.name,
                stored_md(e),
                e.version,
                fields_md(&e.fields),
                first_line(&e.docs)
            );
        }
        if !self.upcasts.is_empty() {
            let _ = writeln!(out, "\n## Past shapes\n");
            let _ = writeln!(
                out,
                "Stored events of these versions are read through their upcast; the stored \
                 bytes stay as they are.\n"
            );
            let _ = writeln!(
                out,
                "| stored as | version | fields | read by | reads as | description |\n\
                 |---|---|---|---|---|---|"
            );
            for u in &self.upcasts {
                let retired = if u.retired { " (retired)" } else { "" };
                let into = if u.into.is_empty() {
                    u.returns.describe().to_owned()
                } else {
                    format!("{}: {}", u.returns.describe(), names_md(&u.into))
                };
                let _ = writeln!(
                    out,
                    "| `{}`{retired} | {} | {} | `{}` | {into} | {} |",
                    u.from,
                    u.version,
                    fields_md(&u.fields),
                    u.method,
                    first_line(&u.docs)
                );
            }
        }
        out
    }

    fn diagram(&self, out: &mut String) {
        let _ = writeln!(out, "```mermaid\nflowchart LR");
        for c in &self.commands {
            let _ = writeln!(out, "    C_{0}[/{0}/]", c.name);
        }
        for e in &self.events {
            let _ = writeln!(out, "    E_{0}([{0}])", e.name);
        }
        for u in &self.upcasts {
            let retired = if u.retired { ", retired" } else { "" };
            let _ = writeln!(
                out,
                "    {}[(\"{} v{}{retired}\")]",
                upcast_node(u),
                label(&u.from),
                u.version
            );
        }
        for c in &self.commands {
            for e in &c.emits {
                let _ = writeln!(out, "    C_{} --> E_{}", c.name, e);
            }
        }
        for u in &self.upcasts {
            for e in &u.into {
                let _ = writeln!(out, "    {} -. upcast .-> E_{e}", upcast_node(u));
            }
        }
        let _ = writeln!(out, "```");
    }
}

/// The node id of a past shape: its stored name with what Mermaid ids cannot hold replaced.
fn upcast_node(u: &OwnedUpcast) -> String {
    let name: String = u
        .from
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("U_{name}_v{}", u.version)
}

/// Text for a quoted Mermaid label.
fn label(text: &str) -> String {
    text.replace('"', "#quot;")
}

fn names_md(names: &[String]) -> String {
    names
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fields_md(fields: &[OwnedField]) -> String {
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
fn stored_md(event: &OwnedEvent) -> String {
    let stored = format!("`{}`", event.type_name);
    if event.aliases.is_empty() {
        return stored;
    }
    format!("{stored} (also {})", names_md(&event.aliases))
}

fn first_line(docs: &str) -> &str {
    docs.trim().lines().next().unwrap_or("")
}
