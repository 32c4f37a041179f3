//! One group of appends as one transaction.
//!
//! The rule: positions are assigned under the lock of the single `head` row, held until
//! COMMIT, and a group writes only if the head it read is the head it moves from; so
//! transactions that write events commit in the order of their positions and every snapshot
//! of the log is a gap-free prefix. Each append is checked against its stream's version as it
//! was under that lock (and against the appends before it in the group) and refused alone. A
//! group reports success only when the rows written are exactly the rows planned and the
//! commit returned.
//!
//! A group is first sent as one statement in a transaction of its own (one round trip, one
//! WAL flush), planned from what this process last knew of the head and from the appends'
//! own expected versions; the statement writes only if the head and every stream it writes
//! are exactly as planned, and otherwise fails whole, writing nothing. Then, and for a group
//! that cannot be planned that way (an append expecting `Any` or `Exists`, or writing no
//! event), the group is planned from the head and versions read under the lock, in a
//! transaction of two round trips: the conflicts it finds are the appends' own.
//!
//! A group sent in one statement may have another sent behind it on the same connection,
//! planned on the head it leaves ([`send_queued`] tells its caller when that is safe): the
//! server runs them in order, and the second is refused unless the first wrote.
//!
//! An import (see `store::import`) is a transaction of its own under the same lock: its
//! events keep their versions and timestamps, checked whole against the streams' versions
//! and the log's last timestamp read under the lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::pool::Conn;
use crate::codec;
use crate::error::{AppendError, BoxError};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId, Timestamp};
use crate::store::{AppendResult, ImportCheck, ImportResult, Layout};

/// One append waiting for its group.
#[derive(Debug)]
pub(super) struct Append {
    pub(super) stream: StreamId,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
}

pub(super) type Outcome = Result<AppendResult, AppendError>;

/// What this process last knew of the log: its last position and last event's timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Known {
    pub(super) head: u64,
    pub(super) timestamp: Timestamp,
}

/// How a group went: an outcome per append, what the log is known to be after it, and
/// whether the group was sent in one round trip.
#[derive(Debug)]
pub(super) struct Committed {
    pub(super) outcomes: Vec<Outcome>,
    /// The new head, when events were written.
    pub(super) head: Option<u64>,
    /// The log as the group left it (or found it), when it got that far.
    pub(super) known: Option<Known>,
    /// Planned from `Known` and sent as one statement, whether or not that wrote.
    pub(super) tried_one_trip: bool,
    /// That one statement wrote the group.
    pub(super) one_trip: bool,
}

/// What a group's transaction decided: an outcome per append, and the rows to write.
#[derive(Debug, Default)]
struct Plan<'a> {
    outcomes: Vec<Outcome>,
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    types: Vec<&'a str>,
    ids: Vec<Uuid>,
    metadata: Vec<Vec<u8>>,
    payloads: Vec<&'a [u8]>,
    event_versions: Vec<i32>,
    /// Each written stream, its version before the group (0: none), its last version and
    /// its last position.
    head_streams: Vec<&'a str>,
    head_before: Vec<i64>,
    head_versions: Vec<i64>,
    head_positions: Vec<i64>,
}

fn storage(stream: &StreamId, source: impl Into<BoxError>) -> AppendError {
    AppendError::Storage {
        stream: stream.clone(),
        source: source.into(),
    }
}

/// Checks each append against the versions in `current` (and the appends before it in the
/// group) and lays out the rows after position `head`.
fn plan<'a>(
    group: &'a [Append],
    mut current: HashMap<&'a str, u64>,
    head: u64,
    timestamp: Timestamp,
) -> Plan<'a> {
    let before = current.clone();
    let mut plan = Plan::default();
    let mut layout = Layout::new(head, timestamp);
    // Ordered by stream, so that every group takes the rows of its streams in one order.
    let mut heads: BTreeMap<&'a str, (i64, i64)> = BTreeMap::new();
    for append in group {
        let stream = append.stream.as_str();
        let version = current.get(stream).copied().unwrap_or(0);
        let count = append.events.len() as u64;
        let admitted = match layout.admit(&append.stream, append.expected, version, count) {
            Ok(admitted) => admitted,
            Err(conflict) => {
                plan.outcomes.push(Err(conflict));
                continue;
            }
        };
        plan.outcomes.push(Ok(admitted));
        if count == 0 {
            continue;
        }
        for (i, e) in append.events.iter().enumerate() {
            let i = i as u64;
            plan.positions.push((admitted.first_position + i) as i64);
            plan.streams.push(stream);
            plan.versions.push((admitted.first_version + i) as i64);
            plan.types.push(&e.event_type);
            plan.ids.push(e.event_id);
            plan.metadata.push(codec::encode_metadata(&e.metadata));
            plan.payloads.push(&e.payload);
            plan.event_versions
                .push(i32::try_from(e.event_version).unwrap_or(i32::MAX));
        }
        let last = admitted.stream_version();
        current.insert(stream, last);
        heads.insert(stream, (last as i64, admitted.last_position() as i64));
    }
    for (stream, (version, position)) in heads {
        plan.head_streams.push(stream);
        plan.head_before
            .push(before.get(stream).copied().unwrap_or(0) as i64);
        plan.head_versions.push(version);
        plan.head_positions.push(position);
    }
    plan
}

