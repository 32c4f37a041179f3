//! Read models kept inside the LMDB store, updated in the same write transaction as their
//! projection's checkpoint: each event is applied exactly once, whatever crashes.
//!
//! A [`TableProjection`] owns one table, a sorted map of byte keys to byte values named after
//! the projection. A [`TableRunner`] reads a chunk of events after the checkpoint, applies them
//! to the table and moves the checkpoint, all in one LMDB write transaction: either the whole
//! chunk and its checkpoint are durable, or none of it is. [`LmdbStore::read_table`] reads the
//! table on a consistent snapshot, together with the position it reflects.

use std::cell::RefCell;
use std::fmt;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use heed::RwTxn;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::fail::{Fail, read_failed};
use super::{BytesDb, Inner, LmdbStore};
use crate::aggregate::DomainEvent;
use crate::error::{Location, ReadError, WriteError};
use crate::event::Timestamp;
use crate::host::error::panic_message;
use crate::read::{Envelope, reads};
use crate::runner::sealed::Sealed;
use crate::runner::{Advanced, Chunk, Feed, ProjectionError, Runner};
use crate::store::EventStore;

/// The longest projection name, in bytes.
const MAX_NAME: usize = 200;
/// LMDB's key limit, which the table name, a separator and the user's key share.
const MAX_KEY: usize = 511;

/// A projection whose read model is a [`Table`] in the LMDB store.
///
/// `apply` takes `&self`: all the state lives in the table, so a chunk that is rolled back (a
/// crash, a full map being grown, an event the projection refuses) leaves nothing behind, and
/// running it again gives the same table.
///
/// ```
/// use es_runtime::LmdbStore;
/// use es_runtime::read::Envelope;
/// use es_runtime::store::lmdb::{Table, TableProjection, TableRunner};
/// # use es_runtime::DomainEvent;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # enum AccountEvent { Deposited { amount: u64 } }
/// # impl DomainEvent for AccountEvent {
/// #     const TYPES: &'static [&'static str] = &["Deposited"];
/// #     fn event_type(&self) -> &'static str { "Deposited" }
/// # }
///
/// /// Deposits per account.
/// struct Deposits;
///
/// impl TableProjection for Deposits {
///     type Event = AccountEvent;
///     type Error = std::convert::Infallible;
///     fn name(&self) -> &str { "deposits" }
///     fn apply(&self, table: &mut Table<'_>, e: Envelope<'_, AccountEvent>) -> Result<(), Self::Error> {
///         let AccountEvent::Deposited { amount } = e.event;
///         table.update(e.aggregate_id(), |total: &mut u64| *total += amount);
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = LmdbStore::temporary(Default::default())?;
/// let mut runner = TableRunner::new(&store, Deposits);
/// runner.catch_up()?;
/// let total: Option<u64> = store.read_table("deposits", |t| t.get_value("alice"))??;
/// assert_eq!(total, None);
/// # Ok(())
/// # }
/// ```
pub trait TableProjection {
    /// The events it reads. Events whose stored type name is not in
    /// [`DomainEvent::TYPES`] are skipped without decoding.
    type Event: DomainEvent;

    /// Why applying an event can fail.
    type Error: std::error::Error + Send + Sync + 'static;

    /// A unique name: the name of its table and the key of its checkpoint (1 to 200 bytes,
    /// no NUL byte).
    fn name(&self) -> &str;

    /// The stream categories it reads (an aggregate's `NAME`); empty: all. By default, those
    /// of its event type ([`DomainEvent::CATEGORIES`]), as for
    /// [`Projection::categories`](crate::projection::Projection::categories).
    fn categories(&self) -> &[&str] {
        Self::Event::CATEGORIES
    }

    /// Folds one event into the table.
    ///
    /// When it returns an error, whatever it wrote for this event is rolled back, the
    /// events before it are committed with the checkpoint just before it, and the runner
    /// stops with [`ProjectionError::Apply`]; when it panics, the same, and the runner stops
    /// with [`ProjectionError::Panicked`].
    fn apply(
        &self,
        table: &mut Table<'_>,
        event: Envelope<'_, Self::Event>,
    ) -> Result<(), Self::Error>;
}

