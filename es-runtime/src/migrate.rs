//! Store-to-store migration: copy every event of one [`EventStore`] into another, in
//! batches, optionally through a [`Transform`], then check that the copy adds up.
//!
//! The rule: the target ends up holding the source's log, in the source's order, each event
//! with its id, timestamp, metadata, type, version of shape and payload, at the next version
//! of its target stream and the next position of the target's log (for a copy without a
//! transform into an empty store, the same versions and positions as the source). Each batch
//! is one [`import`](EventStore::import): one transaction. Nothing is lost silently: the
//! migration ends with a count check (events read = events written + dropped − added, the
//! target's head where the writes put it) and, unless turned off, re-reads what it wrote;
//! anything that does not hold is a [`MigrateError`]. The recorded schemas (each aggregate's
//! history, revisions and times kept) go along unless turned off.
//!
//! Any store to any store: LMDB → PostgreSQL when one machine is no longer enough, PostgreSQL
//! → LMDB, LMDB → LMDB to compact or to rewrite events at their current shape, memory in
//! tests.
//!
//! ```
//! use es_runtime::migrate::{self, Migration};
//! use es_runtime::{EventStore, ExpectedVersion, MemoryStore, NewEvent, StreamId};
//!
//! let source = MemoryStore::new();
//! let stream = StreamId::new("account", 1)?;
//! source.append(&stream, ExpectedVersion::NoStream, vec![NewEvent::raw("Opened", vec![0x80])])?;
//! source.save_checkpoint("balances", 1)?;
//!
//! let target = MemoryStore::new();
//! let report = Migration::new(&source, &target)
//!     .batch_size(500)
//!     .checkpoints(true)
//!     .schemas(true)
//!     .progress(|p| eprintln!("{} of {} events", p.read, p.total))
//!     .run()?;
//! assert_eq!((report.read, report.written), (1, 1));
//! assert_eq!(target.read_all(1, 10)?, source.read_all(1, 10)?);
//! assert_eq!(target.load_checkpoint("balances")?, Some(1));
//!
//! // A non-empty target is refused, unless appending is asked for.
//! assert!(matches!(
//!     migrate::copy(&source, &target),
//!     Err(migrate::MigrateError::TargetNotEmpty { head: 1 })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Moving an LMDB store to PostgreSQL (feature `postgres`):
//!
//! ```no_run
//! # #[cfg(all(feature = "lmdb", feature = "postgres"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use es_runtime::migrate::Migration;
//! use es_runtime::{LmdbOptions, PostgresOptions};
//!
//! let source = LmdbOptions::new().read_only(true).open("data/bank")?;
//! let target = PostgresOptions::new("host=/run/postgresql dbname=bank").open()?;
//! let report = Migration::new(&source, &target).run()?;
//! println!("{} events copied to {}", report.written, target.describe());
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "lmdb", feature = "postgres")))]
//! # fn main() {}
//! ```

#[cfg(feature = "progress")]
mod progress;
mod transform;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::error::{AppendError, BoxError, ReadError, WriteError};
use crate::event::{RecordedEvent, StreamId};
use crate::store::EventStore;

#[cfg(feature = "progress")]
pub use self::progress::TerminalProgress;
pub use self::transform::{Map, Then, Transform, Upcaster, derived_id, map, upcast};

/// How far a migration has got, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Events read from the source so far.
    pub read: u64,
    /// Events in the source when the migration started: its head position.
    pub total: u64,
    /// Events written to the target so far.
    pub written: u64,
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateReport {
    /// Events read from the source.
    pub read: u64,
    /// Events written to the target.
    pub written: u64,
    /// Source events the transform dropped (answered with no event).
    pub dropped: u64,
    /// Events the transform added by splitting (beyond the first of each split).
    pub added: u64,
    /// Streams of the target written to.
    pub streams: u64,
    /// The target's position of the first event written (its head + 1 before the migration).
    pub first_position: u64,
    /// The target's head after the migration.
    pub last_position: u64,
    /// Snapshots copied.
    pub snapshots_copied: u64,
    /// Snapshots of the source not copied, their streams having been changed by the
    /// transform (events dropped, added, renamed or at other versions).
    pub snapshots_skipped: u64,
    /// Checkpoints copied.
    pub checkpoints_copied: u64,
    /// Recorded schemas copied (see [`Migration::schemas`]): the target's new records.
    pub schemas_copied: u64,
    /// Whether the events written were read back from the target and found as written.
    pub verified: bool,
    /// How long the migration took.
    pub elapsed: Duration,
}

