//! `es docs`: every aggregate's Markdown page with its Mermaid diagram, rendered from the
//! newest schema the store recorded for it, without the application's Rust types.
//!
//! The rule: a page is exactly what `Aggregate::schema().to_markdown()` renders in the
//! application that recorded it (both go through `OwnedSchema::to_markdown`). To standard
//! output the pages follow each other in name order, a blank line apart; with a directory,
//! each is its own file, `NAME.md`, beside an `index.md` listing the aggregates and their
//! recorded revisions.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use es_runtime::{OwnedSchema, RecordedSchema};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::open::Store;
use crate::output;

/// An aggregate's newest schema and its history.
struct Page<'a> {
    newest: &'a RecordedSchema,
    schema: OwnedSchema,
    revisions: Vec<&'a RecordedSchema>,
}

pub(crate) fn run(
    store: &Store,
    dir: Option<&Path>,
    aggregate: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let records = store.events().schemas()?;
    if records.is_empty() {
        return Err(CliError::failed(format_args!(
            "{} has no recorded schemas (a host of this version records its aggregate's \
             schema when it is built over the store)",
            store.describe()
        )));
    }
    let mut pages = Vec::new();
    for newest in RecordedSchema::latest(&records) {
        if aggregate.is_some_and(|a| a != newest.name) {
            continue;
        }
        let schema = newest.schema().map_err(|e| {
            CliError::failed(format_args!(
                "the schema of {:?} (revision {}) does not read: {e}",
                newest.name, newest.revision
            ))
        })?;
        let mut revisions: Vec<&RecordedSchema> =
            records.iter().filter(|r| r.name == newest.name).collect();
        revisions.sort_by_key(|r| r.revision);
        pages.push(Page {
            newest,
            schema,
            revisions,
        });
    }
    if pages.is_empty() {
        let names: Vec<&str> = RecordedSchema::latest(&records)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        return Err(CliError::failed(format_args!(
            "no recorded schema of an aggregate {:?}; the store has {}",
            aggregate.unwrap_or(""),
            names.join(", ")
        )));
    }
    match dir {
        None => {
            for (i, page) in pages.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(page.schema.to_markdown().as_bytes())?;
            }
        }
        Some(dir) => {
            let written = write_dir(dir, &pages)?;
            if json {
                let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                output::json_document(out, &json!({"files": files}))?;
            } else {
                for path in &written {
                    writeln!(out, "{}", path.display())?;
                }
            }
        }
    }
    Ok(())
}

/// A file name for the page of the aggregate `name` (a stream category): the name, with any
/// character a path would read otherwise replaced.
fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.md")
}

fn write_dir(dir: &Path, pages: &[Page<'_>]) -> Result<Vec<std::path::PathBuf>> {
    let failed = |path: &Path, e: std::io::Error| {
        CliError::failed(format_args!("writing {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let mut written = Vec::new();
    let mut index = String::from(
        "# Aggregates\n\n| aggregate | state | revision | recorded |\n|---|---|---|---|\n",
    );
    for page in pages {
        let name = file_name(&page.newest.name);
        let path = dir.join(&name);
        std::fs::write(&path, page.schema.to_markdown()).map_err(|e| failed(&path, e))?;
        written.push(path);
        let _ = writeln!(
            index,
            "| [`{}`]({name}) | `{}` | {} | {} |",
            page.newest.name,
            page.schema.type_name,
            page.newest.revision,
            output::timestamp(page.newest.recorded_at)
        );
    }
    let _ = writeln!(index, "\n## Schema revisions\n");
    for page in pages {
        let _ = writeln!(index, "### `{}`\n", page.newest.name);
        for r in &page.revisions {
            let _ = writeln!(
                index,
                "- revision {}, recorded {}",
                r.revision,
                output::timestamp(r.recorded_at)
            );
        }
        index.push('\n');
    }
    let path = dir.join("index.md");
    std::fs::write(&path, index.trim_end().to_owned() + "\n").map_err(|e| failed(&path, e))?;
    written.push(path);
    Ok(written)
}
