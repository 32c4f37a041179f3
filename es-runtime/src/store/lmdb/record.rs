//! Byte layouts of keys and values (described in `docs/STORAGE.md`).
//!
//! Every value that holds user data starts with a CRC-32 of the rest of the value, so a
//! flipped bit anywhere in a record is reported as corruption instead of being handed out.

use uuid::Uuid;

use crate::event::{EventRef, Timestamp};

/// Separates the stream id from the version in stream-index and snapshot keys. Stream ids
/// have no control characters, so no id contains it, and the keys of one stream form one
/// contiguous range that no other stream's keys fall into (`acc-1\0…` sorts before
/// `acc-10…`).
const SEP: u8 = 0;

/// The format tag of a log record.
const EVENT_TAG: u8 = 1;

/// crc (4) + tag (1) + version (8) + previous position (8) + timestamp (8) + event id (16) +
/// stream length (2) + type length (2) + metadata length (4).
const EVENT_HEADER: usize = 53;

/// crc (4) + state version (4).
const SNAPSHOT_HEADER: usize = 8;

/// `stream \0 version(BE)`: the key of a stream-index entry or a snapshot.
pub(super) fn stream_key(buf: &mut Vec<u8>, stream: &str, version: u64) {
    buf.clear();
    buf.reserve(stream.len() + 9);
    buf.extend_from_slice(stream.as_bytes());
    buf.push(SEP);
    buf.extend_from_slice(&version.to_be_bytes());
}

