//! Reading events: a stream by version, chunk by chunk along its back pointers, and the
//! global log by position (see "Finding a stream's events" in `docs/STORAGE.md`).

use std::ops::ControlFlow;

use super::Inner;
use super::fail::{Fail, corrupt, read_failed};
use super::log::{LogForward, LogWalker};
use super::record::{self, BLOCK};
use crate::error::{Location, ReadError};
use crate::event::StreamId;
use crate::store::Visitor;

/// How many events of a stream a read walks back over at most before visiting them: a multiple
/// of `BLOCK`, so that each chunk but the last ends at an indexed event.
const CHUNK: u64 = 8 * BLOCK;

impl Inner {
    pub(super) fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let r = self.reader()?;
        let name = stream.as_str();
        let (head_version, head_position) = self
            .head_in(&r.txn, stream)
            .map_err(Fail::into_read_error)?;
        let mut lo = from.max(1);
        if lo > head_version {
            return Ok(());
        }
        let mut key = Vec::new();
        let mut log = LogWalker::new(self.log);
        let mut chunk = Vec::with_capacity(CHUNK as usize);
        // Chunk by chunk in version order: find the chunk's last event (in the index, or the
        // head for the last chunk), walk the back pointers down to the chunk's first wanted
        // version, then visit the chunk forwards. Walking back also reads memory upwards (LMDB
        // fills a page from its end), which the CPU prefetches well. The first chunk ends at
        // the first indexed version, so that a short read walks back at most one block; each
        // next one `CHUNK` further.
        let mut chunk_end = lo.div_ceil(BLOCK).saturating_mul(BLOCK);
        loop {
            let (end_version, end_position) = if chunk_end <= head_version {
                record::stream_key(&mut key, name, chunk_end);
                let value = self.index.get(&r.txn, &key).map_err(read_failed)?;
                let position = value.and_then(record::read_position).ok_or_else(|| {
                    corrupt(
                        || Location::Event {
                            stream: stream.clone(),
                            version: chunk_end,
                            position: None,
                        },
                        "the stream index has no valid entry for it",
                    )
                })?;
                (chunk_end, position)
            } else {
                (head_version, head_position)
            };
            chunk.clear();
            let (mut version, mut position) = (end_version, end_position);
            loop {
                let at = || Location::Event {
                    stream: stream.clone(),
                    version,
                    position: Some(position),
                };
                let value = log
                    .get(&r.txn, position)
                    .map_err(read_failed)?
                    .ok_or_else(|| corrupt(at, "the log has no such position"))?;
                let (event, previous) = record::decode_in_stream(position, value, name)
                    .map_err(|reason| corrupt(at, reason))?;
                // A record of this stream lends `name` itself: no second comparison.
                if !std::ptr::eq(event.stream, name) || event.version != version {
                    return Err(corrupt(
                        at,
                        format!(
                            "the log holds event {} of stream {:?} there",
                            event.version, event.stream
                        ),
                    ));
                }
                chunk.push(event);
                if version == lo {
                    break;
                }
                if previous == 0 || previous >= position {
                    return Err(corrupt(at, "its link to the previous event is broken"));
                }
                version -= 1;
                position = previous;
            }
            for event in chunk.drain(..).rev() {
                if visitor(event).is_break() {
                    return Ok(());
                }
            }
            if end_version >= head_version {
                return Ok(());
            }
            lo = end_version + 1;
            chunk_end = end_version.saturating_add(CHUNK);
        }
    }

    pub(super) fn read_all(&self, from: u64, visitor: &mut Visitor<'_>) -> Result<(), ReadError> {
        let r = self.reader()?;
        let records =
            LogForward::new(self.log, self.meta, &r.txn, from, u64::MAX).map_err(read_failed)?;
        for item in records {
            let (position, event) = item.map_err(read_failed)?;
            let event = event.map_err(|reason| corrupt(|| Location::Position(position), reason))?;
            if visitor(event) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }
}
