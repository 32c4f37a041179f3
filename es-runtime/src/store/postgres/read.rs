//! Reading rows in key order, a page at a time, the next page asked for before the one
//! received is visited.
//!
//! The rule: a read holds one connection of the pool from its first page to its last, and
//! gives it back only once no page is in flight on it; where the keys are contiguous, a page
//! short of rows below the last key is corruption, never read past.

use std::sync::Arc;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::pool::{self, Pool, Statements};
use super::{Param, PostgresStore, StatementOf, corrupt_row, event_ref};
use crate::error::{BoxError, Location, ReadError};
use crate::event::EventRef;
use crate::store::Visitor;

impl PostgresStore {
    /// Reads pages of rows of `statement` in key order from `from`: `page` gives the
    /// parameters of a page starting at a key with a limit, `key_column` is the column
    /// holding the key (read back to continue). Each page is requested as soon as the one
    /// before it arrived, on the same connection, so the database reads ahead while the
    /// visitor runs.
    ///
    /// With `last` (a statement returning the last key, and its parameters), the keys are
    /// contiguous and a page asks for one range of them: that statement goes out with the
    /// first page, the read ends at the key it returned (or at a short page, if the key
    /// moved on meanwhile), and a page short of rows below it is a hole in the keys.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_rows(
        &self,
        page: impl Fn(u64, i64) -> Vec<Param>,
        statement: fn(&Statements) -> &tokio_postgres::Statement,
        from: u64,
        key_column: usize,
        check: impl Fn(&EventRef<'_>) -> Result<(), String>,
        last: Option<(StatementOf, Vec<Param>)>,
        visitor: &mut Visitor<'_>,
    ) -> Result<(), ReadError> {
        let conn = self
            .pool
            .acquire(&self.runtime)
            .map_err(ReadError::Storage)?;
        let mut reader = Reader {
            pool: &self.pool,
            conn: Some(conn),
            pending: None,
        };
        let ranged = last.is_some();
        let mut last = last;
        let mut request = |reader: &mut Reader<'_>, from: u64, limit: i64| {
            let conn = Arc::clone(reader.conn.as_ref().expect("held until the read ends"));
            let params = page(from, limit);
            let last = last.take();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.runtime.handle().spawn(async move {
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                let rows = conn.client.query(statement(&conn.st), &refs);
                let got = match &last {
                    None => rows.await.map(|rows| (rows, None)),
                    Some((last, params)) => {
                        let last_refs: Vec<&(dyn ToSql + Sync)> =
                            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                        // Sent together: one round trip.
                        tokio::try_join!(conn.client.query(last(&conn.st), &last_refs), rows)
                            .map(|(last, rows)| (rows, Some(last)))
                    }
                };
                let _ = tx.send(got.map_err(BoxError::from));
            });
            reader.pending = Some((rx, from, limit));
        };
        // Pages start small, so that a reader stopping after a few events reads little ahead.
        request(&mut reader, from, 32);
        let mut end: Option<u64> = None;
        loop {
            let (rows, first, limit, last_rows) = reader.wait().map_err(ReadError::Storage)?;
            if let Some(last_rows) = last_rows {
                let key = match last_rows.first() {
                    None => 0,
                    Some(row) => {
                        row.try_get::<_, i64>(0)
                            .map_err(|e| corrupt_row(None, &e))? as u64
                    }
                };
                end = Some(key);
            }
            let full = rows.len() as i64 == limit;
            let key_of = |row: &Row| -> Result<u64, ReadError> {
                let key: i64 = row
                    .try_get(key_column)
                    .map_err(|e| corrupt_row(row.try_get(0).ok(), &e))?;
                Ok(key as u64)
            };
            let next = match rows.last() {
                Some(row) => key_of(row)? + 1,
                None => first,
            };
            if let Some(end) = end.filter(|_| ranged) {
                // Every key of the page's range up to the last one is stored.
                let want = (end + 1).saturating_sub(first).min(limit as u64);
                let mut got = rows.len() as u64;
                if next > end + 1 {
                    // The keys went on meanwhile: count the ones up to `end`.
                    got = 0;
                    for row in &rows {
                        got += u64::from(key_of(row)? <= end);
                    }
                }
                if got < want {
                    return Err(ReadError::Corrupt {
                        at: Location::Store,
                        reason: format!(
                            "keys {first} to {} should all be stored; {got} are",
                            first + want - 1
                        ),
                    });
                }
            }
            let more = full && end.is_none_or(|end| next <= end);
            if more {
                // The next page starts after this one's last key: ask for it before visiting.
                request(&mut reader, next, (limit * 4).min(4096));
            }
            for row in &rows {
                let event = event_ref(row)?;
                check(&event).map_err(|reason| ReadError::Corrupt {
                    at: Location::Position(event.position),
                    reason,
                })?;
                if visitor(event).is_break() {
                    return Ok(());
                }
            }
            if !more {
                return Ok(());
            }
        }
    }
}

/// A read in progress: its connection, and the page requested but not yet received. The
/// connection goes back to the pool once no request of the read is in flight on it.
struct Reader<'a> {
    pool: &'a Pool,
    conn: Option<Arc<pool::Conn>>,
    /// The page's rows (and the last key's, when asked with it), its first key and limit.
    pending: Option<(RowsReceiver, u64, i64)>,
}

type Page = (Vec<Row>, Option<Vec<Row>>);
/// A page's rows, first key and limit, and the last key's rows when asked with it.
type Received = (Vec<Row>, u64, i64, Option<Vec<Row>>);
type RowsReceiver = std::sync::mpsc::Receiver<Result<Page, BoxError>>;

impl Reader<'_> {
    /// The page requested: its rows, first key, limit, and the last key's rows if asked.
    fn wait(&mut self) -> Result<Received, BoxError> {
        let (rx, first, limit) = self.pending.take().expect("a page was requested");
        let (rows, last) = rx
            .recv()
            .unwrap_or_else(|_| Err("the store's database task ended without an answer".into()))?;
        Ok((rows, first, limit, last))
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some((rx, _, _)) = self.pending.take() {
            let _ = rx.recv();
        }
        if let Some(conn) = self.conn.take() {
            self.pool.release(conn);
        }
    }
}
