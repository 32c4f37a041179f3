//! Byte layouts of keys and values (described in `docs/STORAGE.md`).
//!
//! Every value that holds user data starts with a CRC-32 of its key and the rest of the
//! value, so a flipped bit anywhere in a record, or in the key it is stored under, is reported
//! as corruption instead of being handed out.
//!
//! A log record's tag says its layout and which checksum rule it follows; a reader accepts
//! every tag this build knows, so records written by an older format stay readable as they
//! are. A new layout takes a new tag (and a format version of the store, so that older
//! builds refuse it at open).

use uuid::Uuid;

use crate::event::{EventRef, Timestamp};

/// Separates the stream id from the version in stream-index and snapshot keys. Stream ids
/// have no control characters, so no id contains it, and the keys of one stream form one
/// contiguous range that no other stream's keys fall into (`acc-1\0…` sorts before
/// `acc-10…`).
const SEP: u8 = 0;

/// The tags of log records: the layout of the record and what its checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// Format 1 and 2: the checksum covers the value alone.
    Event = 1,
    /// Format 3: the checksum covers the position (the key), then the value.
    KeyedEvent = 2,
    /// Format 4: as `KeyedEvent`, with the version of the payload's shape as a sixth varint
    /// (records of the older tags hold events of version 1).
    VersionedEvent = 3,
}

impl Tag {
    fn of(byte: u8) -> Option<Tag> {
        match byte {
            1 => Some(Tag::Event),
            2 => Some(Tag::KeyedEvent),
            3 => Some(Tag::VersionedEvent),
            _ => None,
        }
    }

    /// The checksum of a record of this tag at `position` whose value after its checksum is
    /// `body`.
    fn checksum(self, position: u64, body: &[u8]) -> u32 {
        match self {
            Tag::Event => crc32fast::hash(body),
            Tag::KeyedEvent | Tag::VersionedEvent => keyed_crc(&position.to_be_bytes(), body),
        }
    }
}

/// The tag this build writes.
const EVENT_TAG: Tag = Tag::VersionedEvent;

/// The CRC-32 of `key` followed by `body`.
fn keyed_crc(key: &[u8], body: &[u8]) -> u32 {
    // `Hasher::new` looks up the CPU's features each time; a copy of one made once does not.
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut hasher = FRESH.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(key);
    hasher.update(body);
    hasher.finalize()
}

/// crc (4) + tag (1) + timestamp (8) + event id (16), then five varints (six in a
/// `VersionedEvent`).
const EVENT_FIXED: usize = 29;

/// The shortest possible record: the fixed part and five one-byte varints.
const EVENT_MIN: usize = EVENT_FIXED + 5;

/// crc (4) + state version (4).
const SNAPSHOT_HEADER: usize = 8;

/// The stream index holds the position of every `BLOCK`-th event of a stream (versions
/// `BLOCK`, `2 * BLOCK`, ...); the events in between are found through the back pointers
/// of the log records. See `docs/STORAGE.md` for why.
pub(super) const BLOCK: u64 = 32;

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

/// The key of the last entry of `heads`, after every stream's head: `0xFF` never occurs in
/// UTF-8, so no stream id sorts after it. Its value links it to the last stream's key.
pub(super) const HEADS_END: &[u8] = &[0xff];

/// The key in `meta` of the position up to which the `heads` database is up to date (u64 BE).
pub(super) const HEADS_AT_KEY: &[u8] = b"heads_at";

/// The length of a stream head (format 5): checksum, version, position, link.
const HEAD_LEN: usize = 24;

/// The link a stream head holds to the key before it in `heads` (the empty key for the
/// first): its CRC-32.
pub(super) fn head_link(key_before: &[u8]) -> u32 {
    crc32fast::hash(key_before)
}

/// A stream head under `key`: CRC-32 (u32 LE) of the key, then of the rest ‖ the stream's
/// version (u64 BE) ‖ the position of its last event (u64 BE) ‖ the link to the key before
/// it (u32 BE, see [`head_link`]).
pub(super) fn head_value(key: &[u8], version: u64, position: u64, link: u32) -> [u8; HEAD_LEN] {
    let mut v = [0; HEAD_LEN];
    v[4..12].copy_from_slice(&version.to_be_bytes());
    v[12..20].copy_from_slice(&position.to_be_bytes());
    v[20..].copy_from_slice(&link.to_be_bytes());
    let crc = keyed_crc(key, &v[4..]);
    v[..4].copy_from_slice(&crc.to_le_bytes());
    v
}

