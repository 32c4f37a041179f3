//! `es verify`: the store's own check, with its report; exit status 4 when anything is
//! damaged.
//!
//! An LMDB store is verified by this program run again as a child (the hidden
//! `__verify-child` command), because damage to LMDB's page structure can make the reading
//! process fault: a child killed by a signal is reported as damage, and the tool itself lives
//! on to say so. A PostgreSQL store cannot fault its reader: it is checked here, by reading
//! the log (positions from 1 without gaps, each stream's versions from 1 without gaps, every
//! record readable) and comparing it with the stream heads and the snapshots.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use es_runtime::store::lmdb::verify_path;
use es_runtime::{EventStore, OpenError};
use serde_json::{Value, json};

use super::all_streams;
use crate::error::{CliError, Result, one_line};
use crate::open::{Location, Store, check_lmdb_dir};
use crate::output::{self, fields};

/// What a verification found.
#[derive(Debug, Default)]
struct Report {
    store: String,
    /// What was read, by kind.
    checked: Vec<(String, u64)>,
    /// Where, and what is wrong.
    damage: Vec<(String, String)>,
}

pub(crate) fn run(location: &Location, json: bool, out: &mut dyn Write) -> Result<()> {
    let report = match location {
        Location::Lmdb(path) => {
            check_lmdb_dir(path)?;
            in_child(path)?
        }
        Location::Postgres { .. } => {
            let store = Store::open(location)?;
            verify_postgres(&store)?
        }
    };
    if json {
        let damage: Vec<Value> = report
            .damage
            .iter()
            .map(|(at, reason)| json!({"at": at, "reason": reason}))
            .collect();
        let checked: serde_json::Map<String, Value> = report
            .checked
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        output::json_document(
            out,
            &json!({"store": report.store, "sound": report.damage.is_empty(), "checked": checked, "damage": damage}),
        )?;
    } else {
        let checked: Vec<String> = report
            .checked
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let found = if report.damage.is_empty() {
            "none found".to_owned()
        } else {
            format!("{} found", report.damage.len())
        };
        fields(
            out,
            &[
                ("store", report.store.clone()),
                ("checked", checked.join(", ")),
                ("damage", found),
            ],
        )?;
        for (at, reason) in &report.damage {
            writeln!(out, "  {at}: {}", one_line(reason))?;
        }
    }
    out.flush()?;
    match report.damage.len() {
        0 => Ok(()),
        n => Err(CliError::damage(format_args!(
            "{} is damaged: {n} problem{} found",
            report.store,
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// Runs `__verify-child` on `path` and reads its report; a child that dies is damage.
fn in_child(path: &Path) -> Result<Report> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format_args!("cannot find this program to run it: {e}")))?;
    let shown = format!("{} (LMDB)", path.display());
    let output = Command::new(exe)
        .arg("__verify-child")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| CliError::failed(format_args!("cannot run the verifying process: {e}")))?;
    let fault = |what: String| Report {
        store: shown.clone(),
        checked: Vec::new(),
        damage: vec![("the store".to_owned(), what)],
    };
    if let Some(signal) = output.status.signal() {
        return Ok(fault(format!(
            "reading it killed the verifying process with signal {signal} ({}): LMDB's own \
             pages are damaged",
            signal_name(signal)
        )));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last_line = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let parsed: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    let Some(doc) = parsed.filter(|_| output.status.success()) else {
        return Ok(fault(format!(
            "the verifying process failed ({}): {last_line}",
            output.status
        )));
    };
    if let Some(error) = doc.get("open_error").and_then(Value::as_str) {
        if doc.get("damaged").and_then(Value::as_bool) == Some(true) {
            return Ok(fault(error.to_owned()));
        }
        return Err(CliError::cannot_open(error));
    }
    let mut report = Report {
        store: shown,
        ..Report::default()
    };
    for kind in [
        "events",
        "streams",
        "index_entries",
        "snapshots",
        "checkpoints",
        "table_entries",
    ] {
        let n = doc.get(kind).and_then(Value::as_u64).unwrap_or(0);
        report.checked.push((kind.replace('_', " "), n));
    }
    for d in doc
        .get("damage")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        report.damage.push((text("at"), text("reason")));
    }
    Ok(report)
}

pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGBUS => "SIGBUS",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// The child: verifies `path` in this process and prints the report as one JSON document.
pub(crate) fn child(path: &Path, out: &mut dyn Write) -> Result<()> {
    // For the tests of the parent's side: a child that dies as a damaged page would kill it.
    if std::env::var_os("__ES_VERIFY_CHILD_RAISES_SIGBUS").is_some() {
        // SAFETY: setting a signal's default action and raising it have no preconditions.
        // (The default first: the Rust runtime's handler would return from a raised one.)
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            libc::raise(libc::SIGBUS);
        }
    }
    let doc = match verify_path(path) {
        Ok(r) => {
            let damage: Vec<Value> = r
                .damage
                .iter()
                .map(|d| json!({"at": d.at.to_string(), "reason": d.reason}))
                .collect();
            json!({
                "events": r.events,
                "streams": r.streams,
                "index_entries": r.index_entries,
                "snapshots": r.snapshots,
                "checkpoints": r.checkpoints,
                "table_entries": r.table_entries,
                "damage": damage,
            })
        }
        Err(e) => {
            let damaged = matches!(
                e,
                OpenError::Truncated { .. } | OpenError::Damaged { .. } | OpenError::Storage { .. }
            );
            json!({"open_error": e.to_string(), "damaged": damaged})
        }
    };
    output::json_document(out, &doc)?;
    Ok(())
}