/// Byte access to one table inside an LMDB write transaction.
trait WriteOps {
    fn get(&self, key: &[u8]) -> heed::Result<Option<&[u8]>>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> heed::Result<()>;
    fn delete(&mut self, key: &[u8]) -> heed::Result<bool>;
}

struct Writer<'t, 'e> {
    txn: &'t mut RwTxn<'e>,
    db: BytesDb,
}

impl WriteOps for Writer<'_, '_> {
    fn get(&self, key: &[u8]) -> heed::Result<Option<&[u8]>> {
        self.db.get(self.txn, key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> heed::Result<()> {
        self.db.put(self.txn, key, value)
    }

    fn delete(&mut self, key: &[u8]) -> heed::Result<bool> {
        self.db.delete(self.txn, key)
    }
}

/// A projection's table, as [`TableProjection::apply`] sees it: reads see the writes made
/// before them in the same chunk.
///
/// Keys are bytes (`&str` and `&[u8]` both work) of at most 510 bytes minus the projection's
/// name; values are bytes, or any serde value through [`get_value`](Table::get_value),
/// [`put_value`](Table::put_value) and [`update`](Table::update) (stored as MessagePack with
/// field names, so adding a field with `#[serde(default)]` keeps old values readable).
///
/// Reads take `&self`, as on [`ReadOnlyTable`]: [`get`](Table::get) and
/// [`ReadOnlyTable::get`] take the same receiver and key. They differ in what a failure is:
/// storage failures are not returned to `apply` (so `get` answers `Option`, where
/// `ReadOnlyTable::get` answers `Result<Option<_>, _>`); the first one is kept, later calls do
/// nothing (reads answer `None`), and the runner rolls the chunk back and reports it. A full
/// map is grown and the chunk is applied again.
pub struct Table<'a> {
    ops: &'a mut (dyn WriteOps + 'a),
    /// The projection's name and a NUL byte, then the key being used.
    key: RefCell<Vec<u8>>,
    prefix: usize,
    failure: RefCell<Option<Fail>>,
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field(
                "name",
                &String::from_utf8_lossy(&self.key.borrow()[..self.prefix - 1]),
            )
            .finish_non_exhaustive()
    }
}