/// A stream head read (see [`head_value`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) version: u64,
    pub(super) position: u64,
    /// The link to the key before it.
    pub(super) link: u32,
}

/// Reads the stream head under `key`, checking its checksum.
pub(super) fn read_head(key: &[u8], value: &[u8]) -> Result<Head, String> {
    let value: &[u8; HEAD_LEN] = value
        .try_into()
        .map_err(|_| format!("{} bytes instead of {HEAD_LEN}", value.len()))?;
    let stored = u32::from_le_bytes(value[..4].try_into().unwrap_or_default());
    if stored != keyed_crc(key, &value[4..]) {
        return Err(
            "its checksum does not match its key and value (a damaged stream head)".to_owned(),
        );
    }
    let u64_at = |at: usize| u64::from_be_bytes(value[at..at + 8].try_into().unwrap_or_default());
    Ok(Head {
        version: u64_at(4),
        position: u64_at(12),
        link: u32::from_be_bytes(value[20..].try_into().unwrap_or_default()),
    })
}

/// A stored key as a message shows it: as text (invalid UTF-8 replaced), at most 64 bytes of
/// it, since a damaged node can give a key of any length.
pub(super) fn shown_key(key: &[u8]) -> String {
    const SHOWN: usize = 64;
    let text = String::from_utf8_lossy(&key[..key.len().min(SHOWN)]);
    if key.len() > SHOWN {
        format!("{text:?}... ({} bytes)", key.len())
    } else {
        format!("{text:?}")
    }
}

/// A stream head of format 4 or older: version (u64 BE) ‖ position (u64 BE), unchecked.
pub(super) fn read_plain_head(value: &[u8]) -> Option<(u64, u64)> {
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
    pub(super) event_version: u32,
    pub(super) metadata: &'a [u8],
    pub(super) payload: &'a [u8],
}

/// Appends `v` as an unsigned LEB128 varint (7 bits a byte, low bits first).
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint at `*at`, moving past it.
#[inline]
fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    match bytes.get(*at) {
        Some(&b) if b < 0x80 => {
            *at += 1;
            Ok(u64::from(b))
        }
        _ => get_long_varint(bytes, at),
    }
}

fn get_long_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*at) else {
            return Err("a length or number runs past the end of the record".to_owned());
        };
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint is longer than 10 bytes".to_owned())
}