/// Checks a PostgreSQL store by reading it whole.
fn verify_postgres(store: &Store) -> Result<Report> {
    let events = store.events();
    let mut report = Report {
        store: store.describe(),
        ..Report::default()
    };
    let mut damage = Vec::new();
    // Per stream: its last version and the position of that event.
    let mut heads: HashMap<String, (u64, u64)> = HashMap::new();
    let mut last = 0u64;
    let mut count = 0u64;
    let read = events.read_all_with(1, &mut |e| {
        count += 1;
        let at = format!("position {}", e.position);
        if e.position != last + 1 {
            damage.push((
                at.clone(),
                format!("follows position {last}: the log is out of order or has a gap"),
            ));
        }
        last = e.position;
        let (version, _) = heads.get(e.stream).copied().unwrap_or((0, 0));
        if e.version != version + 1 {
            damage.push((
                at.clone(),
                format!(
                    "stream {:?} version {} follows version {version}",
                    e.stream, e.version
                ),
            ));
        }
        heads.insert(e.stream.to_owned(), (e.version, e.position));
        if let Err(err) = e.metadata() {
            damage.push((at.clone(), err.to_string()));
        }
        if let Err(err) = es_runtime::codec::to_json(e.payload) {
            damage.push((at, format!("the payload does not decode: {err}")));
        }
        ControlFlow::Continue(())
    });
    if let Err(e) = read {
        damage.push(("the log".to_owned(), e.to_string()));
    }
    let head = events.head_position()?;
    if head != last {
        damage.push((
            "the head".to_owned(),
            format!("the head position is {head}, the log ends at {last}"),
        ));
    }
    let listed = all_streams(events, None, usize::MAX)?;
    let mut snapshots = 0u64;
    for h in &listed {
        let at = format!("the head of stream {:?}", h.stream.as_str());
        match heads.remove(h.stream.as_str()) {
            None => damage.push((at, "the stream has no events in the log".to_owned())),
            Some((version, position)) if (version, position) != (h.version, h.position) => damage
                .push((
                    at,
                    format!(
                        "says version {} at position {}; the log ends the stream at version \
                         {version}, position {position}",
                        h.version, h.position
                    ),
                )),
            Some(_) => {}
        }
        snapshots += check_snapshots(events, h, &mut damage);
    }
    for (stream, (version, _)) in heads {
        damage.push((
            format!("the head of stream {stream:?}"),
            format!("missing; the log has the stream up to version {version}"),
        ));
    }
    report.checked = vec![
        ("events".to_owned(), count),
        ("streams".to_owned(), listed.len() as u64),
        ("snapshots".to_owned(), snapshots),
    ];
    report.damage = damage;
    Ok(report)
}

/// Checks the snapshots of one stream: readable, and of a version the stream has.
fn check_snapshots(
    events: &dyn EventStore,
    head: &es_runtime::StreamHead,
    damage: &mut Vec<(String, String)>,
) -> u64 {
    match events.snapshots(&head.stream) {
        Err(e) => {
            damage.push((
                format!("the snapshots of {:?}", head.stream.as_str()),
                e.to_string(),
            ));
            0
        }
        Ok(list) => {
            for s in &list {
                let at = format!(
                    "the snapshot of {:?} at version {}",
                    head.stream.as_str(),
                    s.version
                );
                if s.version > head.version {
                    damage.push((
                        at.clone(),
                        format!("the stream ends at version {}", head.version),
                    ));
                }
                if let Err(e) = es_runtime::codec::to_json(&s.payload) {
                    damage.push((at, format!("the state does not decode: {e}")));
                }
            }
            list.len() as u64
        }
    }
}
