//! An event as JSON: its envelope, its payload converted from the stored bytes, and (for an
//! export) the stored bytes themselves, so that nothing is lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use es_runtime::EventRef;
use serde_json::{Map, Value, json};

use crate::output;

/// What to carry beside the readable payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bytes {
    /// Only the readable form.
    None,
    /// The stored payload in hex (`payload_hex`), for a person looking at bytes.
    Hex,
    /// The stored payload in base64 (`payload_base64`): what an import reads back.
    Base64,
}

/// The event's envelope and payload as one JSON object.
pub(crate) fn event(e: &EventRef<'_>, bytes: Bytes) -> Value {
    let mut o = Map::new();
    o.insert("position".into(), json!(e.position));
    o.insert("stream".into(), json!(e.stream));
    o.insert("version".into(), json!(e.version));
    o.insert("type".into(), json!(e.event_type));
    o.insert("event_version".into(), json!(e.event_version));
    o.insert("id".into(), json!(e.event_id.to_string()));
    o.insert("timestamp".into(), json!(output::timestamp(e.timestamp)));
    o.insert("timestamp_ns".into(), json!(e.timestamp.as_nanos()));
    match e.metadata() {
        Ok(m) => {
            o.insert(
                "metadata".into(),
                serde_json::to_value(&m).unwrap_or(Value::Null),
            );
        }
        Err(err) => {
            o.insert("metadata".into(), Value::Null);
            o.insert("metadata_error".into(), json!(err.to_string()));
            o.insert("metadata_base64".into(), json!(BASE64.encode(e.metadata)));
        }
    }
    match es_runtime::codec::to_json(e.payload) {
        Ok(v) => {
            o.insert("payload".into(), v);
        }
        Err(err) => {
            o.insert("payload".into(), Value::Null);
            o.insert("payload_error".into(), json!(err.to_string()));
        }
    }
    match bytes {
        Bytes::None => {}
        Bytes::Hex => {
            o.insert("payload_hex".into(), json!(output::hex(e.payload)));
        }
        Bytes::Base64 => {
            o.insert("payload_base64".into(), json!(BASE64.encode(e.payload)));
        }
    }
    Value::Object(o)
}

/// The payload as compact JSON for one line of a table, or why it is not JSON.
pub(crate) fn payload_text(payload: &[u8]) -> String {
    match es_runtime::codec::to_json(payload) {
        Ok(v) => v.to_string(),
        Err(err) => format!("<not readable: {err}>"),
    }
}

/// The metadata for a person: `correlation=…  causation=…  key=value`, or `-`.
pub(crate) fn metadata_text(e: &EventRef<'_>) -> String {
    match e.metadata() {
        Err(err) => format!("<not readable: {err}>"),
        Ok(m) if m.is_empty() => "-".to_owned(),
        Ok(m) => {
            let mut parts = Vec::new();
            if let Some(id) = m.correlation_id {
                parts.push(format!("correlation={id}"));
            }
            if let Some(id) = m.causation_id {
                parts.push(format!("causation={id}"));
            }
            for (k, v) in &m.user {
                parts.push(format!("{k}={v}"));
            }
            parts.join("  ")
        }
    }
}
