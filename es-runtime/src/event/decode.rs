//! Reading a stored event as the domain events it stands for now: through its type's
//! [`decode_stored`](DomainEvent::decode_stored), which decodes a current shape as itself
//! and an older one through its upcast; a failure names the stream, version and type.
//!
//! [`EventRef::decode`](crate::EventRef::decode) and
//! [`EventRef::decode_all`](crate::EventRef::decode_all) are the usual way in; these
//! functions are for payloads held apart from a store's envelope.

use crate::aggregate::{DomainEvent, StoredEventError, Upcast};
use crate::error::DecodeError;
use crate::event::stream::StreamId;

/// Decodes the payload of event `version` of `stream`, stored at version 1 of its shape, as
/// the one event it reads as, checking its type name is one `E` knows (see
/// [`decode_events`] for any shape version and any number of events). A payload that does
/// not decode under a `stream` that is not a valid [`StreamId`] is a
/// [`DecodeError::StreamId`].
pub fn decode_event<E: DomainEvent>(
    stream: &str,
    version: u64,
    event_type: &str,
    payload: &[u8],
) -> Result<E, DecodeError> {
    let events = decode_events(stream, version, event_type, 1, payload)?;
    one_event(stream, version, event_type, events)
}

/// The one event of `events`, read from event `version` of `stream`.
pub(crate) fn one_event<E>(
    stream: &str,
    version: u64,
    event_type: &str,
    events: Upcast<E>,
) -> Result<E, DecodeError> {
    let count = events.len();
    match events {
        Upcast::One(event) => Ok(event),
        Upcast::Many(mut v) if count == 1 => Ok(v.remove(0)),
        Upcast::Many(_) => Err(DecodeError::NotOneEvent {
            stream: stored_stream(stream, version)?,
            version,
            event_type: event_type.to_owned(),
            count,
        }),
    }
}

/// Decodes the payload of event `version` of `stream`, of type `event_type` stored at shape
/// `event_version`, into the events it reads as now ([`DomainEvent::decode_stored`]: an
/// older shape goes through its upcast). A flaw under a `stream` that is not a valid
/// [`StreamId`] is a [`DecodeError::StreamId`].
pub fn decode_events<E: DomainEvent>(
    stream: &str,
    version: u64,
    event_type: &str,
    event_version: u32,
    payload: &[u8],
) -> Result<Upcast<E>, DecodeError> {
    E::decode_stored(event_type, event_version, payload)
        .map_err(|e| stored_event_error::<E>(e, stream, version, event_type, event_version))
}

/// The error of a stored event that did not decode, with where it is; out of the way of the
/// decoding that succeeds.
#[cold]
#[inline(never)]
fn stored_event_error<E: DomainEvent>(
    e: StoredEventError,
    stream: &str,
    version: u64,
    event_type: &str,
    event_version: u32,
) -> DecodeError {
    let stream = match stored_stream(stream, version) {
        Ok(stream) => stream,
        Err(invalid) => return invalid,
    };
    let event_type = event_type.to_owned();
    match e {
        StoredEventError::Payload(source) if E::TYPES.contains(&event_type.as_str()) => {
            DecodeError::Payload {
                stream,
                version,
                event_type,
                source,
            }
        }
        StoredEventError::UnknownVersion => DecodeError::UnknownVersion {
            stream,
            version,
            event_type,
            event_version,
        },
        _ => DecodeError::UnknownEventType {
            stream,
            version,
            event_type,
        },
    }
}

/// The stream of event `version`, as stored, for an error about the event: an invalid one is
/// the error.
pub(crate) fn stored_stream(stream: &str, version: u64) -> Result<StreamId, DecodeError> {
    StreamId::from_stored(stream).map_err(|flaw| DecodeError::StreamId {
        stream: stream.to_owned(),
        version,
        reason: flaw.to_string(),
    })
}