/// The version in a key written by [`stream_key`], if the key belongs to `stream`.
pub(super) fn key_version(key: &[u8], stream: &str) -> Option<u64> {
    let rest = key.strip_prefix(stream.as_bytes())?.strip_prefix(&[SEP])?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// A position as stored in the stream index.
pub(super) fn position_value(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// A stream head: the stream's version and the position of its last event.
pub(super) fn head_value(version: u64, position: u64) -> [u8; 16] {
    let mut v = [0; 16];
    v[..8].copy_from_slice(&version.to_be_bytes());
    v[8..].copy_from_slice(&position.to_be_bytes());
    v
}

pub(super) fn read_head(value: &[u8]) -> Option<(u64, u64)> {
    let value: &[u8; 16] = value.try_into().ok()?;
    let (v, p) = value.split_at(8);
    Some((
        u64::from_be_bytes(v.try_into().ok()?),
        u64::from_be_bytes(p.try_into().ok()?),
    ))
}

pub(super) fn read_position(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// What goes into one log record, borrowed from the caller.
pub(super) struct EventParts<'a> {
    pub(super) stream: &'a str,
    pub(super) version: u64,
    /// The position of the stream's previous event (0 for its first).
    pub(super) previous: u64,
    pub(super) timestamp: Timestamp,
    pub(super) event_id: Uuid,
    pub(super) event_type: &'a str,
    pub(super) metadata: &'a [u8],
    pub(super) payload: &'a [u8],
}

/// Writes a log record into `buf` (cleared first). Fails when a length does not fit its
/// field.
pub(super) fn encode_event(buf: &mut Vec<u8>, e: &EventParts<'_>) -> Result<(), String> {
    let stream_len = u16::try_from(e.stream.len()).map_err(|_| "stream id too long")?;
    let type_len = u16::try_from(e.event_type.len()).map_err(|_| {
        format!(
            "event type name of {} bytes is too long",
            e.event_type.len()
        )
    })?;
    let meta_len = u32::try_from(e.metadata.len()).map_err(|_| "metadata too large")?;
    buf.clear();
    buf.reserve(
        EVENT_HEADER + e.stream.len() + e.event_type.len() + e.metadata.len() + e.payload.len(),
    );
    buf.extend_from_slice(&[0; 4]);
    buf.push(EVENT_TAG);
    buf.extend_from_slice(&e.version.to_le_bytes());
    buf.extend_from_slice(&e.previous.to_le_bytes());
    buf.extend_from_slice(&e.timestamp.as_nanos().to_le_bytes());
    buf.extend_from_slice(e.event_id.as_bytes());
    buf.extend_from_slice(&stream_len.to_le_bytes());
    buf.extend_from_slice(&type_len.to_le_bytes());
    buf.extend_from_slice(&meta_len.to_le_bytes());
    buf.extend_from_slice(e.stream.as_bytes());
    buf.extend_from_slice(e.event_type.as_bytes());
    buf.extend_from_slice(e.metadata);
    buf.extend_from_slice(e.payload);
    let crc = crc32fast::hash(&buf[4..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The timestamp of a log record, read without checking the rest (the writer needs only it).
pub(super) fn event_timestamp(value: &[u8]) -> Option<Timestamp> {
    let bytes = value.get(21..29)?;
    Some(Timestamp(u64::from_le_bytes(bytes.try_into().ok()?)))
}

/// Decodes and checks a log record at `position`.
pub(super) fn decode_event(position: u64, value: &[u8]) -> Result<EventRef<'_>, String> {
    decode_linked(position, value).map(|(e, _)| e)
}

/// Decodes and checks a log record at `position`, with the position of the stream's previous
/// event.
pub(super) fn decode_linked(position: u64, value: &[u8]) -> Result<(EventRef<'_>, u64), String> {
    if value.len() < EVENT_HEADER {
        return Err(format!(
            "the record has {} bytes, less than its {EVENT_HEADER}-byte header",
            value.len()
        ));
    }
    let (crc, body) = value.split_at(4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    if body[0] != EVENT_TAG {
        return Err(format!("unknown record tag {}", body[0]));
    }
    let u64_at = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().unwrap_or_default());
    let version = u64_at(5);
    let previous = u64_at(13);
    let timestamp = Timestamp(u64_at(21));
    let event_id = Uuid::from_bytes(value[29..45].try_into().unwrap_or_default());
    let stream_len = usize::from(u16::from_le_bytes([value[45], value[46]]));
    let type_len = usize::from(u16::from_le_bytes([value[47], value[48]]));
    let meta_len = u32::from_le_bytes(value[49..53].try_into().unwrap_or_default()) as usize;
    let rest = &value[EVENT_HEADER..];
    if stream_len + type_len + meta_len > rest.len() {
        return Err("field lengths run past the end of the record".to_owned());
    }
    let (stream, rest) = rest.split_at(stream_len);
    let (event_type, rest) = rest.split_at(type_len);
    let (metadata, payload) = rest.split_at(meta_len);
    let stream = std::str::from_utf8(stream).map_err(|_| "the stream id is not UTF-8")?;
    let event_type =
        std::str::from_utf8(event_type).map_err(|_| "the event type name is not UTF-8")?;
    let event = EventRef {
        stream,
        version,
        position,
        event_type,
        event_id,
        timestamp,
        metadata,
        payload,
    };
    Ok((event, previous))
}

/// Writes a snapshot value into `buf` (cleared first).
pub(super) fn encode_snapshot(buf: &mut Vec<u8>, state_version: u32, payload: &[u8]) {
    buf.clear();
    buf.reserve(SNAPSHOT_HEADER + payload.len());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&state_version.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[4..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and checks a snapshot value: its state version and payload.
pub(super) fn decode_snapshot(value: &[u8]) -> Result<(u32, &[u8]), String> {
    if value.len() < SNAPSHOT_HEADER {
        return Err(format!(
            "the snapshot has {} bytes, less than its {SNAPSHOT_HEADER}-byte header",
            value.len()
        ));
    }
    let (crc, body) = value.split_at(4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    let actual = crc32fast::hash(body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    let state_version = u32::from_le_bytes(body[..4].try_into().unwrap_or_default());
    Ok((state_version, &body[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trip_and_bit_flips() {
        let mut buf = Vec::new();
        let id = Uuid::now_v7();
        encode_event(
            &mut buf,
            &EventParts {
                stream: "acc-1",
                version: 7,
                previous: 2,
                timestamp: Timestamp(42),
                event_id: id,
                event_type: "Opened",
                metadata: &[1, 2],
                payload: &[9, 9, 9],
            },
        )
        .unwrap();
        let (e, previous) = decode_linked(3, &buf).unwrap();
        assert_eq!(previous, 2);
        assert_eq!(
            (e.stream, e.version, e.position, e.event_type),
            ("acc-1", 7, 3, "Opened")
        );
        assert_eq!((e.event_id, e.timestamp), (id, Timestamp(42)));
        assert_eq!((e.metadata, e.payload), (&[1u8, 2][..], &[9u8, 9, 9][..]));
        assert_eq!(event_timestamp(&buf), Some(Timestamp(42)));
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode_event(3, &bad).is_err(),
                    "flip of bit {bit} of byte {i}"
                );
            }
        }
        for len in 0..buf.len() {
            assert!(decode_event(3, &buf[..len]).is_err());
        }
    }

    #[test]
    fn keys_of_one_stream_stay_apart_from_longer_ids() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        stream_key(&mut a, "acc-1", u64::MAX);
        stream_key(&mut b, "acc-10", 0);
        assert!(a < b);
        assert_eq!(key_version(&a, "acc-1"), Some(u64::MAX));
        assert_eq!(key_version(&b, "acc-1"), None);
    }
}
