//! The event vocabulary, in layers: ids, stream ids, time, metadata and expected versions
//! depend on nothing else of the crate; the envelopes ([`NewEvent`], [`RecordedEvent`],
//! [`EventRef`]) stand on them and on the [`codec`](crate::codec).

pub(crate) mod decode;
mod envelope;
pub(crate) mod expected_version;
mod id;
pub(crate) mod metadata;
pub(crate) mod stream;
mod time;

pub use self::decode::{decode_event, decode_events};
pub use self::envelope::{EventRef, NewEvent, RecordedEvent};
pub use self::expected_version::ExpectedVersion;
pub use self::id::new_event_id;
pub use self::metadata::Metadata;
pub use self::stream::StreamId;
pub use self::time::{Clock, ManualClock, SystemClock, Timestamp};
