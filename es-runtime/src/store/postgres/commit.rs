//! One group of appends as one transaction.
//!
//! The rule: positions are assigned under the lock of the single `head` row, taken first and
//! held until COMMIT, so transactions that write events commit in the order of their
//! positions and every snapshot of the log is a gap-free prefix. Under the same lock the
//! versions read are the streams' current ones: each append is checked against them (and
//! against the appends before it in the group) and refused alone. A group reports success
//! only when the rows written are exactly the rows planned and COMMIT returned.
//!
//! An import (see `store::import`) is a transaction of its own under the same lock: its
//! events keep their versions and timestamps, checked whole against the streams' versions
//! and the log's last timestamp read under the lock.

use std::collections::HashMap;
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

/// What a group's transaction decided: an outcome per append, and the rows to write.
#[derive(Debug, Default)]
struct Plan {
    outcomes: Vec<Outcome>,
    positions: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    types: Vec<String>,
    ids: Vec<Uuid>,
    metadata: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
    event_versions: Vec<i32>,
    /// Each written stream's last version and position.
    heads: Vec<(String, i64, i64)>,
}

fn storage(stream: &StreamId, source: impl Into<BoxError>) -> AppendError {
    AppendError::Storage {
        stream: stream.clone(),
        source: source.into(),
    }
}

/// Checks each append against the versions read under the lock (and the appends before it in
/// the group) and lays out the rows.
fn plan(
    group: Vec<Append>,
    mut current: HashMap<String, u64>,
    head: u64,
    timestamp: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let mut layout = Layout::new(head, timestamp);
    let mut heads: HashMap<String, (i64, i64)> = HashMap::new();
    for append in group {
        let version = current.get(append.stream.as_str()).copied().unwrap_or(0);
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
        for (i, e) in append.events.into_iter().enumerate() {
            let i = i as u64;
            plan.positions.push((admitted.first_position + i) as i64);
            plan.streams.push(append.stream.to_string());
            plan.versions.push((admitted.first_version + i) as i64);
            plan.types.push(e.event_type.into_owned());
            plan.ids.push(e.event_id);
            plan.metadata.push(codec::encode_metadata(&e.metadata));
            plan.payloads.push(e.payload);
            plan.event_versions
                .push(i32::try_from(e.event_version).unwrap_or(i32::MAX));
        }
        let last = admitted.stream_version();
        current.insert(append.stream.to_string(), last);
        heads.insert(
            append.stream.to_string(),
            (last as i64, admitted.last_position() as i64),
        );
    }
    plan.heads = heads.into_iter().map(|(s, (v, p))| (s, v, p)).collect();
    plan
}

/// Commits `group` on `conn`; `delay` holds the transaction open before COMMIT (tests).
/// Returns the outcomes and the new head position when events were written.
pub(super) async fn commit(
    conn: Arc<Conn>,
    group: Vec<Append>,
    now: Timestamp,
    delay: Option<Duration>,
) -> (Vec<Outcome>, Option<u64>) {
    let streams: Vec<StreamId> = group.iter().map(|a| a.stream.clone()).collect();
    let fail_all = |e: BoxError| -> Vec<Outcome> {
        let message = e.to_string();
        let source = Arc::new(e);
        streams
            .iter()
            .map(|s| {
                Err(storage(
                    s,
                    SharedError(Arc::clone(&source), message.clone()),
                ))
            })
            .collect()
    };
    match transact(&conn, group, now, delay).await {
        Ok((outcomes, head)) => (outcomes, head),
        Err(e) => {
            // The transaction is aborted (or the connection gone): end it before reuse.
            let _ = conn.client.execute(&conn.st.rollback, &[]).await;
            (fail_all(e), None)
        }
    }
}

async fn transact(
    conn: &Conn,
    group: Vec<Append>,
    now: Timestamp,
    delay: Option<Duration>,
) -> Result<(Vec<Outcome>, Option<u64>), BoxError> {
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
    let head: i64 = head_row.try_get(0)?;
    let last_timestamp: i64 = head_row.try_get(1)?;
    let mut current = HashMap::with_capacity(version_rows.len());
    for row in &version_rows {
        let version: i64 = row.try_get(1)?;
        current.insert(row.try_get::<_, String>(0)?, version as u64);
    }
    let timestamp = now.max(Timestamp(last_timestamp as u64));
    let plan = plan(group, current, head as u64, timestamp);
    let written = plan.positions.len();
    if written == 0 {
        c.execute(&st.rollback, &[]).await?;
        return Ok((plan.outcomes, None));
    }
    let new_head = head + written as i64;
    let (hs, hv, hp): (Vec<&str>, Vec<i64>, Vec<i64>) = {
        let mut s = Vec::new();
        let mut v = Vec::new();
        let mut p = Vec::new();
        for (stream, version, position) in &plan.heads {
            s.push(stream.as_str());
            v.push(*version);
            p.push(*position);
        }
        (s, v, p)
    };
    let ts = timestamp.as_nanos() as i64;
    let write: [&(dyn ToSql + Sync); 13] = [
        &plan.positions,
        &plan.streams,
        &plan.versions,
        &plan.types,
        &plan.ids,
        &ts,
        &plan.metadata,
        &plan.payloads,
        &hs,
        &hv,
        &hp,
        &new_head,
        &plan.event_versions,
    ];
    match delay {
        // The write fails unless it wrote every planned row, and a failed statement aborts the
        // transaction: the COMMIT sent behind it then rolls back, and the group reports the
        // write's error. So COMMIT need not wait for the write's answer.
        None => {
            tokio::try_join!(
                c.query_one(&st.write_group, &write),
                c.execute(&st.commit, &[]),
            )?;
        }
        Some(delay) => {
            c.query_one(&st.write_group, &write).await?;
            tokio::time::sleep(delay).await;
            c.execute(&st.commit, &[]).await?;
        }
    }
    Ok((plan.outcomes, Some(new_head as u64)))
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
