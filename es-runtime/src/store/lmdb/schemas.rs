//! Recorded schemas: per aggregate name, every schema a host recorded, by revision.
//!
//! The rule: records are only added, each after the newest of its name and only when it
//! differs from it, in one write transaction. The `schemas` database is created by a writable
//! open when missing (a store written before it existed gains it without a format change: no
//! other record changes, and a build without it ignores it); a read-only open of such a store
//! has no schemas to list.
//!
//! Key: the name's length (`u16`, big-endian), the name, the revision (`u32`, big-endian), so
//! that one name's records are contiguous and in revision order. Value: a tag byte (1), a
//! CRC-32 (big-endian) of the key and of the rest of the value, the time recorded (`u64`
//! nanoseconds, big-endian), the schema's JSON.

use heed::RoTxn;

use super::fail::Fail;
use super::{BytesDb, Inner};
use crate::error::{Location, ReadError, WriteError};
use crate::event::Timestamp;
use crate::schema::{OwnedSchema, RecordedSchema};
use crate::store::schemas;

const TAG: u8 = 1;
const HEADER: usize = 1 + 4 + 8;

impl Inner {
    pub(super) fn save_schema(
        &self,
        schema: &OwnedSchema,
    ) -> Result<Option<RecordedSchema>, WriteError> {
        let (name, json) = schemas::prepare(schema)?;
        let at = || Location::Schema(name.to_owned());
        let Some(db) = self.schemas else {
            return Err(WriteError::ReadOnly { at: at() });
        };
        let prefix = prefix(name);
        // Looked up on a snapshot first: an unchanged schema (what almost every host start
        // finds) takes no writer lock, and reads as unchanged on a read-only store too.
        {
            let r = self.reader().map_err(|e| WriteError::Storage {
                at: at(),
                source: Box::new(e),
            })?;
            let newest = newest(db, &r.txn, &prefix).map_err(|f| f.into_write_error(at()))?;
            if newest.is_some_and(|r| r.json == json) {
                return Ok(None);
            }
        }
        self.transact(&at, |txn| {
            let newest = newest(db, txn, &prefix)?;
            let newest = newest.as_ref().map(|r| (r.revision, r.json.as_str()));
            let Some(revision) = schemas::next_revision(newest, &json) else {
                return Ok((None, false));
            };
            let record =
                RecordedSchema::new(name.to_owned(), revision, self.clock.now(), json.clone());
            let key = key(&prefix, revision);
            db.put(txn, &key, &value(&key, &record))?;
            Ok((Some(record), true))
        })
    }

    pub(super) fn import_schemas(&self, records: Vec<RecordedSchema>) -> Result<u64, WriteError> {
        if records.is_empty() {
            return Ok(0);
        }
        let at = || Location::Schema(records[0].name.clone());
        let Some(db) = self.schemas else {
            return Err(WriteError::ReadOnly { at: at() });
        };
        // Checked before the writer is taken, and again inside its transaction.
        schemas::to_import(&[], records.clone())?;
        let mut refused = None;
        let written = self.transact(&at, |txn| {
            let mut held = Vec::new();
            for entry in db.iter(txn)? {
                let (key, value) = entry?;
                held.push(decode(key, value)?);
            }
            let taken = match schemas::to_import(&held, records.clone()) {
                Ok(taken) => taken,
                Err(e) => {
                    refused = Some(e);
                    return Ok((0, false));
                }
            };
            for record in &taken {
                let key = key(&prefix(&record.name), record.revision);
                db.put(txn, &key, &value(&key, record))?;
            }
            Ok((taken.len() as u64, !taken.is_empty()))
        })?;
        match refused {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    pub(super) fn schemas(&self) -> Result<Vec<RecordedSchema>, ReadError> {
        let Some(db) = self.schemas else {
            return Ok(Vec::new());
        };
        let r = self.reader()?;
        let mut out = Vec::new();
        for entry in db.iter(&r.txn).map_err(super::fail::read_failed)? {
            let (key, value) = entry.map_err(super::fail::read_failed)?;
            out.push(decode(key, value).map_err(Fail::into_read_error)?);
        }
        schemas::sort(&mut out);
        Ok(out)
    }
}

/// The newest record under `prefix`, as `txn` sees it.
fn newest(db: BytesDb, txn: &RoTxn<'_>, prefix: &[u8]) -> Result<Option<RecordedSchema>, Fail> {
    match db.rev_prefix_iter(txn, prefix)?.next() {
        None => Ok(None),
        Some(entry) => {
            let (key, value) = entry?;
            decode(key, value).map(Some)
        }
    }
}

fn prefix(name: &str) -> Vec<u8> {
    let len = u16::try_from(name.len()).expect("schema names have at most 500 bytes");
    let mut prefix = Vec::with_capacity(2 + name.len() + 4);
    prefix.extend_from_slice(&len.to_be_bytes());
    prefix.extend_from_slice(name.as_bytes());
    prefix
}

fn key(prefix: &[u8], revision: u32) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&revision.to_be_bytes());
    key
}

