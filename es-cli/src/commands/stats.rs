//! `es stats`: what the store holds, per category and event type, read from the whole log;
//! the snapshots of every stream; the checkpoints and how far behind the head each is; for
//! LMDB the environment's map, pages and readers.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use es_runtime::event::Timestamp;
use es_runtime::store::lmdb::LmdbStats;
use serde_json::{Value, json};

use super::all_streams;
use super::projections::{self, Checkpoint};
use crate::error::Result;
use crate::open::Store;
use crate::output::{self, Table, bytes, fields};

/// Counts of one category or one event type.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    streams: u64,
    events: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Totals {
    events: u64,
    payload_bytes: u64,
    metadata_bytes: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    categories: BTreeMap<String, Count>,
    /// Per category and stored type name, with the versions of its shape seen.
    types: BTreeMap<(String, String), (Count, Vec<u32>)>,
    streams: u64,
    snapshots: u64,
    snapshot_bytes: u64,
    checkpoints: Vec<Checkpoint>,
}

pub(crate) fn run(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let events = store.events();
    let head = events.head_position()?;
    let mut t = Totals::default();
    events.read_all_with(1, &mut |e| {
        let size = (e.payload.len() + e.metadata.len()) as u64;
        t.events += 1;
        t.payload_bytes += e.payload.len() as u64;
        t.metadata_bytes += e.metadata.len() as u64;
        t.first.get_or_insert(e.timestamp);
        t.last = Some(e.timestamp);
        let c = t.categories.entry(e.category().to_owned()).or_default();
        c.events += 1;
        c.bytes += size;
        let (c, versions) = t
            .types
            .entry((e.category().to_owned(), e.event_type.to_owned()))
            .or_default();
        c.events += 1;
        c.bytes += size;
        if !versions.contains(&e.event_version) {
            versions.push(e.event_version);
            versions.sort_unstable();
        }
        ControlFlow::Continue(())
    })?;
    for head in all_streams(events, None, usize::MAX)? {
        t.streams += 1;
        t.categories
            .entry(head.stream.category().to_owned())
            .or_default()
            .streams += 1;
        for s in events.snapshots(&head.stream)? {
            t.snapshots += 1;
            t.snapshot_bytes += s.payload.len() as u64;
        }
    }
    t.checkpoints = projections::read(store, head)?;
    let lmdb = match store {
        Store::Lmdb(s) => Some(s.stats()?),
        Store::Postgres(_) => None,
    };
    if json {
        output::json_document(out, &to_json(store, head, &t, lmdb.as_ref()))?;
    } else {
        write_text(out, store, head, &t, lmdb.as_ref())?;
    }
    Ok(())
}

fn to_json(store: &Store, head: u64, t: &Totals, lmdb: Option<&LmdbStats>) -> Value {
    let categories: Vec<Value> = t
        .categories
        .iter()
        .map(|(name, c)| json!({"category": name, "streams": c.streams, "events": c.events, "bytes": c.bytes}))
        .collect();
    let types: Vec<Value> = t
        .types
        .iter()
        .map(|((category, name), (c, versions))| {
            json!({"category": category, "type": name, "event_versions": versions, "events": c.events, "bytes": c.bytes})
        })
        .collect();
    let mut doc = json!({
        "store": store.describe(),
        "backend": store.backend(),
        "head_position": head,
        "events": t.events,
        "streams": t.streams,
        "payload_bytes": t.payload_bytes,
        "metadata_bytes": t.metadata_bytes,
        "first_timestamp": t.first.map(output::timestamp),
        "last_timestamp": t.last.map(output::timestamp),
        "snapshots": t.snapshots,
        "snapshot_bytes": t.snapshot_bytes,
        "categories": categories,
        "event_types": types,
        "checkpoints": t.checkpoints.iter().map(Checkpoint::to_json).collect::<Vec<_>>(),
    });
    if let Some(l) = lmdb {
        doc["lmdb"] = json!({
            "path": l.path.display().to_string(),
            "page_size": l.page_size,
            "map_size": l.map_size,
            "max_map_size": l.max_map_size,
            "file_size": l.file_size,
            "used_pages": l.used_pages,
            "used_bytes": l.used_bytes(),
            "free_pages": l.free_pages,
            "last_transaction": l.last_transaction,
            "reader_slots": l.reader_slots,
            "readers": l.readers,
            "databases": l.databases.iter().map(|d| json!({
                "name": d.name, "entries": d.entries, "depth": d.depth, "pages": d.pages,
            })).collect::<Vec<_>>(),
        });
    }
    doc
}