impl<'a> Table<'a> {
    fn new(ops: &'a mut (dyn WriteOps + 'a), name: &str) -> Self {
        let mut key = Vec::with_capacity(64);
        key.extend_from_slice(name.as_bytes());
        key.push(0);
        Table {
            prefix: key.len(),
            ops,
            key: RefCell::new(key),
            failure: RefCell::new(None),
        }
    }

    /// Whether an earlier call failed (the chunk will be rolled back).
    pub fn failed(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// The first failure, taken: the runner's, once `apply` returns.
    fn take_failure(&mut self) -> Option<Fail> {
        self.failure.get_mut().take()
    }

    /// Whether `key` can be used, after recording why it cannot.
    fn usable(&self, key: &[u8]) -> bool {
        if self.failed() {
            return false;
        }
        if self.prefix + key.len() > MAX_KEY {
            let reason = format!(
                "a key of table {:?} has at most {} bytes; this one has {}",
                self.name(),
                MAX_KEY - self.prefix,
                key.len()
            );
            self.record(Fail::Invalid {
                at: self.location(key),
                reason,
            });
            return false;
        }
        true
    }

    /// The table's name.
    fn name(&self) -> String {
        String::from_utf8_lossy(&self.key.borrow()[..self.prefix - 1]).into_owned()
    }

    /// The place of `key` in the table.
    fn location(&self, key: &[u8]) -> Location {
        Location::TableKey {
            table: self.name(),
            key: key.to_vec(),
        }
    }

    /// Keeps `failure` unless an earlier one is kept.
    fn record(&self, failure: Fail) {
        self.failure.borrow_mut().get_or_insert(failure);
    }

    fn fail(&self, e: heed::Error) {
        if !self.failed() {
            self.record(Fail::from(e));
        }
    }

    /// The value stored under `key` (`None` too once a call failed).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = key.as_ref();
        if !self.usable(key) {
            return None;
        }
        let mut buffer = self.key.borrow_mut();
        match self.ops.get(full_key(&mut buffer, self.prefix, key)) {
            Ok(value) => value,
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: impl AsRef<[u8]>) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key`, replacing any value.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = key.as_ref();
        if !self.usable(key) {
            return;
        }
        let full = full_key(self.key.get_mut(), self.prefix, key);
        if let Err(e) = self.ops.put(full, value.as_ref()) {
            self.fail(e);
        }
    }

    /// Removes `key`; whether it had a value.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> bool {
        let key = key.as_ref();
        if !self.usable(key) {
            return false;
        }
        let full = full_key(self.key.get_mut(), self.prefix, key);
        match self.ops.delete(full) {
            Ok(found) => found,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// The value stored under `key`, decoded. A value that does not decode as `T` fails the
    /// chunk like a storage error.
    pub fn get_value<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Option<T> {
        let key = key.as_ref();
        let decoded = self.get(key).map(crate::codec::decode::<T>)?;
        match decoded {
            Ok(value) => Some(value),
            Err(reason) => {
                let at = self.location(key);
                let reason = reason.to_string();
                self.record(Fail::Corrupt { at, reason });
                None
            }
        }
    }

    /// Stores `value`, encoded, under `key`.
    pub fn put_value<T: Serialize + ?Sized>(&mut self, key: impl AsRef<[u8]>, value: &T) {
        match crate::codec::encode(value) {
            Ok(bytes) => self.put(key, bytes),
            Err(e) => {
                let at = self.location(key.as_ref());
                self.record(Fail::Invalid {
                    at,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Changes the value under `key` in place, starting from `T::default()` when there is
    /// none.
    pub fn update<T, R>(&mut self, key: impl AsRef<[u8]>, change: impl FnOnce(&mut T) -> R) -> R
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let key = key.as_ref();
        let mut value: T = self.get_value(key).unwrap_or_default();
        let out = change(&mut value);
        self.put_value(key, &value);
        out
    }
}

/// `key` after the table's prefix (the first `prefix` bytes of `buffer`).
fn full_key<'b>(buffer: &'b mut Vec<u8>, prefix: usize, key: &[u8]) -> &'b [u8] {
    buffer.truncate(prefix);
    buffer.extend_from_slice(key);
    buffer
}

/// A consistent, read-only view of a projection's table, with the checkpoint it reflects.
/// See [`LmdbStore::read_table`].
///
/// Its reads take the receiver and key that [`Table`]'s do, and return storage failures
/// instead of keeping them: [`get`](ReadOnlyTable::get) answers `Result<Option<_>, _>`.
#[doc(alias = "TableView")]
pub struct ReadOnlyTable<'a> {
    txn: &'a heed::RoTxn<'a, heed::WithoutTls>,
    inner: &'a Inner,
    name: &'a str,
    prefix: Vec<u8>,
}

impl fmt::Debug for ReadOnlyTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> ReadOnlyTable<'a> {
    /// The last position the table reflects (0: none).
    pub fn checkpoint(&self) -> Result<u64, ReadError> {
        self.inner
            .checkpoint_in(self.txn, self.name.as_bytes())
            .map(Option::unwrap_or_default)
            .map_err(Fail::into_read_error)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<&'a [u8]>, ReadError> {
        let mut full = self.prefix.clone();
        full.extend_from_slice(key.as_ref());
        self.inner
            .table_db()
            .get(self.txn, &full)
            .map_err(read_failed)
    }

    /// The value stored under `key`, decoded.
    pub fn get_value<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<T>, ReadError> {
        let key = key.as_ref();
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => crate::codec::decode(bytes)
                .map(Some)
                .map_err(|reason| self.bad_value(key, reason)),
        }
    }

    fn bad_value(&self, key: &[u8], reason: crate::error::CodecError) -> ReadError {
        ReadError::Corrupt {
            at: Location::TableKey {
                table: self.name.to_owned(),
                key: key.to_vec(),
            },
            reason: reason.to_string(),
        }
    }

    /// Every entry in key order (keys without the table's prefix).
    pub fn iter(&self) -> Result<Entries<'a>, ReadError> {
        let entries = self
            .inner
            .table_db()
            .prefix_iter(self.txn, &self.prefix)
            .map_err(read_failed)?;
        Ok(Entries {
            entries,
            prefix: self.prefix.len(),
        })
    }

    /// Every entry in key order, keys as text and values decoded.
    pub fn values<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, ReadError> {
        let mut out = Vec::new();
        for entry in self.iter()? {
            let (key, bytes) = entry?;
            let value = crate::codec::decode(bytes).map_err(|r| self.bad_value(key, r))?;
            out.push((String::from_utf8_lossy(key).into_owned(), value));
        }
        Ok(out)
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize, ReadError> {
        let mut n = 0;
        for entry in self.iter()? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> Result<bool, ReadError> {
        Ok(self.iter()?.next().transpose()?.is_none())
    }
}

/// The entries of a table in key order, from [`ReadOnlyTable::iter`].
pub struct Entries<'a> {
    entries: heed::RoPrefix<'a, heed::types::Bytes, heed::types::Bytes>,
    prefix: usize,
}

impl fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let prefix = self.prefix;
        self.entries
            .next()
            .map(|entry| entry.map(|(k, v)| (&k[prefix..], v)).map_err(read_failed))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
        return Err(format!(
            "a projection name has 1 to {MAX_NAME} bytes and no NUL byte; got {name:?}"
        ));
    }
    Ok(())
}

fn table_prefix(name: &str) -> Vec<u8> {
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

impl LmdbStore {
    /// Reads the table of the [`TableProjection`] named `name` on one consistent snapshot:
    /// the entries and [`ReadOnlyTable::checkpoint`] agree, whatever the runner is doing.
    pub fn read_table<R>(
        &self,
        name: &str,
        read: impl FnOnce(&ReadOnlyTable<'_>) -> R,
    ) -> Result<R, ReadError> {
        check_name(name).map_err(|reason| ReadError::InvalidInput {
            at: Location::Table(name.to_owned()),
            reason,
        })?;
        let r = self.inner.reader()?;
        let view = ReadOnlyTable {
            txn: &r.txn,
            inner: &self.inner,
            name,
            prefix: table_prefix(name),
        };
        Ok(read(&view))
    }
}

/// An event of a chunk, decoded and owned, waiting to be applied.
struct Decoded<E> {
    stream: String,
    version: u64,
    position: u64,
    event_id: Uuid,
    timestamp: Timestamp,
    event_type: &'static str,
    event: E,
}

/// Feeds a [`TableProjection`] from an [`LmdbStore`], one write transaction per chunk of
/// events holding the table's updates and the checkpoint: exactly once. A [`Runner`] over a
/// [`TableFeed`]; its API (`catch_up`, `run_until`, `follow`, `rebuild`, `checkpoint_every`,
/// `progress_every`) is the [`Runner`]'s.
///
/// `S` is anything that lends the store: `&LmdbStore`, `Arc<LmdbStore>`, `LmdbStore`.
pub type TableRunner<S, P> = Runner<TableFeed<S, P>>;

/// A [`TableProjection`] with the store that holds its table and checkpoint: what a
/// [`TableRunner`] runs.
#[derive(Debug)]
pub struct TableFeed<S, P> {
    store: S,
    projection: P,
}

impl<S: AsRef<LmdbStore>, P: TableProjection> TableRunner<S, P> {
    /// A runner feeding `projection` from `store`, 1000 log positions per transaction unless
    /// told otherwise.
    pub fn new(store: S, projection: P) -> Self {
        Runner::with_feed(TableFeed { store, projection }, 1000)
    }

    /// Log positions per transaction: the former name of
    /// [`checkpoint_every`](Runner::checkpoint_every).
    #[deprecated(note = "use `checkpoint_every`, the same knob under the name both runners share")]
    pub fn chunk_size(self, positions: u64) -> Self {
        self.checkpoint_every(positions)
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.feed.projection
    }

    /// The store.
    pub fn store(&self) -> &LmdbStore {
        self.feed.store.as_ref()
    }

    /// Reads the projection's table; see [`LmdbStore::read_table`].
    pub fn read<R>(&self, read: impl FnOnce(&ReadOnlyTable<'_>) -> R) -> Result<R, ReadError> {
        self.store().read_table(self.feed.projection.name(), read)
    }
}

impl<S, P> Sealed for TableFeed<S, P> {}

impl<S: AsRef<LmdbStore>, P: TableProjection> Feed for TableFeed<S, P> {
    type Error = P::Error;

    fn store(&self) -> &dyn EventStore {
        self.store.as_ref()
    }

    fn name(&self) -> &str {
        self.projection.name()
    }

    /// Empties the table and resets the checkpoint in one transaction. A crash during the
    /// rebuild that follows leaves a table that matches its checkpoint; running again
    /// continues.
    fn reset(&mut self) -> Result<(), ProjectionError<P::Error>> {
        let name = self.name()?;
        let inner = &self.store.as_ref().inner;
        let prefix = table_prefix(&name);
        let at = || Location::Table(name.clone());
        inner.write(&at, |txn| {
            let mut keys = Vec::new();
            for entry in inner.table_db().prefix_iter(txn, &prefix)? {
                keys.push(entry?.0.to_vec());
            }
            for key in keys {
                inner.table_db().delete(txn, &key)?;
            }
            inner.delete_checkpoint(txn, name.as_bytes())?;
            Ok(())
        })?;
        Ok(())
    }

    /// Applies one chunk in one transaction. When the projection refuses an event, the
    /// transaction is rolled back and the events before it are applied again and committed.
    fn advance(&mut self, chunk: &Chunk) -> Result<Advanced, ProjectionError<P::Error>> {
        let name = self.name()?;
        let name = name.as_str();
        let inner = &self.store.as_ref().inner;
        let at = || Location::Table(name.to_owned());
        let categories = self.projection.categories();
        // Set when an attempt met an event the projection refused: apply only what precedes it.
        let mut limit: Option<u64> = None;
        let mut refused: Option<ProjectionError<P::Error>> = None;
        loop {
            let mut refusal = None;
            let outcome = inner.transact(&at, |txn| {
                refusal = None;
                let from = inner.checkpoint_in(txn, name.as_bytes())?.unwrap_or(0);
                let end = chunk.end(from);
                let mut last = from;
                let mut more = false;
                let mut failure = None;
                let mut decoded: Vec<Decoded<P::Event>> = Vec::new();
                // One record past the chunk is read, when there is one and it may be applied,
                // to learn whether there is more.
                let upto = chunk.read_limit(end).min(limit.unwrap_or(u64::MAX));
                for item in inner.log_forward(txn, from.saturating_add(1), upto)? {
                    let (position, e) = item?;
                    let e = e.map_err(|reason| Fail::Corrupt {
                        at: Location::Position(position),
                        reason,
                    })?;
                    let past_end = chunk.is_past_run(&e, decoded.len() as u64)
                        || limit.is_some_and(|l| position > l);
                    if past_end {
                        break;
                    }
                    if position > end {
                        more = true;
                        break;
                    }
                    if reads::<P::Event>(categories, &e) {
                        match e.decode_all::<P::Event>() {
                            // An event upcast to several is applied as several, at the same
                            // position.
                            Ok(events) => {
                                for event in events {
                                    decoded.push(Decoded {
                                        stream: e.stream.to_owned(),
                                        version: e.version,
                                        position,
                                        event_id: e.event_id,
                                        timestamp: e.timestamp,
                                        event_type: event.event_type(),
                                        event,
                                    });
                                }
                            }
                            Err(source) => {
                                failure = Some(ProjectionError::Decode {
                                    projection: name.to_owned(),
                                    position,
                                    source,
                                });
                                break;
                            }
                        }
                    }
                    last = position;
                }
                let mut writer = Writer {
                    txn,
                    db: inner.table_db(),
                };
                let mut table = Table::new(&mut writer, name);
                for p in &decoded {
                    let envelope = Envelope {
                        stream: &p.stream,
                        version: p.version,
                        position: p.position,
                        event_id: p.event_id,
                        timestamp: p.timestamp,
                        event: &p.event,
                    };
                    let projection = &self.projection;
                    let result =
                        catch_unwind(AssertUnwindSafe(|| projection.apply(&mut table, envelope)));
                    let result = match result {
                        Ok(result) => result,
                        Err(panic) => {
                            refusal = Some((
                                p.position,
                                ProjectionError::Panicked {
                                    projection: name.to_owned(),
                                    stream: p.stream.clone(),
                                    version: p.version,
                                    position: p.position,
                                    message: panic_message(&*panic),
                                },
                            ));
                            // Roll back: whatever the panicking event wrote must not stay.
                            return Ok((ControlFlow::Break(()), false));
                        }
                    };
                    if let Some(fail) = table.take_failure() {
                        return Err(fail);
                    }
                    if let Err(source) = result {
                        refusal = Some((
                            p.position,
                            ProjectionError::Apply {
                                projection: name.to_owned(),
                                stream: p.stream.clone(),
                                version: p.version,
                                position: p.position,
                                event_type: p.event_type.to_owned(),
                                source,
                            },
                        ));
                        // Roll back: the refused event's writes must not stay.
                        return Ok((ControlFlow::Break(()), false));
                    }
                }
                drop(table);
                if last != from {
                    inner.put_checkpoint(txn, name.as_bytes(), last)?;
                }
                let done = Advanced {
                    from,
                    to: last,
                    applied: decoded.len() as u64,
                    more,
                };
                Ok((ControlFlow::Continue((done, failure)), last != from))
            })?;
            match outcome {
                ControlFlow::Continue((done, failure)) => {
                    return match refused.or(failure) {
                        Some(error) => Err(error),
                        None => Ok(done),
                    };
                }
                ControlFlow::Break(()) => {
                    let (position, error) = refusal.take().expect("a refusal was recorded");
                    // Apply what precedes the refused event (nothing, if it came first).
                    limit = Some(position - 1);
                    refused = Some(error);
                }
            }
        }
    }
}

impl<S, P: TableProjection> TableFeed<S, P> {
    /// The projection's name, checked to be one.
    fn name(&self) -> Result<String, ProjectionError<P::Error>> {
        let name = self.projection.name();
        check_name(name).map_err(|reason| {
            ProjectionError::Checkpoint(WriteError::InvalidInput {
                at: Location::Checkpoint(name.to_owned()),
                reason,
            })
        })?;
        Ok(name.to_owned())
    }
}

impl AsRef<LmdbStore> for LmdbStore {
    fn as_ref(&self) -> &LmdbStore {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table over nothing: every key is absent, every write succeeds.
    struct Nowhere;

    impl WriteOps for Nowhere {
        fn get(&self, _: &[u8]) -> heed::Result<Option<&[u8]>> {
            Ok(None)
        }
        fn put(&mut self, _: &[u8], _: &[u8]) -> heed::Result<()> {
            Ok(())
        }
        fn delete(&mut self, _: &[u8]) -> heed::Result<bool> {
            Ok(false)
        }
    }

    #[test]
    fn a_key_over_the_limit_is_invalid_input_at_that_key() {
        let mut ops = Nowhere;
        let mut table = Table::new(&mut ops, "t");
        let key = vec![b'k'; MAX_KEY];
        table.put(&key, b"v");
        match table
            .failure
            .take()
            .map(|f| f.into_write_error(Location::Table("t".into())))
        {
            Some(WriteError::InvalidInput { at, reason }) => {
                assert_eq!(
                    at,
                    Location::TableKey {
                        table: "t".to_owned(),
                        key
                    }
                );
                assert!(reason.contains("at most"), "{reason}");
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
}
