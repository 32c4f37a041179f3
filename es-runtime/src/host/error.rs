//! The errors of the host: [`ExecuteError`] for commands, [`LoadError`] for loading an instance.

use std::fmt;

use crate::error::{AppendFailure, DecodeError, EncodeError, InvalidStreamId, ReadError};
use crate::event::StreamId;

/// Where in a command's run domain code panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// In [`Aggregate::handle_with`](crate::Aggregate::handle_with) (which calls
    /// [`handle`](crate::Aggregate::handle) unless the aggregate overrides it): nothing was
    /// stored.
    Handle,
    /// In [`Aggregate::apply_ref`](crate::Aggregate::apply_ref) (which calls
    /// [`apply`](crate::Aggregate::apply) unless the aggregate overrides it) after the command's
    /// events were stored.
    /// The events are in the stream; the instance was dropped and is rebuilt from the store on
    /// its next use.
    Apply,
    /// In the `Serialize` of one of the command's events, before they were stored: nothing
    /// was stored.
    Encode,
    /// In the store or the host itself, for a command run by
    /// [`Host::execute_async`](crate::Host::execute_async) (a blocking
    /// [`Host::execute`](crate::Host::execute) lets such a panic reach its caller).
    Store,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Handle => "handling the command",
            Phase::Apply => "applying the stored events",
            Phase::Encode => "encoding the command's events",
            Phase::Store => "running the command in the store or the host",
        })
    }
}

/// Loading an aggregate instance (its latest snapshot, then the tail of its stream) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The aggregate id does not make a valid stream id.
    #[error(transparent)]
    InvalidStreamId(#[from] InvalidStreamId),
    /// The store could not be read.
    #[error("loading stream {stream:?} failed: {source}")]
    Read {
        /// The stream.
        stream: StreamId,
        /// The store's error.
        #[source]
        source: ReadError,
    },
    /// A stored event does not decode as the aggregate's event type (the error names the
    /// stream and version).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Domain code panicked while loading: [`Aggregate::apply`](crate::Aggregate::apply) or
    /// the event's `Deserialize` while replaying an event, or the state's `Default` (version 0).
    #[error("replaying event {version} of stream {stream:?} panicked: {message}")]
    Panicked {
        /// The stream.
        stream: StreamId,
        /// The version of the event being replayed (0: making the empty state).
        version: u64,
        /// The panic's message.
        message: String,
    },
}

/// A command failed. Unless said otherwise, nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate refused the command (its own error).
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    /// The stream kept changing under the command (another host or process wrote it): the
    /// host reloaded and retried `attempts - 1` times, then gave up.
    #[error("stream {stream:?} changed concurrently; gave up after {attempts} attempts")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// How many times the command was run.
        attempts: u32,
    },
    /// Domain code panicked. The instance was dropped; the host and every other aggregate
    /// carry on. With [`Phase::Apply`] the command's events were stored.
    #[error("stream {stream:?} panicked while {phase}: {message}")]
    Panicked {
        /// The stream.
        stream: StreamId,
        /// Where it panicked.
        phase: Phase,
        /// The panic's message.
        message: String,
    },
    /// The instance could not be loaded, or the aggregate id does not make a valid stream id
    /// ([`LoadError::InvalidStreamId`]).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An event the command emitted could not be encoded.
    #[error("encoding an event for stream {stream:?} failed: {source}")]
    Encode {
        /// The stream.
        stream: StreamId,
        /// The codec's error.
        #[source]
        source: EncodeError,
    },
    /// The store refused the append (full, I/O...). A version conflict is never one: the host
    /// reloads and retries, then reports [`ExecuteError::Conflict`].
    #[error(transparent)]
    Append(#[from] AppendFailure),
}

/// An invalid aggregate id fails the command as its load: [`LoadError::InvalidStreamId`].
impl<E> From<InvalidStreamId> for ExecuteError<E> {
    fn from(invalid: InvalidStreamId) -> Self {
        ExecuteError::Load(LoadError::InvalidStreamId(invalid))
    }
}

impl<E> ExecuteError<E> {
    /// The domain error, if the aggregate refused the command.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            ExecuteError::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the aggregate refused the command (as opposed to an infrastructure failure).
    pub fn is_rejected(&self) -> bool {
        matches!(self, ExecuteError::Rejected(_))
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
