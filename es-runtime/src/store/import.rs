//! Imports: events recorded elsewhere, taken in with their envelopes as they are.
//!
//! The rule: an imported event keeps its id, timestamp, metadata, type, version of shape,
//! payload and stream version; only its global position is the target's, assigned in the
//! order given. Each event must be the next of its stream (the stream's version + 1, counting
//! the events before it in the batch), and no event may be stamped earlier than the one before
//! it in the log, so that timestamps still never go back along the log. A batch breaking
//! either rule is refused whole, before anything of it is written.

use std::collections::HashMap;

use crate::error::AppendError;
use crate::event::{ExpectedVersion, RecordedEvent, Timestamp};

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportResult {
    /// The global position of the first imported event (the head + 1 before the import). The
    /// batch's positions are contiguous.
    pub first_position: u64,
    /// How many events were imported.
    pub count: u64,
}

impl ImportResult {
    /// Builds a result; for backends.
    pub fn new(first_position: u64, count: u64) -> Self {
        ImportResult {
            first_position,
            count,
        }
    }

    /// The global position of the last imported event (the one before `first_position` when
    /// the batch was empty).
    pub fn last_position(&self) -> u64 {
        self.first_position + self.count - 1
    }
}

/// Checks the events of one import batch in order, against the streams' versions before the
/// batch (asked of the backend once per stream) and the log's last timestamp.
#[derive(Debug)]
pub(crate) struct ImportCheck<'a> {
    /// Each stream's version after the events of the batch checked so far.
    versions: HashMap<&'a str, u64>,
    /// The timestamp of the event before the next one in the log.
    last_timestamp: Timestamp,
}

impl<'a> ImportCheck<'a> {
    /// A check of a batch that follows a log whose last event is stamped `last_timestamp`
    /// (0 for an empty log).
    pub(crate) fn new(last_timestamp: Timestamp) -> Self {
        ImportCheck {
            versions: HashMap::new(),
            last_timestamp,
        }
    }

    /// The version of `stream` after the events of the batch checked so far, if the batch
    /// named it already.
    pub(crate) fn version(&self, stream: &str) -> Option<u64> {
        self.versions.get(stream).copied()
    }

    /// Checks the next event of the batch, its stream being at version `current` (from
    /// [`version`](Self::version), or else the store).
    pub(crate) fn admit(
        &mut self,
        event: &'a RecordedEvent,
        current: u64,
    ) -> Result<(), AppendError> {
        if event.version != current + 1 {
            return Err(AppendError::WrongExpectedVersion {
                stream: event.stream.clone(),
                expected: ExpectedVersion::Exact(event.version.saturating_sub(1)),
                actual: current,
            });
        }
        if event.timestamp < self.last_timestamp {
            return Err(AppendError::InvalidInput {
                stream: event.stream.clone(),
                reason: format!(
                    "imported event {} ({}) is stamped {} ns, before the {} ns of the event \
                     before it in the log; timestamps never go back along the log",
                    event.version, event.event_id, event.timestamp.0, self.last_timestamp.0
                ),
            });
        }
        self.last_timestamp = event.timestamp;
        self.versions.insert(event.stream.as_str(), event.version);
        Ok(())
    }

    /// The timestamp of the batch's last event (the log's before it, for an empty batch).
    pub(crate) fn last_timestamp(&self) -> Timestamp {
        self.last_timestamp
    }

    /// Each stream of the batch with its version after it.
    pub(crate) fn into_versions(self) -> HashMap<&'a str, u64> {
        self.versions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Metadata, StreamId, new_event_id};
    use std::borrow::Cow;

    fn recorded(stream: &str, version: u64, t: u64) -> RecordedEvent {
        RecordedEvent {
            stream: StreamId::parse(stream).unwrap(),
            version,
            position: 0,
            event_type: Cow::Borrowed("E"),
            event_version: 1,
            event_id: new_event_id(),
            timestamp: Timestamp(t),
            metadata: Metadata::default(),
            payload: vec![0xc0],
        }
    }

    #[test]
    fn each_event_follows_its_stream_and_the_clock_never_goes_back() {
        let batch = [
            recorded("a-1", 3, 10),
            recorded("b-1", 1, 10),
            recorded("a-1", 4, 12),
        ];
        let mut check = ImportCheck::new(Timestamp(9));
        check.admit(&batch[0], 2).unwrap();
        check.admit(&batch[1], 0).unwrap();
        assert_eq!(check.version("a-1"), Some(3));
        check.admit(&batch[2], 3).unwrap();
        assert_eq!(check.last_timestamp(), Timestamp(12));

        let gap = recorded("a-1", 6, 12);
        match check.admit(&gap, 4).unwrap_err() {
            AppendError::WrongExpectedVersion {
                expected, actual, ..
            } => assert_eq!((expected, actual), (ExpectedVersion::Exact(5), 4)),
            other => panic!("{other:?}"),
        }
        let early = recorded("b-1", 2, 11);
        assert!(matches!(
            check.admit(&early, 1),
            Err(AppendError::InvalidInput { .. })
        ));
    }
}
