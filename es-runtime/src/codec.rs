//! How events, metadata and snapshots are stored as bytes.
//!
//! # The payload format
//!
//! A payload is [MessagePack] with named fields: an event enum is written in serde's externally
//! tagged form, `{"Deposited": {"amount": 100}}`, and the map key is the event's stored type
//! name, which the store also keeps beside the payload for filtering. This choice gives:
//!
//! - **Evolution.** Fields are found by name, so adding a field with `#[serde(default)]` reads
//!   old payloads, and unknown fields are skipped. A renamed event keeps decoding through
//!   `#[event(alias = "Old")]` (or `#[event(name = "Old")]` to keep storing the old name).
//! - **Self-description.** Any payload converts to JSON without the Rust types ([`to_json`]),
//!   so tools can show stored events.
//! - **Speed.** Decoding a small bank event takes well under 100 ns, so a 100,000-event stream
//!   rehydrates within the 25 ms goal.
//!
//! Snapshots use the same format; metadata is MessagePack too, and empty metadata is stored as
//! zero bytes.
//!
//! Every failure is a [`CodecError`], with the MessagePack library's error as its source;
//! [`EncodeError`] and [`DecodeError`](crate::DecodeError) wrap it with what was being written or read.
//!
//! [MessagePack]: https://msgpack.org

use std::cell::Cell;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::error::CodecError;
use crate::error::EncodeError;
use crate::event::metadata::Metadata;

/// Encodes a value (an event, a state) as named-field MessagePack.
///
/// The result is allocated once, at its exact size: the value is written into a reused
/// per-thread buffer first, so a store keeping the bytes holds no spare capacity.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    thread_local!(static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) });
    // Taken, not borrowed: a `Serialize` impl that encodes something itself gets a fresh one.
    // During thread teardown (an `encode` from another thread-local's destructor) the buffer
    // may be gone: use a fresh one then.
    let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
    scratch.clear();
    let result = encode_into(value, &mut scratch).map(|()| scratch.as_slice().to_vec());
    if scratch.capacity() <= SCRATCH_KEPT {
        let _ = SCRATCH.try_with(|cell| cell.set(scratch));
    }
    result
}

/// The largest per-thread encoding buffer kept between calls; larger values (big snapshots)
/// get a buffer of their own each time.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Encodes a value into `buf`, appending.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut ser = rmp_serde::Serializer::new(buf).with_struct_map();
    value
        .serialize(&mut ser)
        .map_err(|e| EncodeError(CodecError::Encode(e)))
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(CodecError::Decode)
}

/// Encodes metadata; empty metadata takes no bytes.
pub fn encode_metadata(metadata: &Metadata) -> Vec<u8> {
    if metadata.is_empty() {
        return Vec::new();
    }
    // Metadata holds only strings, uuids and maps, which always encode.
    encode(metadata).unwrap_or_default()
}

/// Decodes metadata written by [`encode_metadata`].
pub fn decode_metadata(bytes: &[u8]) -> Result<Metadata, CodecError> {
    if bytes.is_empty() {
        return Ok(Metadata::default());
    }
    decode(bytes)
}

/// Converts any stored payload to JSON, without its Rust type.
///
/// Binary strings become arrays of numbers; map keys that are not strings are written in their
/// JSON form.
pub fn to_json(bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
    let mut rd = bytes;
    let value = rmpv::decode::read_value(&mut rd).map_err(CodecError::Malformed)?;
    if !rd.is_empty() {
        return Err(CodecError::TrailingBytes { count: rd.len() });
    }
    Ok(value_to_json(value))
}

fn value_to_json(v: rmpv::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        rmpv::Value::Nil => J::Null,
        rmpv::Value::Boolean(b) => J::Bool(b),
        rmpv::Value::Integer(i) => {
            if let Some(u) = i.as_u64() {
                J::from(u)
            } else if let Some(s) = i.as_i64() {
                J::from(s)
            } else {
                J::Null
            }
        }
        rmpv::Value::F32(f) => J::from(f64::from(f)),
        rmpv::Value::F64(f) => J::from(f),
        rmpv::Value::String(s) => match s.into_str() {
            Some(s) => J::String(s),
            None => J::Null,
        },
        rmpv::Value::Binary(b) => J::Array(b.into_iter().map(J::from).collect()),
        rmpv::Value::Array(a) => J::Array(a.into_iter().map(value_to_json).collect()),
        rmpv::Value::Map(m) => J::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        rmpv::Value::String(s) => s.into_str().unwrap_or_default(),
                        other => value_to_json(other).to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        rmpv::Value::Ext(tag, data) => serde_json::json!({ "ext": tag, "data": data }),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// A value whose `Serialize` always fails.
    struct Unwritable;

    impl Serialize for Unwritable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot be written"))
        }
    }

    #[test]
    fn failures_carry_the_message_pack_error_as_their_source() {
        let err = encode(&Unwritable).unwrap_err();
        assert_eq!(err.to_string(), "could not encode: cannot be written");
        assert!(matches!(err.0, CodecError::Encode(_)), "{err:?}");
        let source = err
            .source()
            .and_then(|e| e.source())
            .expect("the library's error");
        assert!(source.is::<rmp_serde::encode::Error>(), "{source:?}");

        let err = decode::<u64>(b"\xa1x").unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
        let source = err.source().expect("the library's error");
        assert!(source.is::<rmp_serde::decode::Error>(), "{source:?}");
        assert_eq!(err.to_string(), source.to_string());
        assert!(matches!(
            decode_metadata(b"\xc1"),
            Err(CodecError::Decode(_))
        ));

        assert!(matches!(to_json(b""), Err(CodecError::Malformed(_))));
        let err = to_json(b"\xc0\xc0").unwrap_err();
        assert!(
            matches!(err, CodecError::TrailingBytes { count: 1 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "1 trailing bytes after the payload");
    }
}
