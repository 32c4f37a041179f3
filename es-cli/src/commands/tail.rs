//! `es tail`: the global log from a position (or its last events), one line per event; with
//! `--follow`, new events as they are committed, by any process, until Ctrl-C or until the
//! output's reader goes away.
//!
//! Following re-reads the head position every so often: a store opened read-only learns of
//! other processes' commits only by reading.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::time::Duration;

use es_runtime::{EventRef, EventStore};

use crate::error::Result;
use crate::event_json::{self, Bytes};
use crate::interrupt;
use crate::open::Store;
use crate::output;

/// How often `--follow` looks for new events.
const POLL: Duration = Duration::from_millis(200);

/// Where to start.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// At this position.
    At(u64),
    /// At the last this many events that pass the filter.
    Last(usize),
}

/// Which events to show.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) category: Option<String>,
    pub(crate) event_type: Option<String>,
}

impl Filter {
    fn matches(&self, e: &EventRef<'_>) -> bool {
        self.category.as_deref().is_none_or(|c| e.category() == c)
            && self.event_type.as_deref().is_none_or(|t| e.event_type == t)
    }
}

pub(crate) fn run(
    store: &Store,
    start: Start,
    follow: bool,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let events = store.events();
    if follow {
        interrupt::catch();
    }
    let head = events.head_position()?;
    let from = match start {
        Start::At(p) => p.max(1),
        Start::Last(n) => last_start(events, head, n, filter)?,
    };
    let mut next = print_from(events, from, filter, json, out)?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    loop {
        if interrupt::stopped() || interrupt::stdout_closed() {
            return Ok(());
        }
        if events.head_position()? >= next {
            next = print_from(events, next, filter, json, out)?;
            out.flush()?;
        } else {
            std::thread::sleep(POLL);
        }
    }
}

/// Prints the log's events from `from` that pass `filter`; returns the position after the
/// last one read.
fn print_from(
    events: &dyn EventStore,
    from: u64,
    filter: &Filter,
    json: bool,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut next = from;
    let mut failed: Option<io::Error> = None;
    events.read_all_with(from, &mut |e| {
        if interrupt::stopped() {
            return ControlFlow::Break(());
        }
        next = e.position + 1;
        if !filter.matches(&e) {
            return ControlFlow::Continue(());
        }
        let written = if json {
            output::json_line(out, &event_json::event(&e, Bytes::None))
        } else {
            writeln!(
                out,
                "{:>7}  {}  {} v{}  {}  {}",
                e.position,
                output::timestamp(e.timestamp),
                e.stream,
                e.version,
                e.event_type,
                event_json::payload_text(e.payload)
            )
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(next),
    }
}

/// The position of the `n`th last event up to `head` that passes `filter` (the first event
/// when fewer do), found by reading ever larger windows back from the head.
fn last_start(events: &dyn EventStore, head: u64, n: usize, filter: &Filter) -> Result<u64> {
    if n == 0 {
        return Ok(head + 1);
    }
    let mut window = (n as u64).saturating_mul(4).max(256);
    loop {
        let start = head.saturating_sub(window) + 1;
        let mut matching = Vec::new();
        events.read_all_with(start, &mut |e| {
            if e.position > head {
                return ControlFlow::Break(());
            }
            if filter.matches(&e) {
                matching.push(e.position);
            }
            ControlFlow::Continue(())
        })?;
        if matching.len() >= n {
            return Ok(matching[matching.len() - n]);
        }
        if start == 1 {
            return Ok(matching.first().copied().unwrap_or(head + 1));
        }
        window = window.saturating_mul(4);
    }
}