/// Which count of a migration did not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Count {
    /// The events read from the source, against its head when the migration started.
    SourceEvents,
    /// Events written + dropped − added, against the events read.
    Balance,
    /// The target's head, against its head before plus the events written.
    TargetHead,
    /// The events read back from the target, against the events written.
    ReadBack,
    /// A digest of the events read back from the target (envelopes and payloads), against
    /// the digest of those written.
    Content,
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Count::SourceEvents => "events read from the source",
            Count::Balance => "events written + dropped - added",
            Count::TargetHead => "the target's head",
            Count::ReadBack => "events read back from the target",
            Count::Content => "events read back as written",
        })
    }
}

/// A migration failed. Batches imported before the failure stay in the target (each batch is
/// all or nothing); the error says where it stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target holds events, and appending to it was not asked for
    /// ([`Migration::append`]). Nothing was written.
    #[error(
        "the target store is not empty (its log ends at position {head}); migrate into an \
         empty store, or opt in to appending"
    )]
    TargetNotEmpty {
        /// The target's head position.
        head: u64,
    },
    /// Reading the source failed.
    #[error("reading the source store failed: {0}")]
    Source(#[source] ReadError),
    /// Reading the target failed.
    #[error("reading the target store failed: {0}")]
    Target(#[source] ReadError),
    /// The transform failed on an event of the source.
    #[error(
        "the transform failed on event {version} of stream {stream:?} (source position \
         {position}): {source}"
    )]
    Transform {
        /// The event's stream in the source.
        stream: StreamId,
        /// Its version in the source.
        version: u64,
        /// Its position in the source.
        position: u64,
        /// The transform's error.
        #[source]
        source: BoxError,
    },
    /// The target refused or failed a batch of events (nothing of that batch was written).
    #[error("writing events to the target store failed (after {written} events): {source}")]
    Import {
        /// The events written by the batches before.
        written: u64,
        /// The target's error.
        #[source]
        source: AppendError,
    },
    /// Writing a snapshot or a checkpoint to the target failed.
    #[error("writing to the target store failed: {0}")]
    Write(#[source] WriteError),
    /// A count of the final check does not add up.
    #[error("the migration does not add up: {count} is {found}, expected {expected}")]
    Mismatch {
        /// Which count.
        count: Count,
        /// What it should be.
        expected: u64,
        /// What it is.
        found: u64,
    },
}

type Progressing<'a> = Box<dyn FnMut(Progress) + 'a>;

/// A migration from one store into another, built with options and then [`run`](Self::run).
///
/// By default: batches of 1000 events, every event kept, snapshots and recorded schemas
/// carried, checkpoints not carried (see [`checkpoints`](Self::checkpoints)), an empty target
/// required, the written events read back at the end.
#[must_use = "a migration does nothing until it is run"]
pub struct Migration<'a> {
    source: &'a dyn EventStore,
    target: &'a dyn EventStore,
    batch: usize,
    transform: Option<Box<dyn Transform + 'a>>,
    snapshots: bool,
    checkpoints: bool,
    schemas: bool,
    append: bool,
    verify: bool,
    progress: Option<Progressing<'a>>,
}

impl std::fmt::Debug for Migration<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("batch", &self.batch)
            .field("transform", &self.transform.is_some())
            .field("snapshots", &self.snapshots)
            .field("checkpoints", &self.checkpoints)
            .field("schemas", &self.schemas)
            .field("append", &self.append)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// Copies every event, snapshot and nothing else of `source` into the empty `target`: a
