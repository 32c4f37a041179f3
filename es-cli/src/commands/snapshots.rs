//! `es snapshots`: the snapshots of one stream, oldest first, each state as JSON.

use std::io::Write;

use es_runtime::StreamId;
use serde_json::json;

use crate::error::Result;
use crate::event_json::payload_text;
use crate::open::Store;
use crate::output::{self, Table};

pub(crate) fn run(store: &Store, stream: &StreamId, json: bool, out: &mut dyn Write) -> Result<()> {
    let snapshots = store.events().snapshots(stream)?;
    if json {
        for s in &snapshots {
            let state = es_runtime::codec::to_json(&s.payload).ok();
            output::json_line(
                out,
                &json!({
                    "stream": stream.as_str(),
                    "version": s.version,
                    "state_version": s.state_version,
                    "bytes": s.payload.len(),
                    "state": state,
                }),
            )?;
        }
        return Ok(());
    }
    if snapshots.is_empty() {
        writeln!(out, "no snapshots of {stream}")?;
        return Ok(());
    }
    let mut table = Table::new(&[">VERSION", ">STATE VERSION", ">BYTES", "STATE"]);
    for s in &snapshots {
        table.row(vec![
            s.version.to_string(),
            s.state_version.to_string(),
            s.payload.len().to_string(),
            payload_text(&s.payload),
        ]);
    }
    table.write(out)?;
    Ok(())
}
