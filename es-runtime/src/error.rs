//! Error types. Each operation returns the narrowest error it can produce; [`enum@Error`] is the
//! superset for callers who handle them all alike.
//!
//! An error says where it happened as data, not prose: an [`AppendError`] or a
//! [`DecodeError`] names its [`StreamId`] (and version), a [`ReadError`] or a [`WriteError`]
//! carries a [`Location`] (an event, a log position, a stream head, a snapshot, a checkpoint, a
//! table key, or the store as a whole), whose `Display` is the phrase the message uses. Every
//! backend reports the same locations. Input the store cannot take (an over-long name, a key
//! over the backend's limit) is an `InvalidInput` error naming where it was to go, not a
//! storage failure.

use crate::event::expected_version::ExpectedVersion;
pub use crate::event::stream::InvalidStreamId;
use crate::event::stream::StreamId;
pub use crate::location::Location;

/// A boxed error from a storage backend (I/O, LMDB, a database driver).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The [`codec`](crate::codec) failed: a value that MessagePack cannot carry, or bytes that
/// are not the value wanted. The message is the MessagePack library's; its error is the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be written (its `Serialize` failed).
    #[error("{0}")]
    Encode(#[source] rmp_serde::encode::Error),
    /// The bytes do not decode as the wanted type.
    #[error("{0}")]
    Decode(#[source] rmp_serde::decode::Error),
    /// The bytes do not start with a MessagePack value.
    #[error("{0}")]
    Malformed(#[source] rmpv::decode::Error),
    /// The bytes hold more than one value.
    #[error("{count} trailing bytes after the payload")]
    TrailingBytes {
        /// How many bytes follow the first value.
        count: usize,
    },
}

/// A value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("could not encode: {0}")]
pub struct EncodeError(#[source] pub CodecError);

/// A stored event could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stored type name is not one the event type knows.
    #[error("event {version} of stream {stream:?} has unknown type {event_type:?}")]
    UnknownEventType {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// The stored type name.
        event_type: String,
    },
    /// The payload does not decode as the event type.
    #[error("event {version} of stream {stream:?} (type {event_type:?}) does not decode: {source}")]
    Payload {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// The stored type name.
        event_type: String,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },
    /// The stored type name is known, but not at the stored version of its shape: the event
    /// type has neither that shape nor an upcast from it.
    #[error(
        "event {version} of stream {stream:?} has type {event_type:?} at version \
         {event_version}, which the event type neither has nor upcasts"
    )]
    UnknownVersion {
        /// The stream.
        stream: StreamId,
        /// The event's version in its stream.
        version: u64,
        /// The stored type name.
        event_type: String,
        /// The stored version of the event's shape.
        event_version: u32,
    },
    /// The stored event was read as one event, but its upcast gives none or several: read it
    /// with `decode_all`.
    #[error(
        "event {version} of stream {stream:?} (type {event_type:?}) upcasts to {count} events, \
         not one; read it with `decode_all`"
    )]
    NotOneEvent {
        /// The stream.
        stream: StreamId,
        /// The event's version in its stream.
        version: u64,
        /// The stored type name.
        event_type: String,
        /// How many events the upcast gives.
        count: usize,
    },
    /// The metadata does not decode.
    #[error("metadata of event {version} of stream {stream:?} does not decode: {source}")]
    Metadata {
        /// The stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },
    /// The stored stream id is not a valid [`StreamId`]. It wins over any other flaw of the
    /// same event, since the others are reported by stream.
    #[error("event {version} is stored under an invalid stream id {stream:?}: {reason}")]
    StreamId {
        /// The stored id, as stored.
        stream: String,
        /// The event's version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl DecodeError {
    /// The event that does not decode; `None` when its stored stream id is not one.
    pub fn location(&self) -> Option<Location> {
        match self {
            DecodeError::UnknownEventType {
                stream, version, ..
            }
            | DecodeError::Payload {
                stream, version, ..
            }
            | DecodeError::UnknownVersion {
                stream, version, ..
            }
            | DecodeError::NotOneEvent {
                stream, version, ..
            }
            | DecodeError::Metadata {
                stream, version, ..
            } => Some(Location::Event {
                stream: stream.clone(),
                version: *version,
                position: None,
            }),
            DecodeError::StreamId { .. } => None,
        }
    }
}

/// An append failed. Nothing of the batch was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The stream's version is not what the writer expected.
    #[error(
        "wrong expected version for stream {stream:?}: expected {expected}, stream is at version {actual}"
    )]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version (0: no stream).
        actual: u64,
    },
    /// The store has reached its configured maximum size.
    #[error("the store is full ({limit} bytes) appending to stream {stream:?}")]
    StoreFull {
        /// The stream.
        stream: StreamId,
        /// The configured maximum size in bytes.
        limit: u64,
    },
    /// The backend failed (I/O, disk full, a closed connection...).
    #[error("appending to stream {stream:?} failed: {source}")]
    Storage {
        /// The stream.
        stream: StreamId,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The batch holds what the store cannot take (an event type name or metadata over the
    /// backend's limit).
    #[error("invalid append to stream {stream:?}: {reason}")]
    InvalidInput {
        /// The stream.
        stream: StreamId,
        /// What is wrong with the batch.
        reason: String,
    },
    /// The store was opened read-only.
    #[error("cannot append to stream {stream:?}: the store is open read-only")]
    ReadOnly {
        /// The stream.
        stream: StreamId,
    },
}

impl AppendError {
    /// The stream the append concerned.
    pub fn stream(&self) -> &StreamId {
        match self {
            AppendError::WrongExpectedVersion { stream, .. }
            | AppendError::StoreFull { stream, .. }
            | AppendError::Storage { stream, .. }
            | AppendError::InvalidInput { stream, .. }
            | AppendError::ReadOnly { stream } => stream,
        }
    }

    /// Splits off a version conflict, the one failure a writer resolves by reading again:
    /// `Err(actual)`, the stream's version, for [`AppendError::WrongExpectedVersion`].
    pub(crate) fn into_failure(self) -> Result<AppendFailure, u64> {
        match self {
            AppendError::WrongExpectedVersion { actual, .. } => Err(actual),
            AppendError::StoreFull { stream, limit } => {
                Ok(AppendFailure::StoreFull { stream, limit })
            }
            AppendError::Storage { stream, source } => {
                Ok(AppendFailure::Storage { stream, source })
            }
            AppendError::InvalidInput { stream, reason } => {
                Ok(AppendFailure::InvalidInput { stream, reason })
            }
            AppendError::ReadOnly { stream } => Ok(AppendFailure::ReadOnly { stream }),
        }
    }
}

/// An append failed for another reason than the stream's version: an [`AppendError`] without
/// [`WrongExpectedVersion`](AppendError::WrongExpectedVersion), for callers that resolve
/// version conflicts themselves (the [`Host`](crate::Host) retries them). Nothing of the batch
/// was written. Each variant is the [`AppendError`] variant of the same name, with the same
/// message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendFailure {
    /// The store has reached its configured maximum size.
    #[error("the store is full ({limit} bytes) appending to stream {stream:?}")]
    StoreFull {
        /// The stream.
        stream: StreamId,
        /// The configured maximum size in bytes.
        limit: u64,
    },
    /// The backend failed (I/O, disk full, a closed connection...).
    #[error("appending to stream {stream:?} failed: {source}")]
    Storage {
        /// The stream.
        stream: StreamId,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The batch holds what the store cannot take.
    #[error("invalid append to stream {stream:?}: {reason}")]
    InvalidInput {
        /// The stream.
        stream: StreamId,
        /// What is wrong with the batch.
        reason: String,
    },
    /// The store was opened read-only.
    #[error("cannot append to stream {stream:?}: the store is open read-only")]
    ReadOnly {
        /// The stream.
        stream: StreamId,
    },
}

impl AppendFailure {
    /// The stream the append concerned.
    pub fn stream(&self) -> &StreamId {
        match self {
            AppendFailure::StoreFull { stream, .. }
            | AppendFailure::Storage { stream, .. }
            | AppendFailure::InvalidInput { stream, .. }
            | AppendFailure::ReadOnly { stream } => stream,
        }
    }
}

impl From<AppendFailure> for AppendError {
    fn from(failure: AppendFailure) -> Self {
        match failure {
            AppendFailure::StoreFull { stream, limit } => AppendError::StoreFull { stream, limit },
            AppendFailure::Storage { stream, source } => AppendError::Storage { stream, source },
            AppendFailure::InvalidInput { stream, reason } => {
                AppendError::InvalidInput { stream, reason }
            }
            AppendFailure::ReadOnly { stream } => AppendError::ReadOnly { stream },
        }
    }
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Stored bytes are not in the format the store wrote.
    #[error("corrupt record {at}: {reason}")]
    Corrupt {
        /// The record.
        at: Location,
        /// What is wrong with it.
        reason: String,
    },
    /// The read asked for what cannot be stored (a checkpoint or projection name the store
    /// does not take).
    #[error("invalid input reading {at}: {reason}")]
    InvalidInput {
        /// What was to be read.
        at: Location,
        /// What is wrong with the input.
        reason: String,
    },
    /// Every reader slot of the store stayed taken for as long as a read waits for one: more
    /// reads at once, across every process using the store, than its reader table holds
    /// ([`LmdbOptions::max_readers`](crate::LmdbOptions::max_readers)).
    #[error(
        "all {slots} reader slots of the store stayed taken for {waited:?}; raise \
         LmdbOptions::max_readers or read from fewer threads at once"
    )]
    ReadersFull {
        /// The slots of the store's reader table.
        slots: u32,
        /// How long the read waited for a slot.
        waited: std::time::Duration,
    },
    /// The backend failed.
    #[error("reading failed: {0}")]
    Storage(#[source] BoxError),
}