/// The streams' versions as the group's appends expect them, when every append can be
/// planned from its expectation alone: each expects an exact version (or no stream) and
/// writes events.
fn expected_versions(group: &[Append]) -> Option<HashMap<&str, u64>> {
    let mut current = HashMap::with_capacity(group.len());
    for append in group {
        let expected = match append.expected {
            _ if append.events.is_empty() => return None,
            ExpectedVersion::Exact(v) => v,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Any | ExpectedVersion::Exists => return None,
        };
        // A later append of a stream is checked against the earlier ones, in `plan`.
        current.entry(append.stream.as_str()).or_insert(expected);
    }
    Some(current)
}

/// Runs `write_group` for `plan`, moving the head from `head`; its one row is 0.
async fn write(
    conn: &Conn,
    plan: &Plan<'_>,
    head: u64,
    timestamp: Timestamp,
) -> Result<(), tokio_postgres::Error> {
    let new_head = (head + plan.positions.len() as u64) as i64;
    let (head, ts) = (head as i64, timestamp.as_nanos() as i64);
    let params: [&(dyn ToSql + Sync); 15] = [
        &plan.positions,
        &plan.streams,
        &plan.versions,
        &plan.types,
        &plan.ids,
        &ts,
        &plan.metadata,
        &plan.payloads,
        &plan.head_streams,
        &plan.head_versions,
        &plan.head_positions,
        &new_head,
        &plan.event_versions,
        &plan.head_before,
        &head,
    ];
    conn.client
        .query_one(&conn.st.write_group, &params)
        .await
        .map(drop)
}

/// A group planned from what this process last knew of the log, to be sent as one statement.
#[derive(Debug)]
pub(super) struct OneTrip<'a> {
    plan: Plan<'a>,
    head: u64,
    timestamp: Timestamp,
}

impl<'a> OneTrip<'a> {
    /// Plans `group` after `known`, if every append can be planned from its expectation.
    pub(super) fn plan(group: &'a [Append], known: Known, now: Timestamp) -> Option<Self> {
        let current = expected_versions(group)?;
        let timestamp = now.max(known.timestamp);
        Some(OneTrip {
            plan: plan(group, current, known.head, timestamp),
            head: known.head,
            timestamp,
        })
    }

    /// The log as the group leaves it, once written.
    pub(super) fn after(&self) -> Known {
        Known {
            head: self.head + self.plan.positions.len() as u64,
            timestamp: self.timestamp,
        }
    }

    /// The group as written.
    pub(super) fn written(self) -> Committed {
        let known = self.after();
        Committed {
            outcomes: self.plan.outcomes,
            head: Some(known.head),
            known: Some(known),
            tried_one_trip: true,
            one_trip: true,
        }
    }
}

/// Sends `trip` on `conn` and calls `queued` as soon as its statement is queued on the
/// connection, ahead of any statement sent on it later: `Ok(false)` when the database refused
/// it, which wrote nothing (see [`one_trip`]).
pub(super) async fn send_queued(
    conn: &Conn,
    trip: &OneTrip<'_>,
    queued: impl FnOnce(),
) -> Result<bool, tokio_postgres::Error> {
    let mut write = std::pin::pin!(write(conn, &trip.plan, trip.head, trip.timestamp));
    let mut queued = Some(queued);
    // The client queues a statement's messages when its future is first polled.
    let written = std::future::poll_fn(|cx| {
        let poll = write.as_mut().poll(cx);
        if let Some(queued) = queued.take() {
            queued();
        }
        poll
    })
    .await;
    written.map_or_else(refused, |()| Ok(true))
}

