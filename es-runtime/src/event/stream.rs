//! Stream ids: one rule says what a stream id is, whether it comes from a caller
//! ([`StreamId::parse`]) or is read back from a store; one split says where the category ends.
//!
//! A stream id is valid when it is non-empty, at most [`StreamId::MAX_LEN`] bytes, and has no
//! control characters. Its category is the part before the first `-` (the whole id if there is
//! none), its aggregate id the part after.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of one event stream: the aggregate's category and its id, written `category-id`.
///
/// A stream id is valid when it is non-empty, at most [`StreamId::MAX_LEN`] bytes, and has no
/// control characters. [`StreamId::new`] also requires the category to be non-empty and free
/// of `-`, so the category of any id is the part before its first `-`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// The longest stream id in bytes. It keeps every store key (stream id plus an 8-byte
    /// version) well under LMDB's 511-byte key limit.
    pub const MAX_LEN: usize = 400;

    /// The stream of aggregate `id` in `category` (an [`Aggregate::NAME`](crate::Aggregate::NAME)).
    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, InvalidStreamId> {
        if category.is_empty() || category.contains('-') {
            return Err(InvalidStreamId::new(
                category,
                "the category must be non-empty and contain no `-`",
            ));
        }
        let id = id.to_string();
        if id.is_empty() {
            return Err(InvalidStreamId::new(
                format!("{category}-"),
                "the aggregate id is empty",
            ));
        }
        Self::parse(format!("{category}-{id}"))
    }

    /// Validates a whole stream id.
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let s = s.into();
        match check(&s) {
            Ok(()) => Ok(StreamId(s.into())),
            Err(flaw) => Err(InvalidStreamId::new(s, flaw.to_string())),
        }
    }

    /// A stream id read back from a store: checked like [`StreamId::parse`] (a store written
    /// by other code, or damaged, may hold anything), with one allocation.
    pub(crate) fn from_stored(s: &str) -> Result<Self, Flaw> {
        check(s)?;
        Ok(StreamId(s.into()))
    }

    /// The whole id, `category-id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the part before the first `-` (the whole id if there is none).
    pub fn category(&self) -> &str {
        split(&self.0).0
    }

    /// The aggregate id: the part after the first `-` (empty if there is none).
    pub fn id(&self) -> &str {
        split(&self.0).1
    }
}

/// Why a string is not a stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// It is empty.
    Empty,
    /// It has this many bytes, more than [`StreamId::MAX_LEN`].
    TooLong(usize),
    /// It holds a control character.
    Control,
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::Empty => f.write_str("a stream id must not be empty"),
            Flaw::TooLong(len) => write!(
                f,
                "a stream id is at most {} bytes; this one has {len}",
                StreamId::MAX_LEN
            ),
            Flaw::Control => f.write_str("a stream id must not contain control characters"),
        }
    }
}

/// The rule of the module docs.
fn check(s: &str) -> Result<(), Flaw> {
    if s.is_empty() {
        Err(Flaw::Empty)
    } else if s.len() > StreamId::MAX_LEN {
        Err(Flaw::TooLong(s.len()))
    } else if s.chars().any(char::is_control) {
        Err(Flaw::Control)
    } else {
        Ok(())
    }
}

/// A stream id's category and aggregate id: the parts before and after the first `-` (the
/// whole id and nothing if there is none).
pub(crate) fn split(stream: &str) -> (&str, &str) {
    stream.split_once('-').unwrap_or((stream, ""))
}

/// A stream id that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream id {id:?}: {reason}")]
pub struct InvalidStreamId {
    /// The rejected id (cut to 64 characters).
    pub id: String,
    /// Why it was rejected.
    pub reason: String,
}

impl InvalidStreamId {
    fn new(id: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut id = id.into();
        if let Some((cut, _)) = id.char_indices().nth(64) {
            id.truncate(cut);
            id.push('…');
        }
        InvalidStreamId {
            id,
            reason: reason.into(),
        }
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StreamId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for StreamId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for StreamId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<StreamId> for String {
    fn eq(&self, other: &StreamId) -> bool {
        **self == *other.0
    }
}

impl PartialEq<StreamId> for str {
    fn eq(&self, other: &StreamId) -> bool {
        *self == *other.0
    }
}

impl PartialEq<StreamId> for &str {
    fn eq(&self, other: &StreamId) -> bool {
        **self == *other.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(s: String) -> Result<Self, InvalidStreamId> {
        StreamId::parse(s)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(s: &str) -> Result<Self, InvalidStreamId> {
        StreamId::parse(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_category_is_the_part_before_the_first_dash() {
        let cases = [
            ("account-1", "account", "1"),
            ("account-1-2", "account", "1-2"),
            ("account", "account", ""),
            ("-1", "", "1"),
        ];
        for (s, category, id) in cases {
            let stream = StreamId::parse(s).expect("valid");
            assert_eq!((stream.category(), stream.id()), (category, id), "{s}");
            assert_eq!(split(s), (category, id), "{s}");
        }
    }

    #[test]
    fn parsed_and_stored_ids_follow_one_rule() {
        let long = "x".repeat(StreamId::MAX_LEN + 1);
        let longest = "x".repeat(StreamId::MAX_LEN);
        for s in ["", "account-\n1", "a\u{7f}", long.as_str()] {
            let parsed = StreamId::parse(s).expect_err(s);
            let stored = StreamId::from_stored(s).expect_err(s);
            assert_eq!(parsed.reason, stored.to_string(), "{s:?}");
        }
        for s in ["account-1", "é-ü", longest.as_str()] {
            assert_eq!(
                StreamId::parse(s).expect(s),
                StreamId::from_stored(s).expect(s)
            );
        }
    }
}
