//! Where in a store something is: the [`Location`] that errors (and reports of damage) carry
//! as data. Its `Display` is the phrase messages use, the same for every backend.

use std::fmt;

use crate::event::stream::StreamId;

/// Where in a store an error happened: the record read or written. `Display` gives the
/// phrase error messages use (`event 32 of stream "acc-a"`, `the log record at position 5`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// An event of a stream: `event 3 of stream "acc-1"`, followed by ` (position 7)` when
    /// the error concerns where the global log holds it.
    Event {
        /// The stream.
        stream: StreamId,
        /// The event's version in the stream.
        version: u64,
        /// The event's position in the global log, when the error concerns it.
        position: Option<u64>,
    },
    /// The record at a position of the global log: `the log record at position 5`.
    Position(u64),
    /// What the store keeps of a stream's head (its version and last event):
    /// `the head of stream "acc-1"`.
    Head(StreamId),
    /// A snapshot: `snapshot 10 of stream "acc-1"`.
    Snapshot {
        /// The stream.
        stream: StreamId,
        /// The stream version the snapshot was taken at.
        version: u64,
    },
    /// The checkpoint of a projection: `the checkpoint of projection "balances"`.
    Checkpoint(String),
    /// The table of a projection with its checkpoint, written together:
    /// `the table and checkpoint of projection "balances"`.
    Table(String),
    /// One key of a projection's table: `the value of key "k" in table "balances"`.
    TableKey {
        /// The projection (the table's name).
        table: String,
        /// The key, without the table's prefix.
        key: Vec<u8>,
    },
    /// The recorded schemas of an aggregate: `the schemas of aggregate "account"`.
    Schema(String),
    /// The store as a whole (its environment, a sync, its own bookkeeping): `the store`.
    Store,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Event {
                stream,
                version,
                position,
            } => {
                write!(f, "event {version} of stream {stream:?}")?;
                match position {
                    Some(position) => write!(f, " (position {position})"),
                    None => Ok(()),
                }
            }
            Location::Position(position) => write!(f, "the log record at position {position}"),
            Location::Head(stream) => write!(f, "the head of stream {stream:?}"),
            Location::Snapshot { stream, version } => {
                write!(f, "snapshot {version} of stream {stream:?}")
            }
            Location::Checkpoint(name) => write!(f, "the checkpoint of projection {name:?}"),
            Location::Table(name) => write!(f, "the table and checkpoint of projection {name:?}"),
            Location::TableKey { table, key } => write!(
                f,
                "the value of key {:?} in table {table:?}",
                String::from_utf8_lossy(key)
            ),
            Location::Schema(name) => write!(f, "the schemas of aggregate {name:?}"),
            Location::Store => f.write_str("the store"),
        }
    }
}
