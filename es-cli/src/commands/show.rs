//! `es show`: the events of one stream, each with its envelope and its payload as JSON; when
//! the store recorded its aggregate's schema, the event's declared fields with their types
//! beside it, and a payload whose fields differ from the declared ones flagged.

use std::io::{self, Write};
use std::ops::ControlFlow;

use es_runtime::{EventRef, StreamId};

use crate::error::{CliError, Result};
use crate::event_json::{self, Bytes};
use crate::open::Store;
use crate::output::{self, fields};
use crate::schemas::{Declared, Schemas};

pub(crate) fn run(
    store: &Store,
    stream: &StreamId,
    from: u64,
    raw: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let events = store.events();
    let version = events.stream_version(stream)?;
    if version == 0 {
        return Err(CliError::failed(format_args!(
            "no stream {stream:?} in {}",
            store.describe()
        )));
    }
    let schemas = Schemas::read(store)?;
    let mut failed: Option<io::Error> = None;
    let mut first = true;
    events.read_stream_with(stream, from, &mut |e| {
        let payload = es_runtime::codec::to_json(e.payload).ok();
        let declared = schemas.declared(&e, payload.as_ref());
        let written = if json {
            let bytes = if raw { Bytes::Hex } else { Bytes::None };
            let mut line = event_json::event(&e, bytes);
            if let Some(d) = &declared {
                line["schema"] = d.to_json();
            }
            output::json_line(out, &line)
        } else {
            let gap = if first { Ok(()) } else { writeln!(out) };
            first = false;
            gap.and_then(|()| write_event(out, &e, raw, declared.as_ref()))
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(err) = failed {
        return Err(err.into());
    }
    Ok(())
}

/// One event as a block of labelled lines.
pub(crate) fn write_event(
    out: &mut dyn Write,
    e: &EventRef<'_>,
    raw: bool,
    declared: Option<&Declared>,
) -> io::Result<()> {
    writeln!(out, "{} v{}  {}", e.stream, e.version, e.event_type)?;
    let mut lines = vec![
        ("  position", e.position.to_string()),
        ("  shape", format!("version {}", e.event_version)),
        ("  id", e.event_id.to_string()),
        ("  recorded", output::timestamp(e.timestamp)),
        ("  metadata", event_json::metadata_text(e)),
        ("  payload", event_json::payload_text(e.payload)),
    ];
    if let Some(d) = declared {
        lines.push(("  fields", d.text()));
        if let Some(why) = &d.mismatch {
            lines.push(("  schema", format!("MISMATCH: {why}")));
        }
    }
    if raw {
        lines.push((
            "  bytes",
            format!("{} ({} bytes)", output::hex(e.payload), e.payload.len()),
        ));
    }
    fields(out, &lines)
}
