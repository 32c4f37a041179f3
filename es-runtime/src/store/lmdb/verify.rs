//! Checking a whole store: every record of every database, read on one snapshot, each flaw
//! reported with where it is, nothing written.
//!
//! The log is walked in order: each key must be the position after the one before, each
//! record must pass its checksum and decode, and each stream's records must follow one
//! another (version after version, each pointing back at the one before). The stored heads
//! must be each stream's last record as of the heads checkpoint, every index entry must point
//! at the record it names (and none may be missing), every snapshot must pass its checksum,
//! every checkpoint must be a position the log has, every recorded schema must pass its
//! checksum. Before any of it, LMDB's own pages are walked with plain file I/O (see `pages`):
//! damage there that LMDB could fault on is reported, and the records are then not read.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use heed::types::Bytes;
use heed::{RoTxn, WithoutTls};

use super::datafile::{self, DataFile};
use super::fail::Fail;
use super::record::HEADS_AT_KEY;
use super::{LmdbOptions, LmdbStore, pages, record, schemas};
use crate::error::{Location, OpenError, ReadError};
use crate::event::StreamId;

/// What [`LmdbStore::verify`] found: how much it read, and every flaw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Log records read.
    pub events: u64,
    /// Streams seen in the log.
    pub streams: u64,
    /// Stream-index entries read.
    pub index_entries: u64,
    /// Snapshots read.
    pub snapshots: u64,
    /// Projection checkpoints read.
    pub checkpoints: u64,
    /// Projection table entries read.
    pub table_entries: u64,
    /// Recorded schemas read.
    pub schemas: u64,
    /// Pages of the data file in use by a database (0 when the page structure was not
    /// walked: two commits of another writer replaced the snapshot's meta page meanwhile).
    pub pages: u64,
    /// Pages of the data file in LMDB's free list.
    pub free_pages: u64,
    /// Every flaw found, in the order found.
    pub damage: Vec<Damage>,
}

/// One flaw found by [`LmdbStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where.
    pub at: Location,
    /// What is wrong.
    pub reason: String,
}

impl VerifyReport {
    /// Whether nothing was found damaged.
    pub fn is_sound(&self) -> bool {
        self.damage.is_empty()
    }

    /// Takes in what the walk of the pages found; true if the records must not be read.
    fn account(&mut self, walked: pages::Walked) -> bool {
        self.pages = walked.in_use;
        self.free_pages = walked.free;
        for damage in walked.damage {
            self.damaged(Location::Store, damage);
        }
        if walked.faulty {
            self.damaged(
                Location::Store,
                "the records were not read: LMDB could fault on the damaged pages",
            );
        }
        walked.faulty
    }

    fn damaged(&mut self, at: Location, reason: impl Into<String>) {
        self.damage.push(Damage {
            at,
            reason: reason.into(),
        });
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events in {} streams, {} index entries, {} snapshots, {} checkpoints, {} table \
             entries, {} schemas; {} pages in use, {} free: ",
            self.events,
            self.streams,
            self.index_entries,
            self.snapshots,
            self.checkpoints,
            self.table_entries,
            self.schemas,
            self.pages,
            self.free_pages
        )?;
        if self.damage.is_empty() {
            return f.write_str("no damage found");
        }
        write!(f, "{} damaged", self.damage.len())?;
        for damage in &self.damage {
            write!(f, "\n  {damage}")?;
        }
        Ok(())
    }
}

/// Opens the store in `path` read-only and verifies it ([`LmdbStore::verify`]).
///
/// It writes nothing and takes no lock beyond a reader slot, so it may run beside the store's
/// writers. Damage to LMDB's page structure (a page pointing outside the file, a zeroed
/// branch page) is found by a walk of the pages with plain file I/O before LMDB reads a
/// record, so it is reported rather than faulted on. Running it in a child process of its
/// own still guards a caller against what that walk does not see: a parent that sees the
/// child die from a signal knows the store is damaged without dying itself.
pub fn verify_path(path: impl AsRef<Path>) -> Result<VerifyReport, OpenError> {
    // Opening reads pages through LMDB already (the databases' names, the log's last record):
    // the pages are walked before, as of the newer meta page. A writer committing meanwhile
    // can only make that walk report damage that is not there, never hide any; the walk
    // `verify` makes under its read transaction then says which.
    if datafile::check(path.as_ref()).is_ok_and(|found| found != DataFile::New)
        && let Ok(Some(walked)) = pages::walk(path.as_ref(), None)
        && walked.faulty
    {
        let mut report = VerifyReport::default();
        report.account(walked);
        return Ok(report);
    }
    let store = LmdbOptions::new().read_only(true).open(path.as_ref())?;
    store.verify().map_err(|e| OpenError::Storage {
        path: path.as_ref().display().to_string(),
        source: Box::new(e),
    })
}

