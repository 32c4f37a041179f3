//! The envelope of an event: a [`NewEvent`] is what a writer hands a store (id, type name,
//! encoded payload, metadata); the store adds where and when, and gives it back as a
//! [`RecordedEvent`], or lends it as an [`EventRef`] while it reads.

use std::borrow::Cow;

use uuid::Uuid;

use super::decode;
use super::id::new_event_id;
use super::metadata::Metadata;
use super::stream::{self, StreamId};
use super::time::Timestamp;
use crate::aggregate::{DomainEvent, Upcast};
use crate::codec;
use crate::error::{DecodeError, EncodeError};

/// An event to append: its id, stored type name and shape version, encoded payload and
/// metadata.
///
/// The store assigns the version, global position and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// A unique id (UUID v7 by default: ids carry their creation time in milliseconds, and
    /// ids made on one thread sort in the order they were made; order events by position).
    pub event_id: Uuid,
    /// The stored type name.
    pub event_type: Cow<'static, str>,
    /// The version of the payload's shape ([`DomainEvent::event_version`]; 1 unless the
    /// event's shape changed).
    pub event_version: u32,
    /// The encoded payload (see [`codec`]).
    pub payload: Vec<u8>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
}

impl NewEvent {
    /// Encodes a domain event, with a fresh UUID v7 and the given metadata.
    pub fn from_event<E: DomainEvent>(event: &E, metadata: Metadata) -> Result<Self, EncodeError> {
        Ok(NewEvent {
            event_id: new_event_id(),
            event_type: Cow::Borrowed(event.event_type()),
            event_version: event.event_version(),
            payload: codec::encode(event)?,
            metadata,
        })
    }

    /// An event from raw parts, at version 1 of its shape, with a fresh UUID v7 and no
    /// metadata.
    pub fn raw(event_type: impl Into<Cow<'static, str>>, payload: Vec<u8>) -> Self {
        NewEvent {
            event_id: new_event_id(),
            event_type: event_type.into(),
            event_version: 1,
            payload,
            metadata: Metadata::default(),
        }
    }

    /// The same event, stored at version `event_version` of its shape.
    pub fn with_event_version(mut self, event_version: u32) -> Self {
        self.event_version = event_version;
        self
    }
}

/// A stored event, borrowed from the store while it is being read.
///
/// Reading through [`EventStore::read_stream_with`](crate::EventStore::read_stream_with) hands
/// out these views so that the payload can be decoded straight from the store's memory.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The event's version in its stream (1-based).
    pub version: u64,
    /// The event's position in the global log (1-based, gap-free).
    pub position: u64,
    /// The stored type name.
    pub event_type: &'a str,
    /// The version of the payload's shape (1 for events stored before shapes had versions).
    pub event_version: u32,
    /// The event's unique id.
    pub event_id: Uuid,
    /// When it was recorded.
    pub timestamp: Timestamp,
    /// The encoded metadata (empty when there is none).
    pub metadata: &'a [u8],
    /// The encoded payload.
    pub payload: &'a [u8],
}

impl EventRef<'_> {
    /// The stream's category: the part before the first `-` (the whole id if there is none).
    pub fn category(&self) -> &str {
        stream::split(self.stream).0
    }

    /// Decodes the payload as the one event of `E` it reads as now: an older shape goes
    /// through its upcast, and an upcast that gives none or several events is a
    /// [`DecodeError::NotOneEvent`] (read those with [`decode_all`](EventRef::decode_all)).
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        let events = self.decode_all()?;
        decode::one_event(self.stream, self.version, self.event_type, events)
    }

    /// Decodes the payload as the events of `E` it reads as now: itself, or what the upcast
    /// of its stored shape gives (one event, several, or none).
    pub fn decode_all<E: DomainEvent>(&self) -> Result<Upcast<E>, DecodeError> {
        decode::decode_events(
            self.stream,
            self.version,
            self.event_type,
            self.event_version,
            self.payload,
        )
    }

    /// Decodes the metadata.
    pub fn metadata(&self) -> Result<Metadata, DecodeError> {
        codec::decode_metadata(self.metadata).map_err(|source| {
            match decode::stored_stream(self.stream, self.version) {
                Ok(stream) => DecodeError::Metadata {
                    stream,
                    version: self.version,
                    source,
                },
                Err(invalid) => invalid,
            }
        })
    }

    /// Copies the event out of the store, decoding its metadata.
    #[doc(alias = "to_owned")]
    pub fn to_recorded(&self) -> Result<RecordedEvent, DecodeError> {
        let stream = decode::stored_stream(self.stream, self.version)?;
        Ok(RecordedEvent {
            stream,
            version: self.version,
            position: self.position,
            event_type: Cow::Owned(self.event_type.to_owned()),
            event_version: self.event_version,
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: self.metadata()?,
            payload: self.payload.to_vec(),
        })
    }
}

