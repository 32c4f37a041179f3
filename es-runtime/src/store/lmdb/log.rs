//! Walking the log: back along a stream's records, and forwards in chunks read backwards.

use heed::types::Bytes;
use heed::{RoTxn, WithoutTls};

use super::record::{self, HEADS_AT_KEY};
use super::{BytesDb, LogDb, Position};
use crate::event::EventRef;

/// The log's last position as `txn` sees it: its last key, or the key after the one before
/// it when that is larger (the last key was damaged into a smaller number, so the records
/// sit out of order), or the heads checkpoint when that is larger still (the heads are only
/// ever stored as of a position of the log: the records after the last key were lost to a
/// damaged page). A reader up to it then meets the damage as a missing position instead of
/// stopping short with `Ok`.
pub(super) fn last_position(log: LogDb, meta: BytesDb, txn: &RoTxn<'_>) -> heed::Result<u64> {
    let heads_at = meta
        .get(txn, HEADS_AT_KEY)?
        .and_then(record::read_position)
        .unwrap_or(0);
    let mut last_two = log.rev_iter(txn)?;
    let Some((last, _)) = last_two.next().transpose()? else {
        return Ok(heads_at);
    };
    let before = last_two.next().transpose()?.map_or(0, |(p, _)| p);
    Ok(last.max(before.saturating_add(1)).max(heads_at))
}

/// Reads log records by position, walking backwards with one cursor while the positions are
/// consecutive (a stream written in batches) and seeking otherwise.
pub(super) struct LogWalker<'t> {
    log: LogDb,
    cursor: Option<(u64, heed::RoRevRange<'t, Position, Bytes>)>,
}

impl<'t> LogWalker<'t> {
    pub(super) fn new(log: LogDb) -> Self {
        LogWalker { log, cursor: None }
    }

    /// The record at `position`, if there is one.
    pub(super) fn get(
        &mut self,
        txn: &'t RoTxn<'t, WithoutTls>,
        position: u64,
    ) -> heed::Result<Option<&'t [u8]>> {
        let cursor = match &mut self.cursor {
            Some((next, cursor)) if *next == position => cursor,
            _ => {
                &mut self
                    .cursor
                    .insert((position, self.log.rev_range(txn, &(..=position))?))
                    .1
            }
        };
        match cursor.next().transpose()? {
            Some((found, value)) if found == position => {
                if let Some((next, _)) = &mut self.cursor {
                    *next = position.wrapping_sub(1);
                }
                Ok(Some(value))
            }
            _ => {
                self.cursor = None;
                Ok(None)
            }
        }
    }
}

/// Reads the log forwards, decoding each record, from a position up to another.
///
/// Positions have no gaps: each record read must be at the position after the one before
/// (the first at the position asked for). A record elsewhere (a damaged key, or a hole in
/// the log) is handed out as an error naming the position where a record was missing, and
/// nothing is read after it.
///
/// The records are read in chunks, each from its last record back to its first, and handed out
/// in order. LMDB fills a page from its end, so records of increasing positions lie at
/// decreasing addresses: a forward read walks memory downwards, which the CPU does not fetch
/// ahead, while a backward read walks it upwards. Reading a 100,000-event log this way, checking
/// each record's checksum, took a third of the time of a forward read (see BENCHMARKS.md).
pub(super) struct LogForward<'t> {
    txn: &'t RoTxn<'t, WithoutTls>,
    log: LogDb,
    /// The first position not read yet, `None` once there is nothing more to read.
    next: Option<u64>,
    /// The position the next record handed out must have.
    expect: u64,
    upto: u64,
    size: u64,
    /// The records read and not yet handed out, last first.
    ahead: Vec<(u64, Result<EventRef<'t>, String>)>,
    /// An error met reading the chunk in `ahead`, handed out after the records before it.
    failed: Option<heed::Error>,
}

/// The most records a chunk of [`LogForward`] holds. The first chunk holds a sixteenth of it,
/// and each next one twice the one before, so a reader that stops early reads little ahead.
const LOG_CHUNK: u64 = 256;

impl<'t> LogForward<'t> {
    /// Reads positions `from..=upto` of `log` in `txn`, or up to the log's last record if it
    /// comes first.
    pub(super) fn new(
        log: LogDb,
        meta: BytesDb,
        txn: &'t RoTxn<'t, WithoutTls>,
        from: u64,
        upto: u64,
    ) -> heed::Result<Self> {
        let last = last_position(log, meta, txn)?;
        Ok(LogForward {
            txn,
            log,
            next: Some(from.max(1)),
            expect: from.max(1),
            upto: upto.min(last),
            size: LOG_CHUNK / 16,
            ahead: Vec::new(),
            failed: None,
        })
    }

    /// Reads the next chunk into `ahead`, or an error reading it into `failed`.
    fn read_chunk(&mut self, first: u64) {
        let last = first.saturating_add(self.size - 1).min(self.upto);
        self.next = last.checked_add(1);
        self.size = (self.size * 2).min(LOG_CHUNK);
        let range = first..=last;
        let failed = match self.log.rev_range(self.txn, &range) {
            Ok(records) => self.decode_all(records),
            Err(e) => Some(e),
        };
        if failed.is_some() {
            // Rare: read the chunk again forwards, so that the records before the failing one
            // are still handed out first.
            self.ahead.clear();
            self.failed = match self.log.range(self.txn, &range) {
                Ok(records) => self.decode_all(records),
                Err(e) => Some(e),
            };
            self.ahead.reverse();
        }
    }

    /// Decodes `records` onto `ahead` until one fails to read, and returns that failure.
    fn decode_all(
        &mut self,
        records: impl Iterator<Item = heed::Result<(u64, &'t [u8])>>,
    ) -> Option<heed::Error> {
        for item in records {
            match item {
                Ok((position, value)) => self
                    .ahead
                    .push((position, record::decode_event(position, value))),
                Err(e) => return Some(e),
            }
        }
        None
    }
}

impl<'t> Iterator for LogForward<'t> {
    /// A record's position and the record decoded, or why it does not decode.
    type Item = heed::Result<(u64, Result<EventRef<'t>, String>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ahead.is_empty() && self.failed.is_none() {
            match self.next {
                Some(first) if first <= self.upto => {
                    self.read_chunk(first);
                    if self.ahead.is_empty() && self.failed.is_none() {
                        // The chunk starts at the position expected, so that one is missing.
                        return Some(Ok(self.missing(format!(
                            "the log has no record at position {}, below its last position {}",
                            self.expect, self.upto
                        ))));
                    }
                }
                // The last chunk ended short of the last position.
                Some(_) if self.expect <= self.upto => {
                    return Some(Ok(self.missing(format!(
                        "the log has no record at position {}, below its last position {}",
                        self.expect, self.upto
                    ))));
                }
                _ => return None,
            }
        }
        match self.ahead.pop() {
            Some((position, _)) if position != self.expect => Some(Ok(self.missing(format!(
                "the log has no record at position {} where one belongs: the next one \
                     read is at position {position} (a damaged key, or a hole in the log)",
                self.expect
            )))),
            Some(record) => {
                self.expect += 1;
                Some(Ok(record))
            }
            None => {
                // Nothing is read after an error.
                self.next = None;
                self.failed.take().map(Err)
            }
        }
    }
}

impl<'t> LogForward<'t> {
    /// The error for a record missing at the expected position; the read ends with it.
    fn missing(&mut self, reason: String) -> (u64, Result<EventRef<'t>, String>) {
        self.next = None;
        self.ahead.clear();
        self.failed = None;
        (self.expect, Err(reason))
    }
}
