//! `es import`: the JSON lines `es export` writes, taken into a store through
//! [`EventStore::import`] in batches, each event keeping its id, timestamp, metadata, type,
//! version of shape, stream version and stored payload bytes.
//!
//! The rule: nothing of a bad line is guessed. Each line is read whole (the payload from its
//! `payload_base64`, never from the readable `payload`), and checked against the streams
//! before it (each event the next of its stream, no timestamp earlier than the one before)
//! so that the error names the line; the first bad line stops the import, and the batches
//! before it stay imported (each batch is one transaction). A target that holds events is
//! refused unless appending is asked for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use es_runtime::event::Timestamp;
use es_runtime::{EventStore, Metadata, RecordedEvent, StreamId};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::json;

use crate::error::{CliError, Result};
use crate::open::{Location, Store};
use crate::output::{self, fields};

/// One exported event, as `event_json::event` writes it with `Bytes::Base64`.
#[derive(Debug, Deserialize)]
struct Line {
    stream: String,
    version: u64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default = "first_shape")]
    event_version: u32,
    id: String,
    timestamp_ns: u64,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    metadata_base64: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
}

fn first_shape() -> u32 {
    1
}

/// Where the input comes from, for the messages.
struct Input {
    name: String,
    reader: Box<dyn BufRead>,
    /// Its size in bytes, when it is a file.
    size: Option<u64>,
}

fn input(file: &str) -> Result<Input> {
    if file == "-" {
        return Ok(Input {
            name: "standard input".to_owned(),
            reader: Box::new(BufReader::new(io::stdin())),
            size: None,
        });
    }
    let opened =
        File::open(file).map_err(|e| CliError::failed(format_args!("cannot read {file}: {e}")))?;
    let size = opened.metadata().ok().map(|m| m.len());
    Ok(Input {
        name: file.to_owned(),
        reader: Box::new(BufReader::with_capacity(1 << 16, opened)),
        size,
    })
}

/// The events checked so far: each stream's version, and the last timestamp of the log.
struct Check<'a> {
    store: &'a dyn EventStore,
    versions: HashMap<String, u64>,
    last_timestamp: Timestamp,
}

impl Check<'_> {
    fn admit(&mut self, event: &RecordedEvent) -> Result<(), String> {
        let current = match self.versions.get(event.stream.as_str()) {
            Some(v) => *v,
            None => self
                .store
                .stream_version(&event.stream)
                .map_err(|e| format!("reading the target store failed: {e}"))?,
        };
        if event.version != current + 1 {
            return Err(format!(
                "event {} of stream {:?} does not follow its version {current} {}",
                event.version,
                event.stream.as_str(),
                if current == 0 {
                    "(the stream has no events before it)"
                } else {
                    "(an event of the stream is missing or repeated)"
                }
            ));
        }
        if event.timestamp < self.last_timestamp {
            return Err(format!(
                "its timestamp ({}) is earlier than the one before it in the log ({}): \
                 timestamps never go back along the log",
                output::timestamp(event.timestamp),
                output::timestamp(self.last_timestamp)
            ));
        }
        self.versions
            .insert(event.stream.as_str().to_owned(), event.version);
        self.last_timestamp = event.timestamp;
        Ok(())
    }
}

/// One line as an event, or why it is not one.
fn parse(text: &str) -> Result<RecordedEvent, String> {
    let line: Line =
        serde_json::from_str(text).map_err(|e| format!("not an exported event: {e}"))?;
    let stream = StreamId::parse(&line.stream)
        .map_err(|e| format!("{:?} is not a stream id: {e}", line.stream))?;
    if line.version == 0 {
        return Err("version 0: stream versions start at 1".to_owned());
    }
    let event_id = line
        .id
        .parse()
        .map_err(|e| format!("{:?} is not an event id: {e}", line.id))?;
    let metadata = match (line.metadata, line.metadata_base64) {
        (_, Some(encoded)) => {
            let bytes = BASE64
                .decode(encoded.as_bytes())
                .map_err(|e| format!("metadata_base64 is not base64: {e}"))?;
            es_runtime::codec::decode_metadata(&bytes).map_err(|e| {
                format!("its metadata was not readable when exported ({e}): it cannot be imported")
            })?
        }
        (Some(m), None) => m,
        (None, None) => Metadata::default(),
    };
    let Some(encoded) = line.payload_base64 else {
        return Err(
            "it has no payload_base64 (the stored payload bytes, which `es export` writes)"
                .to_owned(),
        );
    };
    let payload = BASE64
        .decode(encoded.as_bytes())
        .map_err(|e| format!("payload_base64 is not base64: {e}"))?;
    Ok(RecordedEvent {
        stream,
        version: line.version,
        position: 0,
        event_type: line.event_type.into(),
        event_version: line.event_version,
        event_id,
        timestamp: Timestamp(line.timestamp_ns),
        metadata,
        payload,
    })
}