/// A stored event with its envelope: where it is, when and why it was recorded, and its payload
/// (`Vec<u8>` as stored, or a decoded event after [`RecordedEvent::decode`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent<P = Vec<u8>> {
    /// The stream (`category-id`).
    pub stream: StreamId,
    /// The event's version in its stream (1-based).
    pub version: u64,
    /// The event's position in the global log (1-based, gap-free).
    pub position: u64,
    /// The stored type name (borrowed when it is a generated event's static name).
    pub event_type: Cow<'static, str>,
    /// The version of the stored payload's shape (1 for events stored before shapes had
    /// versions). A decoded event read through an upcast keeps its stored version here.
    pub event_version: u32,
    /// The event's unique id (UUID v7).
    pub event_id: Uuid,
    /// When it was recorded, from the store's clock.
    pub timestamp: Timestamp,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// The payload.
    pub payload: P,
}

impl RecordedEvent {
    /// Decodes the payload as the one event of `E` it reads as now (see
    /// [`EventRef::decode`]).
    pub fn decode<E: DomainEvent>(self) -> Result<RecordedEvent<E>, DecodeError> {
        let payload = self.payload_view().decode()?;
        Ok(self.with_payload(payload))
    }

    /// Decodes the payload as the events of `E` it reads as now, each in a copy of this
    /// envelope (same stream, version and position; see [`EventRef::decode_all`]).
    pub fn decode_all<E: DomainEvent>(self) -> Result<Vec<RecordedEvent<E>>, DecodeError> {
        let events = self.payload_view().decode_all()?;
        Ok(events
            .into_iter()
            .map(|event| self.clone().with_payload(event))
            .collect())
    }

    /// A view of the stored event for decoding its payload (without its metadata, which is
    /// decoded already).
    fn payload_view(&self) -> EventRef<'_> {
        EventRef {
            stream: self.stream.as_str(),
            version: self.version,
            position: self.position,
            event_type: &self.event_type,
            event_version: self.event_version,
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: &[],
            payload: &self.payload,
        }
    }

    /// The payload as JSON, without knowing its Rust type.
    pub fn payload_json(&self) -> Result<serde_json::Value, DecodeError> {
        codec::to_json(&self.payload).map_err(|source| DecodeError::Payload {
            stream: self.stream.clone(),
            version: self.version,
            event_type: self.event_type.to_string(),
            source,
        })
    }
}

impl<P> RecordedEvent<P> {
    /// The same envelope around another payload.
    pub fn with_payload<Q>(self, payload: Q) -> RecordedEvent<Q> {
        RecordedEvent {
            stream: self.stream,
            version: self.version,
            position: self.position,
            event_type: self.event_type,
            event_version: self.event_version,
            event_id: self.event_id,
            timestamp: self.timestamp,
            metadata: self.metadata,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_event_with_an_invalid_stream_id_is_a_decode_error() {
        let long = "x".repeat(StreamId::MAX_LEN + 1);
        for bad in ["", "account-\n1", long.as_str()] {
            let event = EventRef {
                stream: bad,
                version: 3,
                position: 7,
                event_type: "Opened",
                event_version: 1,
                event_id: new_event_id(),
                timestamp: Timestamp(0),
                metadata: &[],
                payload: &[0x80],
            };
            match event.to_recorded() {
                Err(DecodeError::StreamId {
                    stream, version, ..
                }) => {
                    assert_eq!((stream.as_str(), version), (bad, 3));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let good = EventRef {
            stream: "account-1",
            version: 1,
            position: 1,
            event_type: "Opened",
            event_version: 1,
            event_id: new_event_id(),
            timestamp: Timestamp(0),
            metadata: &[],
            payload: &[0x80],
        };
        let owned = good.to_recorded().expect("valid");
        assert_eq!(owned.stream, "account-1");
        assert_eq!(owned.stream, String::from("account-1"));
        assert_eq!(String::from("account-1"), owned.stream);
        assert_eq!(owned.stream.category(), "account");
    }

    #[test]
    fn undecodable_bytes_name_the_event_and_keep_the_codec_error() {
        use crate::error::CodecError;

        let event = EventRef {
            stream: "account-1",
            version: 2,
            position: 5,
            event_type: "Opened",
            event_version: 1,
            event_id: new_event_id(),
            timestamp: Timestamp(0),
            metadata: b"\xc1",
            payload: b"\xc0\xc0",
        };
        let err = event.metadata().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("metadata of event 2 of stream \"account-1\" does not decode: "),
            "{err}"
        );
        assert!(
            matches!(
                err,
                DecodeError::Metadata {
                    source: CodecError::Decode(_),
                    ..
                }
            ),
            "{err:?}"
        );

        let recorded = EventRef {
            metadata: &[],
            ..event
        }
        .to_recorded()
        .expect("valid");
        let err = recorded.payload_json().unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 2 of stream \"account-1\" (type \"Opened\") does not decode: \
             1 trailing bytes after the payload"
        );
        assert!(
            matches!(
                err,
                DecodeError::Payload {
                    source: CodecError::TrailingBytes { count: 1 },
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
