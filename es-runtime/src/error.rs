//! Error types. Each operation returns the narrowest error it can produce; [`enum@Error`] is the
//! superset for callers who handle them all alike.

use crate::event::expected_version::ExpectedVersion;
pub use crate::event::stream::InvalidStreamId;

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
        stream: String,
        /// The event's version.
        version: u64,
        /// The stored type name.
        event_type: String,
    },
    /// The payload does not decode as the event type.
    #[error("event {version} of stream {stream:?} (type {event_type:?}) does not decode: {source}")]
    Payload {
        /// The stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// The stored type name.
        event_type: String,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },
    /// The metadata does not decode.
    #[error("metadata of event {version} of stream {stream:?} does not decode: {source}")]
    Metadata {
        /// The stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// The decoder's error.
        #[source]
        source: CodecError,
    },
    /// The stored stream id is not a valid [`StreamId`](crate::StreamId).
    #[error("event {version} is stored under an invalid stream id {stream:?}: {reason}")]
    StreamId {
        /// The stored id.
        stream: String,
        /// The event's version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
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
        stream: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version (0: no stream).
        actual: u64,
    },
    /// The store has reached its configured maximum size.
    #[error("the store is full ({limit} bytes) appending to stream {stream:?}")]
    StoreFull {
        /// The stream.
        stream: String,
        /// The configured maximum size in bytes.
        limit: u64,
    },
    /// The backend failed (I/O, disk full, a closed connection...).
    #[error("appending to stream {stream:?} failed: {source}")]
    Storage {
        /// The stream.
        stream: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl AppendError {
    /// The stream the append concerned.
    pub fn stream(&self) -> &str {
        match self {
            AppendError::WrongExpectedVersion { stream, .. }
            | AppendError::StoreFull { stream, .. }
            | AppendError::Storage { stream, .. } => stream,
        }
    }
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Stored bytes are not in the format the store wrote.
    #[error("corrupt record {what}: {reason}")]
    Corrupt {
        /// Which record (stream and version, or global position).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed.
    #[error("reading failed: {0}")]
    Storage(#[source] BoxError),
}

/// Writing a snapshot or a checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The store has reached its configured maximum size.
    #[error("the store is full ({limit} bytes) writing {what}")]
    StoreFull {
        /// What was being written.
        what: String,
        /// The configured maximum size in bytes.
        limit: u64,
    },
    /// The backend failed.
    #[error("writing {what} failed: {source}")]
    Storage {
        /// What was being written.
        what: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
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
    /// The backend failed to open (missing directory, permissions, a corrupt file...).
    #[error("opening the store at {path} failed: {source}")]
    Storage {
        /// The store's directory or address.
        path: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}