/// A database's refusal of a one-statement group wrote nothing; any other error may have
/// come after the commit, so it is the group's.
fn refused(e: tokio_postgres::Error) -> Result<bool, tokio_postgres::Error> {
    if e.as_db_error().is_some() {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Commits `group` on `conn`; `delay` holds the transaction open before COMMIT (tests).
/// `known` is what this process last knew of the log, if the group may be tried in one
/// round trip from it.
pub(super) async fn commit(
    conn: &Conn,
    group: &[Append],
    now: Timestamp,
    delay: Option<Duration>,
    known: Option<Known>,
) -> Committed {
    let mut tried_one_trip = false;
    if let Some(trip) = known.and_then(|known| OneTrip::plan(group, known, now)) {
        tried_one_trip = true;
        match one_trip(conn, &trip, delay).await {
            Ok(true) => return trip.written(),
            // Refused by the database: nothing was written; plan again under the lock.
            Ok(false) => {}
            Err(e) => return failed(group, e.into(), tried_one_trip),
        }
    }
    transact_group(conn, group, now, delay, tried_one_trip).await
}

/// Commits `group` on `conn` in a transaction that reads the head and versions under the lock.
pub(super) async fn transact_group(
    conn: &Conn,
    group: &[Append],
    now: Timestamp,
    delay: Option<Duration>,
    tried_one_trip: bool,
) -> Committed {
    match transact(conn, group, now, delay).await {
        Ok((outcomes, known, written)) => Committed {
            outcomes,
            head: written.then_some(known.head),
            known: Some(known),
            tried_one_trip,
            one_trip: false,
        },
        Err(e) => {
            // The transaction is aborted (or the connection gone): end it before reuse.
            let _ = conn.client.execute(&conn.st.rollback, &[]).await;
            failed(group, e, tried_one_trip)
        }
    }
}

/// Every append of `group` failed with `e`.
pub(super) fn failed(group: &[Append], e: BoxError, tried_one_trip: bool) -> Committed {
    let message = e.to_string();
    let source = Arc::new(e);
    let outcomes = group
        .iter()
        .map(|a| {
            Err(storage(
                &a.stream,
                SharedError(Arc::clone(&source), message.clone()),
            ))
        })
        .collect();
    Committed {
        outcomes,
        head: None,
        known: None,
        tried_one_trip,
        one_trip: false,
    }
}

/// Sends `trip` as one statement committed alone: `Ok(false)` when the database refused it
/// (the head or a stream was not as planned, or it failed otherwise), which wrote nothing.
/// Any other error may have come after the commit, so it is the group's.
async fn one_trip(
    conn: &Conn,
    trip: &OneTrip<'_>,
    delay: Option<Duration>,
) -> Result<bool, tokio_postgres::Error> {
    let Some(delay) = delay else {
        return send_queued(conn, trip, || {}).await;
    };
    let (c, st) = (&conn.client, &conn.st);
    let written = tokio::try_join!(
        c.execute(&st.begin, &[]),
        write(conn, &trip.plan, trip.head, trip.timestamp)
    );
    if let Err(e) = written {
        let _ = c.execute(&st.rollback, &[]).await;
        return refused(e);
    }
    tokio::time::sleep(delay).await;
    c.execute(&st.commit, &[]).await?;
    Ok(true)
}

/// The group in a transaction that reads the head and the versions under the lock first.
/// Returns the outcomes, the log as the transaction left it, and whether it wrote events.
async fn transact(
    conn: &Conn,
    group: &[Append],
    now: Timestamp,
    delay: Option<Duration>,
) -> Result<(Vec<Outcome>, Known, bool), BoxError> {
    let (c, st) = (&conn.client, &conn.st);
    let mut names: Vec<&str> = group.iter().map(|a| a.stream.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // BEGIN, the lock and the versions go out together; the versions are read by a statement
    // that starts once the lock is held, so they include every commit before ours.
    let versions_params: [&(dyn ToSql + Sync); 1] = [&names];
    let (_, head_row, version_rows) = tokio::try_join!(
        c.execute(&st.begin, &[]),
        c.query_one(&st.lock_head, &[]),
        c.query(&st.versions, &versions_params),
    )?;
    let head = head_row.try_get::<_, i64>(0)? as u64;
    let last_timestamp = Timestamp(head_row.try_get::<_, i64>(1)? as u64);
    let mut current = HashMap::with_capacity(version_rows.len());
    for row in &version_rows {
        let stream: &str = row.try_get(0)?;
        let version: i64 = row.try_get(1)?;
        if let Ok(i) = names.binary_search(&stream) {
            current.insert(names[i], version as u64);
        }
    }
    let timestamp = now.max(last_timestamp);
    let plan = plan(group, current, head, timestamp);
    let written = plan.positions.len() as u64;
    if written == 0 {
        c.execute(&st.rollback, &[]).await?;
        let known = Known {
            head,
            timestamp: last_timestamp,
        };
        return Ok((plan.outcomes, known, false));
    }
    match delay {
        // The write fails unless it wrote every planned row, and a failed statement aborts the
        // transaction: the COMMIT sent behind it then rolls back, and the group reports the
        // write's error. So COMMIT need not wait for the write's answer.
        None => {
            tokio::try_join!(
                write(conn, &plan, head, timestamp),
                c.execute(&st.commit, &[]),
            )?;
        }
        Some(delay) => {
            write(conn, &plan, head, timestamp).await?;
            tokio::time::sleep(delay).await;
            c.execute(&st.commit, &[]).await?;
        }
    }
    let known = Known {
        head: head + written,
        timestamp,
    };
    Ok((plan.outcomes, known, true))
}

/// Imports `events` (not empty) on `conn` in one transaction. Returns what was written and
/// the new head, or the refusal of the batch; a failed statement is the error.
pub(super) async fn import(
    conn: Arc<Conn>,
    events: Vec<RecordedEvent>,
) -> Result<Result<(ImportResult, u64), AppendError>, BoxError> {
    let done = import_in(&conn, &events).await;
    if !matches!(done, Ok(Ok(_))) {
        // Refused or failed: end the transaction before the connection is reused.
        let _ = conn.client.execute(&conn.st.rollback, &[]).await;
    }
    done
}

async fn import_in(
    conn: &Conn,
    events: &[RecordedEvent],
) -> Result<Result<(ImportResult, u64), AppendError>, BoxError> {
    let (c, st) = (&conn.client, &conn.st);
    let mut names: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let versions_params: [&(dyn ToSql + Sync); 1] = [&names];
    let (_, head_row, version_rows) = tokio::try_join!(
        c.execute(&st.begin, &[]),
        c.query_one(&st.lock_head, &[]),
        c.query(&st.versions, &versions_params),
    )?;
    let head: i64 = head_row.try_get(0)?;
    let last_timestamp: i64 = head_row.try_get(1)?;
    let mut stored = HashMap::with_capacity(version_rows.len());
    for row in &version_rows {
        let version: i64 = row.try_get(1)?;
        stored.insert(row.try_get::<_, String>(0)?, version as u64);
    }
    let mut check = ImportCheck::new(Timestamp(last_timestamp as u64));
    for event in events {
        let stream = event.stream.as_str();
        let current = check
            .version(stream)
            .unwrap_or_else(|| stored.get(stream).copied().unwrap_or(0));
        if let Err(refused) = check.admit(event, current) {
            return Ok(Err(refused));
        }
    }
    let count = events.len() as i64;
    let positions: Vec<i64> = (head + 1..=head + count).collect();
    let streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
    let versions: Vec<i64> = events.iter().map(|e| e.version as i64).collect();
    let types: Vec<&str> = events.iter().map(|e| &*e.event_type).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let stamps: Vec<i64> = events
        .iter()
        .map(|e| e.timestamp.as_nanos() as i64)
        .collect();
    let metadata: Vec<Vec<u8>> = events
        .iter()
        .map(|e| codec::encode_metadata(&e.metadata))
        .collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let event_versions: Vec<i32> = events
        .iter()
        .map(|e| i32::try_from(e.event_version).unwrap_or(i32::MAX))
        .collect();
    let mut last_at: HashMap<&str, i64> = HashMap::new();
    for (stream, &p) in streams.iter().zip(&positions) {
        last_at.insert(stream, p);
    }
    let (mut hs, mut hv, mut hp) = (Vec::new(), Vec::new(), Vec::new());
    for (stream, version) in check.into_versions() {
        hs.push(stream);
        hv.push(version as i64);
        hp.push(last_at[stream]);
    }
    let new_head = head + count;
    let last_stamp = *stamps.last().expect("an import is not empty");
    let write: [&(dyn ToSql + Sync); 14] = [
        &positions,
        &streams,
        &versions,
        &types,
        &ids,
        &stamps,
        &metadata,
        &payloads,
        &hs,
        &hv,
        &hp,
        &new_head,
        &event_versions,
        &last_stamp,
    ];
    // As for a group: a write that fails aborts the transaction, and the COMMIT behind it
    // then rolls back.
    tokio::try_join!(
        c.query_one(&st.import_group, &write),
        c.execute(&st.commit, &[]),
    )?;
    let result = ImportResult::new(head as u64 + 1, count as u64);
    Ok(Ok((result, new_head as u64)))
}

/// One backend error shared by every append of a failed group.
#[derive(Debug)]
struct SharedError(Arc<BoxError>, String);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&**self.0)
    }
}