fn write_text(
    out: &mut dyn Write,
    store: &Store,
    head: u64,
    t: &Totals,
    lmdb: Option<&LmdbStats>,
) -> std::io::Result<()> {
    let total = t.payload_bytes + t.metadata_bytes;
    let mut summary = vec![
        ("store", store.describe()),
        ("events", format!("{} (head position {head})", t.events)),
        ("streams", t.streams.to_string()),
        (
            "bytes",
            format!(
                "{} (payloads {}, metadata {})",
                bytes(total),
                bytes(t.payload_bytes),
                bytes(t.metadata_bytes)
            ),
        ),
        (
            "snapshots",
            format!("{} ({})", t.snapshots, bytes(t.snapshot_bytes)),
        ),
    ];
    if let (Some(first), Some(last)) = (t.first, t.last) {
        summary.push(("first event", output::timestamp(first)));
        summary.push(("last event", output::timestamp(last)));
    }
    fields(out, &summary)?;
    if !t.categories.is_empty() {
        writeln!(out)?;
        let mut table = Table::new(&["CATEGORY", ">STREAMS", ">EVENTS", ">BYTES"]);
        for (name, c) in &t.categories {
            table.row(vec![
                name.clone(),
                c.streams.to_string(),
                c.events.to_string(),
                bytes(c.bytes),
            ]);
        }
        table.write(out)?;
        writeln!(out)?;
        let mut table = Table::new(&["CATEGORY", "EVENT TYPE", "SHAPES", ">EVENTS", ">BYTES"]);
        for ((category, name), (c, versions)) in &t.types {
            let shapes: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
            table.row(vec![
                category.clone(),
                name.clone(),
                shapes.join(","),
                c.events.to_string(),
                bytes(c.bytes),
            ]);
        }
        table.write(out)?;
    }
    if !t.checkpoints.is_empty() {
        writeln!(out)?;
        projections::table(&t.checkpoints).write(out)?;
    }
    if let Some(l) = lmdb {
        writeln!(out)?;
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        fields(
            out,
            &[
                (
                    "map",
                    format!(
                        "{} used of {} ({:.1}%), growing up to {}",
                        bytes(l.used_bytes()),
                        bytes(l.map_size),
                        percent(l.used_bytes(), l.map_size),
                        bytes(l.max_map_size)
                    ),
                ),
                ("data file", bytes(l.file_size)),
                (
                    "pages",
                    format!(
                        "{} used, {} of them free ({}), {} bytes each",
                        l.used_pages,
                        l.free_pages,
                        bytes(l.free_bytes()),
                        l.page_size
                    ),
                ),
                (
                    "readers",
                    format!("{} of {} slots taken", l.readers, l.reader_slots),
                ),
                ("last commit", format!("transaction {}", l.last_transaction)),
            ],
        )?;
        writeln!(out)?;
        let mut table = Table::new(&["DATABASE", ">ENTRIES", ">DEPTH", ">PAGES"]);
        for d in &l.databases {
            table.row(vec![
                d.name.to_owned(),
                d.entries.to_string(),
                d.depth.to_string(),
                d.pages.to_string(),
            ]);
        }
        table.write(out)?;
    }
    Ok(())
}