/// Writes a log record for the event at `position` into `buf` (cleared first).
///
/// The record holds the distance back to the stream's previous event rather than its
/// position: it is small, so its varint is short.
pub(super) fn encode_event(
    buf: &mut Vec<u8>,
    position: u64,
    e: &EventParts<'_>,
) -> Result<(), String> {
    if e.event_type.len() > usize::from(u16::MAX) {
        return Err(format!(
            "event type name of {} bytes is too long",
            e.event_type.len()
        ));
    }
    buf.clear();
    buf.reserve(
        EVENT_FIXED + 30 + e.stream.len() + e.event_type.len() + e.metadata.len() + e.payload.len(),
    );
    buf.extend_from_slice(&[0; 4]);
    buf.push(EVENT_TAG as u8);
    buf.extend_from_slice(&e.timestamp.as_nanos().to_le_bytes());
    buf.extend_from_slice(e.event_id.as_bytes());
    put_varint(buf, e.version);
    put_varint(
        buf,
        if e.previous == 0 {
            0
        } else {
            position - e.previous
        },
    );
    put_varint(buf, e.stream.len() as u64);
    put_varint(buf, e.event_type.len() as u64);
    put_varint(buf, e.metadata.len() as u64);
    put_varint(buf, u64::from(e.event_version));
    buf.extend_from_slice(e.stream.as_bytes());
    buf.extend_from_slice(e.event_type.as_bytes());
    buf.extend_from_slice(e.metadata);
    buf.extend_from_slice(e.payload);
    let crc = EVENT_TAG.checksum(position, &buf[4..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The timestamp of a log record, read without checking the rest (the writer needs only it).
pub(super) fn event_timestamp(value: &[u8]) -> Option<Timestamp> {
    let bytes = value.get(5..13)?;
    Some(Timestamp(u64::from_le_bytes(bytes.try_into().ok()?)))
}

/// Decodes and checks a log record at `position`.
pub(super) fn decode_event(position: u64, value: &[u8]) -> Result<EventRef<'_>, String> {
    decode_linked(position, value).map(|(e, _)| e)
}

/// Decodes and checks a log record at `position`, with the position of the stream's previous
/// event (0 if it is the stream's first).
pub(super) fn decode_linked(position: u64, value: &[u8]) -> Result<(EventRef<'_>, u64), String> {
    decode_record(position, value, None)
}

/// [`decode_linked`] for a read of `stream`: a record of that stream borrows its id from
/// `stream` (the very reference, so `ptr::eq` tells), without checking the record's copy is
/// UTF-8.
pub(super) fn decode_in_stream<'a>(
    position: u64,
    value: &'a [u8],
    stream: &'a str,
) -> Result<(EventRef<'a>, u64), String> {
    decode_record(position, value, Some(stream))
}

fn decode_record<'a>(
    position: u64,
    value: &'a [u8],
    known: Option<&'a str>,
) -> Result<(EventRef<'a>, u64), String> {
    if value.len() < EVENT_MIN {
        return Err(format!(
            "the record has {} bytes, less than the {EVENT_MIN} of the shortest record",
            value.len()
        ));
    }
    let (crc, body) = value.split_at(4);
    let Some(tag) = Tag::of(body[0]) else {
        return Err(format!("unknown record tag {}", body[0]));
    };
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    let actual = tag.checksum(position, body);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the record or \
             the position it is stored under is damaged"
        ));
    }
    let timestamp = Timestamp(u64::from_le_bytes(
        value[5..13].try_into().unwrap_or_default(),
    ));
    let event_id = Uuid::from_bytes(value[13..29].try_into().unwrap_or_default());
    let mut at = EVENT_FIXED;
    let version = get_varint(value, &mut at)?;
    let back = get_varint(value, &mut at)?;
    let previous = if back == 0 {
        0
    } else {
        position
            .checked_sub(back)
            .ok_or("the link to the previous event points before the log")?
    };
    let mut len = || -> Result<usize, String> {
        usize::try_from(get_varint(value, &mut at)?).map_err(|_| "a length is too large".to_owned())
    };
    let (stream_len, type_len, meta_len) = (len()?, len()?, len()?);
    let event_version = match tag {
        Tag::Event | Tag::KeyedEvent => 1,
        Tag::VersionedEvent => u32::try_from(get_varint(value, &mut at)?)
            .map_err(|_| "the event's shape version is too large".to_owned())?,
    };
    let rest = &value[at..];
    if stream_len
        .checked_add(type_len)
        .and_then(|n| n.checked_add(meta_len))
        .is_none_or(|n| n > rest.len())
    {
        return Err("field lengths run past the end of the record".to_owned());
    }
    let (stream, rest) = rest.split_at(stream_len);
    let (event_type, rest) = rest.split_at(type_len);
    let (metadata, payload) = rest.split_at(meta_len);
    let stream = match known {
        Some(known) if known.as_bytes() == stream => known,
        _ => std::str::from_utf8(stream).map_err(|_| "the stream id is not UTF-8")?,
    };
    let event_type =
        std::str::from_utf8(event_type).map_err(|_| "the event type name is not UTF-8")?;
    let event = EventRef {
        stream,
        version,
        position,
        event_type,
        event_version,
        event_id,
        timestamp,
        metadata,
        payload,
    };
    Ok((event, previous))
}

