//! Listing the streams: a page of the `streams` table (one row per stream, its version and
//! the position of its last event, kept in the same transaction as the events), in key order.

use super::{PostgresStore, to_i64};
use crate::error::{Location, ReadError};
use crate::event::StreamId;
use crate::store::StreamHead;

impl PostgresStore {
    /// [`EventStore::streams`](crate::EventStore::streams): the rows after `after`, of
    /// `category` (a stream is of a category when its id is the category, or starts with it
    /// and a `-`).
    pub(super) fn list_streams(
        &self,
        category: Option<&str>,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<StreamHead>, ReadError> {
        // A category never holds a `-`: nothing is of one that does.
        if category.is_some_and(|c| c.contains('-')) || limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            r#"SELECT stream, version, position FROM "{}".streams
               WHERE ($1::text IS NULL OR stream > $1)
                 AND ($2::text IS NULL OR stream = $2 OR starts_with(stream, $2 || '-'))
               ORDER BY stream LIMIT $3"#,
            self.schema
        );
        let after = after.map(StreamId::to_string);
        let category = category.map(str::to_owned);
        let limit = to_i64(limit as u64);
        let rows = self
            .pool
            .with(&self.runtime, move |conn| async move {
                Ok(conn
                    .client
                    .query(&sql, &[&after, &category, &limit])
                    .await?)
            })
            .map_err(ReadError::Storage)?;
        rows.iter()
            .map(|row| {
                let corrupt = |reason: String| ReadError::Corrupt {
                    at: Location::Store,
                    reason: format!("a row of the streams table: {reason}"),
                };
                let stream: String = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
                let version: i64 = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
                let position: i64 = row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
                let stream = StreamId::parse(stream).map_err(|e| corrupt(e.to_string()))?;
                Ok(StreamHead::new(stream, version as u64, position as u64))
            })
            .collect()
    }
}