/// [`Migration`] with its defaults.
pub fn copy(
    source: &dyn EventStore,
    target: &dyn EventStore,
) -> Result<MigrateReport, MigrateError> {
    Migration::new(source, target).run()
}

/// The digest of what an event is in the target, position aside.
fn digest(hasher: &mut impl Hasher, e: &RecordedEvent) {
    e.event_id.hash(hasher);
    e.stream.as_str().hash(hasher);
    e.version.hash(hasher);
    e.event_type.hash(hasher);
    e.event_version.hash(hasher);
    e.timestamp.hash(hasher);
    e.metadata.correlation_id.hash(hasher);
    e.metadata.causation_id.hash(hasher);
    e.metadata.user.hash(hasher);
    e.payload.hash(hasher);
}

fn digest_of(e: &RecordedEvent) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    digest(&mut hasher, e);
    hasher.finish()
}

/// What the migration knows of a source stream: whether every event of it went to the same
/// stream at the same version, so that its snapshots still hold in the target.
struct SourceStream {
    id: StreamId,
    unchanged: bool,
}

impl<'a> Migration<'a> {
    /// A migration of everything in `source` into `target`.
    pub fn new(source: &'a dyn EventStore, target: &'a dyn EventStore) -> Self {
        Migration {
            source,
            target,
            batch: 1000,
            transform: None,
            snapshots: true,
            checkpoints: false,
            schemas: true,
            append: false,
            verify: true,
            progress: None,
        }
    }

    /// Events per batch (default 1000, at least 1): read together, and written in one
    /// transaction of the target.
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// Passes every event through `transform` (see [`Transform`]). Replaces any transform
    /// given before: chain them with [`Transform::then`].
    pub fn transform(mut self, transform: impl Transform + 'a) -> Self {
        self.transform = Some(Box::new(transform));
        self
    }

    /// Passes every event through a closure: see [`Transform`] and [`map`].
    pub fn transform_with<F>(self, f: F) -> Self
    where
        F: FnMut(RecordedEvent) -> Result<Vec<RecordedEvent>, BoxError> + 'a,
    {
        self.transform(map(f))
    }

    /// Whether to copy the snapshots (default: yes) of the streams whose events all keep
    /// their stream and version in the target. A stream the transform changed (dropped,
    /// added or renamed events) has its snapshots skipped and counted in
    /// [`MigrateReport::snapshots_skipped`]. Turn this off when a transform changes what
    /// the events mean.
    pub fn snapshots(mut self, carry: bool) -> Self {
        self.snapshots = carry;
        self
    }

    /// Whether to copy the projection checkpoints (default: no), each moved to the target's
    /// position of the last event it covered.
    ///
    /// A checkpoint says its read model has applied the events up to it: carry checkpoints
    /// only when the read models move with the store (or are kept elsewhere, unchanged).
    /// Left behind, projections rebuild from the first event in the target, which is always
    /// right. The exactly-once tables of an LMDB store are not copied.
    pub fn checkpoints(mut self, carry: bool) -> Self {
        self.checkpoints = carry;
        self
    }

    /// Whether to copy the recorded schemas (default: yes): every aggregate's schema history
    /// ([`EventStore::schemas`]), each record with its revision and the time it was recorded,
    /// taken in by the target with [`EventStore::import_schemas`] in one transaction after
    /// the events. Records the target holds already are passed over; a target whose history
    /// of an aggregate differs refuses them all, found before any event is written
    /// ([`MigrateError::Write`]).
    ///
    /// The history says which shapes of each aggregate wrote the events, so it moves with
    /// them; after an [`upcast`] transform, a host of the current code records its schema as
    /// the next revision when built on the target.
    pub fn schemas(mut self, carry: bool) -> Self {
        self.schemas = carry;
        self
    }

    /// Whether a target that holds events already is written to (default: no, it is refused
    /// with [`MigrateError::TargetNotEmpty`]). Appended, a stream that exists in both
    /// continues after the target's events, and its snapshots are not copied.
    pub fn append(mut self, allow: bool) -> Self {
        self.append = allow;
        self
    }