fn checksum(key: &[u8], rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(rest);
    hasher.finalize()
}

fn value(key: &[u8], record: &RecordedSchema) -> Vec<u8> {
    let mut rest = Vec::with_capacity(1 + 8 + record.json.len());
    rest.push(TAG);
    rest.extend_from_slice(&record.recorded_at.0.to_be_bytes());
    rest.extend_from_slice(record.json.as_bytes());
    let mut value = Vec::with_capacity(HEADER + record.json.len());
    value.push(TAG);
    value.extend_from_slice(&checksum(key, &rest).to_be_bytes());
    value.extend_from_slice(&rest[1..]);
    value
}

pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<RecordedSchema, Fail> {
    let corrupt = |name: String, reason: String| Fail::Corrupt {
        at: Location::Schema(name),
        reason,
    };
    let name_len = key
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let (name, revision) = match name_len {
        Some(len) if key.len() == 2 + len + 4 && std::str::from_utf8(&key[2..2 + len]).is_ok() => (
            String::from_utf8_lossy(&key[2..2 + len]).into_owned(),
            u32::from_be_bytes(key[2 + len..].try_into().expect("four bytes")),
        ),
        _ => {
            return Err(corrupt(
                String::from_utf8_lossy(key).into_owned(),
                format!("a key of {} bytes that is no schema record's", key.len()),
            ));
        }
    };
    if value.len() < HEADER || value[0] != TAG {
        return Err(corrupt(
            name,
            format!(
                "revision {revision}: not a schema record ({} bytes)",
                value.len()
            ),
        ));
    }
    let stored = u32::from_be_bytes(value[1..5].try_into().expect("four bytes"));
    let mut rest = Vec::with_capacity(value.len() - 4);
    rest.push(TAG);
    rest.extend_from_slice(&value[5..]);
    if checksum(key, &rest) != stored {
        return Err(corrupt(
            name,
            format!("revision {revision}: checksum mismatch"),
        ));
    }
    let recorded_at = Timestamp(u64::from_be_bytes(
        value[5..13].try_into().expect("eight bytes"),
    ));
    let json = match std::str::from_utf8(&value[HEADER..]) {
        Ok(json) => json.to_owned(),
        Err(e) => return Err(corrupt(name, format!("revision {revision}: {e}"))),
    };
    Ok(RecordedSchema::new(name, revision, recorded_at, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_a_changed_byte_is_corrupt() {
        let record = RecordedSchema::new(
            "account".to_owned(),
            3,
            Timestamp(42),
            r#"{"name":"account"}"#.to_owned(),
        );
        let key = key(&prefix("account"), 3);
        let value = value(&key, &record);
        assert!(decode(&key, &value).ok() == Some(record));
        for at in [0, 2, 6, value.len() - 1] {
            let mut damaged = value.clone();
            damaged[at] ^= 0x40;
            assert!(
                matches!(decode(&key, &damaged), Err(Fail::Corrupt { .. })),
                "byte {at}"
            );
        }
        let mut other_key = key.clone();
        *other_key.last_mut().unwrap() = 4;
        assert!(matches!(
            decode(&other_key, &value),
            Err(Fail::Corrupt { .. })
        ));
        assert!(matches!(
            decode(&key[..3], &value),
            Err(Fail::Corrupt { .. })
        ));
    }
}