/// A stream's last record seen so far in the walk of the log.
#[derive(Debug, Clone, Copy)]
struct Last {
    version: u64,
    position: u64,
}

impl LmdbStore {
    /// Reads every record of every database on one snapshot and reports what is damaged
    /// where (see [`VerifyReport`]); nothing is written. Fails only when no read transaction
    /// can be opened: every flaw of the data is an entry of the report.
    ///
    /// LMDB's own pages are walked first with plain file I/O (every tree, the free list):
    /// damage that LMDB could fault on is reported, and the records are then left unread.
    pub fn verify(&self) -> Result<VerifyReport, ReadError> {
        let r = self.inner.reader()?;
        let mut report = VerifyReport::default();
        let txn = &r.txn;
        // LMDB's own pages first, read with plain file I/O: damage there would fault the
        // reads below, so they are left out when it is found.
        match pages::walk(self.inner.env.path(), Some(txn.id() as u64)) {
            Ok(None) => {}
            Ok(Some(walked)) => {
                if report.account(walked) {
                    return Ok(report);
                }
            }
            Err(e) => {
                report.damaged(
                    Location::Store,
                    format!("the data file cannot be read: {e}"),
                );
                return Ok(report);
            }
        }
        let (heads_at, at_checkpoint, streams, last) = self.verify_log(txn, &mut report);
        self.verify_heads(txn, &mut report, heads_at, at_checkpoint.as_ref());
        self.verify_index(txn, &mut report, &streams);
        self.verify_snapshots(txn, &mut report, &streams);
        self.verify_checkpoints(txn, &mut report, last);
        self.verify_tables(txn, &mut report);
        self.verify_schemas(txn, &mut report);
        Ok(report)
    }