    /// Whether to read back the events written and compare them, envelope and payload, with
    /// what was written (default: yes). The counts are checked either way.
    pub fn verify(mut self, read_back: bool) -> Self {
        self.verify = read_back;
        self
    }

    /// Calls `report` after each batch with how far the migration has got.
    pub fn progress(mut self, report: impl FnMut(Progress) + 'a) -> Self {
        self.progress = Some(Box::new(report));
        self
    }

    /// Draws a progress bar on standard error when it is a terminal (nothing otherwise),
    /// instead of any [`progress`](Self::progress) callback. Feature `progress`.
    #[cfg(feature = "progress")]
    pub fn progress_bar(self) -> Self {
        let mut bar = TerminalProgress::new("migrating");
        self.progress(move |p| bar.update(p))
    }

    /// Runs the migration. See the [module](self) docs for what it keeps and checks.
    pub fn run(mut self) -> Result<MigrateReport, MigrateError> {
        let started = Instant::now();
        let total = self.source.head_position().map_err(MigrateError::Source)?;
        let target_head = self.target.head_position().map_err(MigrateError::Target)?;
        if target_head > 0 && !self.append {
            return Err(MigrateError::TargetNotEmpty { head: target_head });
        }
        // The schema history, checked against the target's before any event is written.
        let schemas = if self.schemas {
            let records = self.source.schemas().map_err(MigrateError::Source)?;
            let held = self.target.schemas().map_err(MigrateError::Target)?;
            crate::store::schemas::to_import(&held, records.clone())
                .map_err(MigrateError::Write)?;
            Some(records)
        } else {
            None
        };
        // Checkpoints by position, each to be given the target's position of the last event
        // derived from the source's events up to it.
        let mut checkpoints = if self.checkpoints {
            let mut all = self.source.checkpoints().map_err(MigrateError::Source)?;
            all.sort_by_key(|(_, p)| std::cmp::Reverse(*p));
            all
        } else {
            Vec::new()
        };
        let mut moved_checkpoints = Vec::with_capacity(checkpoints.len());

        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let mut sources: Vec<SourceStream> = Vec::new();
        let mut source_index: HashMap<StreamId, usize> = HashMap::new();
        let mut written_digests = std::hash::DefaultHasher::new();
        let (mut read, mut written, mut dropped, mut added) = (0u64, 0u64, 0u64, 0u64);
        let mut from = 1;
        while from <= total {
            let want = usize::try_from(total - from + 1).map_or(self.batch, |n| n.min(self.batch));
            let batch = self
                .source
                .read_all(from, want)
                .map_err(MigrateError::Source)?;
            if batch.is_empty() {
                break;
            }
            let mut out: Vec<RecordedEvent> = Vec::with_capacity(batch.len());
            for event in batch {
                if event.position > total {
                    from = u64::MAX;
                    break;
                }
                from = event.position + 1;
                read += 1;
                let last_target = target_head + written + out.len() as u64;
                while checkpoints.last().is_some_and(|(_, p)| *p < event.position) {
                    let (name, _) = checkpoints.pop().expect("checked");
                    moved_checkpoints.push((name, last_target));
                }
                let (stream, version, position) =
                    (event.stream.clone(), event.version, event.position);
                let produced = match &mut self.transform {
                    None => vec![event],
                    Some(t) => t
                        .transform(event)
                        .map_err(|source| MigrateError::Transform {
                            stream: stream.clone(),
                            version,
                            position,
                            source,
                        })?,
                };
                match produced.len() {
                    0 => dropped += 1,
                    n => added += n as u64 - 1,
                }
                let mut unchanged = produced.len() == 1;
                for mut e in produced {
                    let current = match versions.get(&e.stream) {
                        Some(&v) => v,
                        None if target_head == 0 => 0,
                        None => self
                            .target
                            .stream_version(&e.stream)
                            .map_err(MigrateError::Target)?,
                    };
                    e.version = current + 1;
                    unchanged &= e.stream == stream && e.version == version;
                    versions.insert(e.stream.clone(), e.version);
                    out.push(e);
                }
                match source_index.get(&stream) {
                    Some(&i) => sources[i].unchanged &= unchanged,
                    None => {
                        source_index.insert(stream.clone(), sources.len());
                        sources.push(SourceStream {
                            id: stream,
                            unchanged,
                        });
                    }
                }
            }
            if !out.is_empty() {
                for e in &out {
                    written_digests.write_u64(digest_of(e));
                }
                let count = out.len() as u64;
                self.target
                    .import(out)
                    .map_err(|source| MigrateError::Import { written, source })?;
                written += count;
            }
            if let Some(report) = &mut self.progress {
                report(Progress {
                    read,
                    total,
                    written,
                });
            }
        }
        let last_position = target_head + written;
        for (name, _) in checkpoints.drain(..) {
            moved_checkpoints.push((name, last_position));
        }

        // The counts.
        let mismatch = |count, expected, found| {
            (expected != found).then_some(MigrateError::Mismatch {
                count,
                expected,
                found,
            })
        };
        if let Some(e) = mismatch(Count::SourceEvents, total, read) {
            return Err(e);
        }
        if let Some(e) = mismatch(Count::Balance, read, written + dropped - added) {
            return Err(e);
        }
        let head = self.target.head_position().map_err(MigrateError::Target)?;
        if let Some(e) = mismatch(Count::TargetHead, last_position, head) {
            return Err(e);
        }
        if self.verify {
            self.read_back(target_head, written, written_digests.finish())?;
        }

        let (mut snapshots_copied, mut snapshots_skipped) = (0, 0);
        if self.snapshots {
            for s in &sources {
                let snapshots = self.source.snapshots(&s.id).map_err(MigrateError::Source)?;
                if !s.unchanged {
                    snapshots_skipped += snapshots.len() as u64;
                    continue;
                }
                for snapshot in snapshots {
                    self.target
                        .save_snapshot(&s.id, snapshot, usize::MAX)
                        .map_err(MigrateError::Write)?;
                    snapshots_copied += 1;
                }
            }
        }
        let schemas_copied = match schemas {
            Some(records) => self
                .target
                .import_schemas(records)
                .map_err(MigrateError::Write)?,
            None => 0,
        };
        let checkpoints_copied = moved_checkpoints.len() as u64;
        for (name, position) in moved_checkpoints {
            self.target
                .save_checkpoint(&name, position)
                .map_err(MigrateError::Write)?;
        }
        if let Some(report) = &mut self.progress {
            report(Progress {
                read,
                total,
                written,
            });
        }
        Ok(MigrateReport {
            read,
            written,
            dropped,
            added,
            streams: versions.len() as u64,
            first_position: target_head + 1,
            last_position,
            snapshots_copied,
            snapshots_skipped,
            checkpoints_copied,
            schemas_copied,
            verified: self.verify,
            elapsed: started.elapsed(),
        })
    }

    /// Reads the `written` events after `target_head` back from the target and checks them
    /// against the digest of what was written.
    fn read_back(&self, target_head: u64, written: u64, expected: u64) -> Result<(), MigrateError> {
        let mut hasher = std::hash::DefaultHasher::new();
        let mut found = 0u64;
        let mut from = target_head + 1;
        let end = target_head + written;
        while from <= end {
            let want = usize::try_from(end - from + 1).map_or(self.batch, |n| n.min(self.batch));
            let batch = self
                .target
                .read_all(from, want)
                .map_err(MigrateError::Target)?;
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                if e.position > end {
                    break;
                }
                found += 1;
                hasher.write_u64(digest_of(e));
                from = e.position + 1;
            }
        }
        if found != written {
            return Err(MigrateError::Mismatch {
                count: Count::ReadBack,
                expected: written,
                found,
            });
        }
        if hasher.finish() != expected {
            return Err(MigrateError::Mismatch {
                count: Count::Content,
                expected,
                found: hasher.finish(),
            });
        }
        Ok(())
    }
}
