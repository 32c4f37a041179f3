//! `es streams`: the streams with their versions, in id order.

use std::io::Write;

use serde_json::json;

use super::all_streams;
use crate::error::Result;
use crate::open::Store;
use crate::output::{self, Table};

pub(crate) fn run(
    store: &Store,
    category: Option<&str>,
    limit: Option<usize>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let heads = all_streams(store.events(), category, limit.unwrap_or(usize::MAX))?;
    if json {
        for h in &heads {
            output::json_line(
                out,
                &json!({"stream": h.stream.as_str(), "category": h.stream.category(), "version": h.version, "last_position": h.position}),
            )?;
        }
        return Ok(());
    }
    let mut table = Table::new(&["STREAM", ">VERSION", ">LAST POSITION"]);
    for h in &heads {
        table.row(vec![
            h.stream.to_string(),
            h.version.to_string(),
            h.position.to_string(),
        ]);
    }
    if table.is_empty() {
        writeln!(out, "no streams")?;
    } else {
        table.write(out)?;
    }
    Ok(())
}