pub(crate) fn run(
    location: &Location,
    file: &str,
    append: bool,
    batch: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    // The input first: a file that is not there creates no store.
    let mut input = input(file)?;
    let store = Store::open_writable(location)?;
    let events = store.events();
    let head = events.head_position()?;
    if head > 0 && !append {
        return Err(CliError::failed(format_args!(
            "{} is not empty (its log ends at position {head}); import into an empty store, \
             or give --append",
            store.describe()
        )));
    }
    let last_timestamp = match head {
        0 => Timestamp(0),
        _ => events
            .read_all(head, 1)?
            .first()
            .map_or(Timestamp(0), |e| e.timestamp),
    };
    let bar = Cleared(progress(input.size));
    let mut check = Check {
        store: events,
        versions: HashMap::new(),
        last_timestamp,
    };
    let batch = batch.max(1);
    let mut w = Writer {
        events,
        input: input.name.clone(),
        pending: Vec::with_capacity(batch),
        first_line: 0,
        imported: 0,
        first_position: None,
    };
    let mut read_bytes = 0u64;
    let mut number = 0u64;
    let mut text = String::new();
    loop {
        if crate::interrupt::stopped() {
            break;
        }
        text.clear();
        let n = read_line(&mut *input.reader, &mut text).map_err(|e| {
            CliError::failed(format_args!(
                "line {} of {}: {e}; {} before it imported",
                number + 1,
                input.name,
                events_count(w.imported)
            ))
        })?;
        if n == 0 {
            break;
        }
        number += 1;
        read_bytes += n as u64;
        if text.trim().is_empty() {
            continue;
        }
        let event = match parse(text.trim_end()).and_then(|e| check.admit(&e).map(|()| e)) {
            Ok(event) => event,
            Err(why) => {
                // The lines before it are sound: take them in before stopping.
                w.flush(number - 1)?;
                return Err(CliError::failed(format_args!(
                    "line {number} of {}: {why}; {} before it imported",
                    input.name,
                    events_count(w.imported)
                )));
            }
        };
        if w.pending.is_empty() {
            w.first_line = number;
        }
        w.pending.push(event);
        if w.pending.len() == batch {
            w.flush(number)?;
            bar.0
                .set_position(input.size.map_or(w.imported, |_| read_bytes));
        }
    }
    w.flush(number)?;
    let (imported, first_position) = (w.imported, w.first_position);
    drop(bar);
    let first = first_position.unwrap_or(head + 1);
    let last = first + imported - 1;
    let interrupted = crate::interrupt::stopped();
    if json {
        output::json_document(
            out,
            &json!({
                "store": store.describe(),
                "imported": imported,
                "first_position": first,
                "last_position": last,
                "lines": number,
                "interrupted": interrupted,
            }),
        )?;
    } else {
        let positions = if imported == 0 {
            "none".to_owned()
        } else {
            format!("{first} to {last}")
        };
        fields(
            out,
            &[
                ("store", store.describe()),
                ("imported", format!("{imported} events from {}", input.name)),
                ("positions", positions),
            ],
        )?;
    }
    if interrupted {
        return Err(CliError::failed(format_args!(
            "interrupted after line {number}: {imported} events were imported"
        )));
    }
    Ok(())
}

/// The batch being gathered, and what the batches before it imported.
struct Writer<'a> {
    events: &'a dyn EventStore,
    input: String,
    pending: Vec<RecordedEvent>,
    /// The line of the batch's first event.
    first_line: u64,
    imported: u64,
    first_position: Option<u64>,
}

impl Writer<'_> {
    /// Imports the pending batch, which ends at line `last_line`.
    fn flush(&mut self, last_line: u64) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let n = self.pending.len() as u64;
        match self.events.import(std::mem::take(&mut self.pending)) {
            Ok(r) => {
                self.first_position.get_or_insert(r.first_position);
                self.imported += n;
                Ok(())
            }
            Err(e) => Err(CliError::failed(format_args!(
                "lines {} to {last_line} of {}: the store refused them ({e}); {} before them \
                 imported",
                self.first_line,
                self.input,
                events_count(self.imported)
            ))),
        }
    }
}

/// `1 event`, `3 events`.
fn events_count(n: u64) -> String {
    format!("{n} event{}", if n == 1 { "" } else { "s" })
}

/// Reads one line, as text: a line that is not UTF-8 is an error naming it.
fn read_line(reader: &mut dyn BufRead, text: &mut String) -> io::Result<usize> {
    let mut bytes = Vec::new();
    let n = reader.read_until(b'\n', &mut bytes)?;
    match String::from_utf8(bytes) {
        Ok(s) => {
            text.push_str(&s);
            Ok(n)
        }
        Err(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        )),
    }
}

/// A progress bar taken off the terminal when the import ends, however it ends.
struct Cleared(ProgressBar);

impl Drop for Cleared {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A bar over the input's bytes on a terminal (a spinner counting events for a pipe).
fn progress(size: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match size {
        Some(len) => {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} importing: {pos} events") {
                bar.set_style(style);
            }
            bar
        }
    }
}