impl ReadError {
    /// The record the error concerns, when it concerns one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ReadError::Corrupt { at, .. } | ReadError::InvalidInput { at, .. } => Some(at),
            ReadError::ReadersFull { .. } | ReadError::Storage(_) => None,
        }
    }
}

/// Writing a snapshot or a checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The store has reached its configured maximum size.
    #[error("the store is full ({limit} bytes) writing {at}")]
    StoreFull {
        /// What was being written.
        at: Location,
        /// The configured maximum size in bytes.
        limit: u64,
    },
    /// The backend failed.
    #[error("writing {at} failed: {source}")]
    Storage {
        /// What was being written.
        at: Location,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The write holds what the store cannot take (a bad checkpoint or projection name, a
    /// table key over the backend's limit, a value that does not encode).
    #[error("invalid input writing {at}: {reason}")]
    InvalidInput {
        /// What was to be written.
        at: Location,
        /// What is wrong with the input.
        reason: String,
    },
    /// The store was opened read-only.
    #[error("cannot write {at}: the store is open read-only")]
    ReadOnly {
        /// What was to be written.
        at: Location,
    },
}

impl WriteError {
    /// What was being written.
    pub fn location(&self) -> &Location {
        match self {
            WriteError::StoreFull { at, .. }
            | WriteError::Storage { at, .. }
            | WriteError::InvalidInput { at, .. }
            | WriteError::ReadOnly { at } => at,
        }
    }
}

/// Every error of this crate, for callers who handle them alike.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`InvalidStreamId`].
    #[error(transparent)]
    InvalidStreamId(#[from] InvalidStreamId),
    /// See [`CodecError`].
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// See [`EncodeError`].
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// See [`DecodeError`].
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// See [`AppendError`].
    #[error(transparent)]
    Append(#[from] AppendError),
    /// See [`ReadError`].
    #[error(transparent)]
    Read(#[from] ReadError),
    /// See [`WriteError`].
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Opening a store failed.
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl From<AppendFailure> for Error {
    fn from(failure: AppendFailure) -> Self {
        Error::Append(failure.into())
    }
}

/// Opening a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store was written by a newer (or unknown) format version.
    #[error("the store at {path} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// The store's directory.
        path: String,
        /// The format version found.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },
    /// The options name what cannot be opened (a bad schema name, a malformed connection
    /// string); nothing was opened.
    #[error("invalid options opening the store at {path}: {reason}")]
    InvalidInput {
        /// The store's directory or address, as far as the options name it.
        path: String,
        /// What is wrong with the options.
        reason: String,
    },
    /// The data file is shorter than the pages LMDB's meta page says are in use: it was
    /// truncated (a failed copy, a full disk during a restore). Nothing was mapped or written.
    #[error(
        "the data file of the store at {path} is truncated: it has {length} bytes, and its \
         meta page says its pages take {required} bytes"
    )]
    Truncated {
        /// The store's directory.
        path: String,
        /// The data file's length in bytes.
        length: u64,
        /// The length its meta page says it must have at least.
        required: u64,
    },
    /// The data file is damaged where it is checked before opening (its meta pages), or a
    /// directory that held a store has lost its data file or has an empty one. Nothing was
    /// mapped or written.
    #[error("the store at {path} cannot be opened: {reason}")]
    Damaged {
        /// The store's directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A read-only open cannot read the store as it is: there is no store in the directory,
    /// it needs an upgrade that only a writable open runs, or its lock file cannot be written
    /// while another process has the store open. Nothing was written.
    #[error("the store at {path} cannot be opened read-only: {reason}")]
    ReadOnly {
        /// The store's directory.
        path: String,
        /// Why, and what would let it open.
        reason: String,
    },
    /// The path is not a directory (a regular file, say): a store is a directory.
    #[error("the store at {path} cannot be opened: it is not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// Another process has the data file open through a lock file that is no longer the
    /// directory's `lock.mdb` (it was deleted or replaced while the store was open): opening
    /// it would make a second writer that LMDB's writer lock does not keep out, and lose
    /// commits. Nothing was written. Stop every process using the store, then open it again.
    #[error(
        "the store at {path} is in use by another process through a lock file that was \
         deleted or replaced (lock.mdb is not the one it holds); stop every process using \
         the store before opening it again"
    )]
    LockFileReplaced {
        /// The store's directory.
        path: String,
    },
    /// The backend failed to open (missing directory, permissions, a corrupt file, a
    /// directory this process already has a store open on...).
    #[error("opening the store at {path} failed: {source}")]
    Storage {
        /// The store's directory or address.
        path: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_as_the_messages_name_them() {
        let stream = StreamId::parse("acc-a").unwrap();
        let cases = [
            (
                Location::Event {
                    stream: stream.clone(),
                    version: 32,
                    position: None,
                },
                r#"event 32 of stream "acc-a""#,
            ),
            (
                Location::Event {
                    stream: stream.clone(),
                    version: 2,
                    position: Some(7),
                },
                r#"event 2 of stream "acc-a" (position 7)"#,
            ),
            (Location::Position(5), "the log record at position 5"),
            (
                Location::Head(stream.clone()),
                r#"the head of stream "acc-a""#,
            ),
            (
                Location::Snapshot {
                    stream,
                    version: 10,
                },
                r#"snapshot 10 of stream "acc-a""#,
            ),
            (
                Location::Checkpoint("x".to_owned()),
                r#"the checkpoint of projection "x""#,
            ),
            (
                Location::Table("x".to_owned()),
                r#"the table and checkpoint of projection "x""#,
            ),
            (
                Location::TableKey {
                    table: "x".to_owned(),
                    key: b"k".to_vec(),
                },
                r#"the value of key "k" in table "x""#,
            ),
            (Location::Store, "the store"),
        ];
        for (location, prose) in cases {
            assert_eq!(location.to_string(), prose);
        }
    }

    #[test]
    fn a_version_conflict_is_no_append_failure() {
        let stream = StreamId::parse("acc-1").unwrap();
        let conflict = AppendError::WrongExpectedVersion {
            stream: stream.clone(),
            expected: ExpectedVersion::NoStream,
            actual: 3,
        };
        assert_eq!(conflict.into_failure().unwrap_err(), 3);
        let full = AppendError::StoreFull { stream, limit: 9 };
        let message = full.to_string();
        let failure = full.into_failure().unwrap();
        assert_eq!(failure.to_string(), message);
        assert_eq!(failure.stream(), "acc-1");
        assert!(matches!(
            Error::from(failure),
            Error::Append(AppendError::StoreFull { limit: 9, .. })
        ));
    }
}