    /// Walks the log; answers the heads checkpoint, the streams' heads as of it (`None` when
    /// the walk did not reach it), the streams' last records and the last position.
    #[allow(clippy::type_complexity)]
    fn verify_log(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        report: &mut VerifyReport,
    ) -> (
        u64,
        Option<HashMap<String, Last>>,
        HashMap<String, Last>,
        u64,
    ) {
        let inner = &self.inner;
        let heads_at = match inner.meta.get(txn, HEADS_AT_KEY) {
            Ok(Some(v)) => record::read_position(v).unwrap_or_else(|| {
                report.damaged(Location::Store, "meta/heads_at is not 8 bytes");
                0
            }),
            Ok(None) => {
                report.damaged(Location::Store, "meta/heads_at is missing");
                0
            }
            Err(e) => {
                report.damaged(Location::Store, format!("meta cannot be read: {e}"));
                0
            }
        };
        let mut streams: HashMap<String, Last> = HashMap::new();
        let mut at_checkpoint = (heads_at == 0).then(HashMap::new);
        let mut expect = 1;
        let iter = match inner.log.remap_key_type::<Bytes>().iter(txn) {
            Ok(iter) => iter,
            Err(e) => {
                report.damaged(Location::Store, format!("the log cannot be read: {e}"));
                return (heads_at, None, streams, 0);
            }
        };
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    report.damaged(
                        Location::Position(expect),
                        format!("the log cannot be read from here on: {e}"),
                    );
                    break;
                }
            };
            let Some(position) = record::read_position(key) else {
                report.damaged(
                    Location::Position(expect),
                    format!("a log key of {} bytes instead of 8", key.len()),
                );
                continue;
            };
            if position != expect {
                report.damaged(
                    Location::Position(expect),
                    format!("missing: the next record of the log is under key {position}"),
                );
            }
            expect = position.saturating_add(1).max(expect);
            report.events += 1;
            match record::decode_linked(position, value) {
                Err(reason) => report.damaged(Location::Position(position), reason),
                Ok((event, previous)) => match StreamId::parse(event.stream) {
                    Err(e) => report.damaged(
                        Location::Position(position),
                        format!("stored under an invalid stream id: {e}"),
                    ),
                    Ok(stream) => {
                        let last = streams.get(event.stream).copied();
                        let (want_version, want_previous) =
                            last.map_or((1, 0), |l| (l.version + 1, l.position));
                        if event.version != want_version || previous != want_previous {
                            report.damaged(
                                Location::Event {
                                    stream,
                                    version: event.version,
                                    position: Some(position),
                                },
                                format!(
                                    "follows version {} at position {} of its stream, but \
                                     points back at position {previous}",
                                    want_version - 1,
                                    want_previous
                                ),
                            );
                        }
                        streams.insert(
                            event.stream.to_owned(),
                            Last {
                                version: event.version,
                                position,
                            },
                        );
                    }
                },
            }
            if position == heads_at {
                at_checkpoint = Some(streams.clone());
            }
        }
        let last = expect - 1;
        if heads_at > last {
            report.damaged(
                Location::Store,
                format!("the heads checkpoint is at {heads_at}, past the log's end at {last}"),
            );
        }
        report.streams = streams.len() as u64;
        (heads_at, at_checkpoint, streams, last)
    }

    fn verify_heads(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        report: &mut VerifyReport,
        heads_at: u64,
        expected: Option<&HashMap<String, Last>>,
    ) {
        let mut seen = 0;
        let iter = match self.inner.heads.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("heads: {e}")),
        };
        let plain = self.inner.plain_heads;
        // The key before, which each head (and the end of the heads) must link to.
        let mut before: Vec<u8> = Vec::new();
        let mut ended = false;
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => return report.damaged(Location::Store, format!("heads: {e}")),
            };
            if ended {
                report.damaged(
                    Location::Store,
                    format!(
                        "a stream head under {}, after the end of the heads",
                        record::shown_key(key)
                    ),
                );
                continue;
            }
            let head = (!plain).then(|| record::read_head(key, value));
            if let Some(Ok(head)) = head
                && head.link != record::head_link(&before)
            {
                report.damaged(
                    Location::Store,
                    format!(
                        "the stream head under {} does not follow the one under {} (a \
                         damaged key, or a head missing between them)",
                        record::shown_key(key),
                        record::shown_key(&before)
                    ),
                );
            }
            before = key.to_vec();
            if key == record::HEADS_END {
                ended = true;
                if let Some(Err(reason)) = head {
                    report.damaged(Location::Store, format!("the end of the heads: {reason}"));
                }
                continue;
            }
            let Some(stream) = std::str::from_utf8(key)
                .ok()
                .and_then(|s| StreamId::parse(s).ok())
            else {
                report.damaged(
                    Location::Store,
                    format!(
                        "a stream head under an invalid stream id {}",
                        record::shown_key(key)
                    ),
                );
                continue;
            };
            seen += 1;
            let read = match head {
                None => record::read_plain_head(value).ok_or_else(|| "not 16 bytes".to_owned()),
                Some(head) => head.map(|h| (h.version, h.position)),
            };
            let (version, position) = match read {
                Ok(read) => read,
                Err(reason) => {
                    report.damaged(Location::Head(stream), reason);
                    continue;
                }
            };
            let Some(expected) = expected else { continue };
            match expected.get(stream.as_str()) {
                Some(last) if (last.version, last.position) == (version, position) => {}
                found => report.damaged(
                    Location::Head(stream),
                    format!(
                        "says version {version} at position {position}; the log has {} as of \
                         the heads checkpoint at {heads_at}",
                        found.map_or("no event of it".to_owned(), |l| format!(
                            "version {} at position {}",
                            l.version, l.position
                        ))
                    ),
                ),
            }
        }
        if !ended && !plain {
            report.damaged(Location::Store, "the end of the stream heads is missing");
        }
        if let Some(expected) = expected
            && seen < expected.len()
        {
            report.damaged(
                Location::Store,
                format!(
                    "{} streams of the log before the heads checkpoint at {heads_at} have no \
                     stored head",
                    expected.len() - seen
                ),
            );
        }
    }

    fn verify_index(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        report: &mut VerifyReport,
        streams: &HashMap<String, Last>,
    ) {
        let mut counted: HashMap<String, u64> = HashMap::new();
        let iter = match self.inner.index.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("index: {e}")),
        };
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => return report.damaged(Location::Store, format!("index: {e}")),
            };
            report.index_entries += 1;
            let Some((stream, version)) = split_stream_key(key) else {
                report.damaged(
                    Location::Store,
                    format!(
                        "a stream-index key that is no stream and version: {}",
                        record::shown_key(key)
                    ),
                );
                continue;
            };
            let at = |position| Location::Event {
                stream: stream.clone(),
                version,
                position,
            };
            let Some(position) = record::read_position(value) else {
                report.damaged(at(None), "its stream-index entry is not 8 bytes");
                continue;
            };
            *counted.entry(stream.as_str().to_owned()).or_default() += 1;
            let found = self.inner.log.get(txn, &position);
            let points_at = match found {
                Ok(Some(value)) => record::decode_event(position, value)
                    .map(|e| (e.stream == stream.as_str(), e.version == version))
                    .ok(),
                _ => None,
            };
            if points_at != Some((true, true)) || version % record::BLOCK != 0 {
                report.damaged(
                    at(Some(position)),
                    "its stream-index entry points at a record that is not this event",
                );
            }
        }
        for (stream, last) in streams {
            let want = last.version / record::BLOCK;
            let have = counted.get(stream).copied().unwrap_or(0);
            if have < want
                && let Ok(stream) = StreamId::parse(stream.as_str())
            {
                report.damaged(
                    Location::Head(stream),
                    format!(
                        "the stream index has {have} of its {want} entries (one per {} events)",
                        record::BLOCK
                    ),
                );
            }
        }
    }

    fn verify_snapshots(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        report: &mut VerifyReport,
        streams: &HashMap<String, Last>,
    ) {
        let iter = match self.inner.snapshots.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("snapshots: {e}")),
        };
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => return report.damaged(Location::Store, format!("snapshots: {e}")),
            };
            report.snapshots += 1;
            let Some((stream, version)) = split_stream_key(key) else {
                report.damaged(
                    Location::Store,
                    format!(
                        "a snapshot key that is no stream and version: {}",
                        record::shown_key(key)
                    ),
                );
                continue;
            };
            let at = Location::Snapshot {
                stream: stream.clone(),
                version,
            };
            if let Err(reason) = record::decode_snapshot(key, value, self.inner.legacy) {
                report.damaged(at, reason);
            } else if streams
                .get(stream.as_str())
                .is_none_or(|l| l.version < version)
            {
                report.damaged(at, "the stream has no event at the snapshot's version");
            }
        }
    }

    fn verify_checkpoints(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        report: &mut VerifyReport,
        last: u64,
    ) {
        let iter = match self.inner.checkpoints.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("checkpoints: {e}")),
        };
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => return report.damaged(Location::Store, format!("checkpoints: {e}")),
            };
            report.checkpoints += 1;
            let at = Location::Checkpoint(String::from_utf8_lossy(key).into_owned());
            match record::read_position(value) {
                None => report.damaged(at, "not 8 bytes"),
                Some(position) if position > last => report.damaged(
                    at,
                    format!("at position {position}, past the log's end at {last}"),
                ),
                Some(_) => {}
            }
        }
    }

    fn verify_schemas(&self, txn: &RoTxn<'_, WithoutTls>, report: &mut VerifyReport) {
        let Some(db) = self.inner.schemas else {
            return;
        };
        let iter = match db.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("schemas: {e}")),
        };
        for item in iter {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => return report.damaged(Location::Store, format!("schemas: {e}")),
            };
            report.schemas += 1;
            if let Err(Fail::Corrupt { at, reason }) = schemas::decode(key, value) {
                report.damaged(at, reason);
            }
        }
    }

    fn verify_tables(&self, txn: &RoTxn<'_, WithoutTls>, report: &mut VerifyReport) {
        let iter = match self.inner.tables.iter(txn) {
            Ok(iter) => iter,
            Err(e) => return report.damaged(Location::Store, format!("tables: {e}")),
        };
        for item in iter {
            match item {
                Ok((key, _)) if key.contains(&0) => report.table_entries += 1,
                Ok((key, _)) => report.damaged(
                    Location::Table(String::from_utf8_lossy(key).into_owned()),
                    "a table key without the separator after the projection's name",
                ),
                Err(e) => return report.damaged(Location::Store, format!("tables: {e}")),
            }
        }
    }
}

/// The stream and version of a key written by `record::stream_key`.
fn split_stream_key(key: &[u8]) -> Option<(StreamId, u64)> {
    let split = key.len().checked_sub(9)?;
    let (stream, rest) = key.split_at(split);
    let (sep, version) = rest.split_first()?;
    if *sep != 0 {
        return None;
    }
    let stream = StreamId::parse(std::str::from_utf8(stream).ok()?).ok()?;
    Some((stream, u64::from_be_bytes(version.try_into().ok()?)))
}