/// Writes the value of the snapshot stored under `key` into `buf` (cleared first); its
/// checksum covers the key.
pub(super) fn encode_snapshot(buf: &mut Vec<u8>, key: &[u8], state_version: u32, payload: &[u8]) {
    buf.clear();
    buf.reserve(SNAPSHOT_HEADER + payload.len());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&state_version.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = keyed_crc(key, &buf[4..]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and checks the value of a snapshot stored under `key`: its state version and
/// payload. `legacy`: the store was written by format 2 or older, whose snapshots' checksums
/// cover the value alone; they are accepted too.
pub(super) fn decode_snapshot<'v>(
    key: &[u8],
    value: &'v [u8],
    legacy: bool,
) -> Result<(u32, &'v [u8]), String> {
    if value.len() < SNAPSHOT_HEADER {
        return Err(format!(
            "the snapshot has {} bytes, less than its {SNAPSHOT_HEADER}-byte header",
            value.len()
        ));
    }
    let (crc, body) = value.split_at(4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    let actual = keyed_crc(key, body);
    if stored != actual && !(legacy && stored == crc32fast::hash(body)) {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the snapshot or \
             the key it is stored under is damaged"
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
            3,
            &EventParts {
                stream: "acc-1",
                version: 7,
                previous: 2,
                timestamp: Timestamp(42),
                event_id: id,
                event_type: "Opened",
                event_version: 5,
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
        assert_eq!(e.event_version, 5);
        assert_eq!((e.metadata, e.payload), (&[1u8, 2][..], &[9u8, 9, 9][..]));
        assert_eq!(event_timestamp(&buf), Some(Timestamp(42)));
        let mut big = Vec::new();
        put_varint(&mut big, u64::MAX);
        let mut at = 0;
        assert_eq!(get_varint(&big, &mut at), Ok(u64::MAX));
        assert_eq!(at, big.len());
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
        // The position is covered: the same record read under another key is damaged.
        for other in [2, 4, 3 ^ (1 << 40)] {
            assert!(decode_event(other, &buf).is_err(), "read at {other}");
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

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn records_of_formats_2_and_3_still_decode_with_their_own_checksum_at_version_1() {
        let mut buf = Vec::new();
        encode_event(
            &mut buf,
            9,
            &EventParts {
                stream: "acc-1",
                version: 1,
                previous: 0,
                timestamp: Timestamp(1),
                event_id: Uuid::nil(),
                event_type: "Opened",
                event_version: 1,
                metadata: &[],
                payload: &[0xc0],
            },
        )
        .unwrap();
        // Without the shape version (here one byte after five one-byte varints), as formats
        // 2 and 3 wrote it.
        buf.remove(EVENT_FIXED + 5);
        let plain = buf.clone();
        // Format 3: tag 2, the checksum covers the position.
        buf[4] = Tag::KeyedEvent as u8;
        let crc = keyed_crc(&9u64.to_be_bytes(), &buf[4..]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        let e = decode_event(9, &buf).unwrap();
        assert_eq!(
            (e.stream, e.event_version, e.payload),
            ("acc-1", 1, &[0xc0][..])
        );
        // Format 2: tag 1, checksum of the value alone.
        buf = plain;
        buf[4] = Tag::Event as u8;
        let crc = crc32fast::hash(&buf[4..]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        let e = decode_event(9, &buf).unwrap();
        assert_eq!(
            (e.stream, e.event_version, e.payload),
            ("acc-1", 1, &[0xc0][..])
        );
        buf[4] = 7;
        assert!(
            decode_event(9, &buf)
                .unwrap_err()
                .contains("unknown record tag 7")
        );
    }

    #[test]
    fn a_snapshot_checksum_covers_its_key() {
        let (mut key, mut other, mut value) = (Vec::new(), Vec::new(), Vec::new());
        stream_key(&mut key, "acc-1", 64);
        stream_key(&mut other, "acc-1", 65);
        encode_snapshot(&mut value, &key, 2, b"state");
        assert_eq!(decode_snapshot(&key, &value, false), Ok((2, &b"state"[..])));
        assert!(decode_snapshot(&other, &value, true).is_err());
        let mut legacy = value.clone();
        let crc = crc32fast::hash(&legacy[4..]);
        legacy[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_snapshot(&key, &legacy, false).is_err());
        assert_eq!(decode_snapshot(&key, &legacy, true), Ok((2, &b"state"[..])));
    }
}
