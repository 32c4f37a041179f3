//! What an LMDB store's environment holds and how full it is: the memory map, the pages of each
//! database, the free pages, the reader table. Read on one snapshot, nothing written.
//!
//! LMDB allocates pages up to a high-water mark (its last page number) and reuses freed ones
//! from its free list before growing. Every page below the mark is a meta page, a page of a
//! database, or free: the free pages are counted as what is left once the meta pages and
//! every database's pages are taken away (the free list's own few pages included).

use std::path::PathBuf;

use super::{BytesDb, LmdbStore, fail};
use crate::error::ReadError;

/// The pages of one database of a store ([`LmdbStats::databases`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseUse {
    /// The database's name inside the environment (`log`, `heads`, `index`, ...).
    pub name: &'static str,
    /// Its records.
    pub entries: u64,
    /// The height of its B-tree.
    pub depth: u32,
    /// Its branch, leaf and overflow pages.
    pub pages: u64,
}

/// What [`LmdbStore::stats`] found: the environment's size and use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LmdbStats {
    /// The store's directory.
    pub path: PathBuf,
    /// The size of a page in bytes.
    pub page_size: u64,
    /// The current size of the memory map (the most the data file may grow to before the map
    /// itself grows).
    pub map_size: u64,
    /// The most the map may grow to ([`LmdbOptions::max_map_size`](super::LmdbOptions::max_map_size)).
    pub max_map_size: u64,
    /// The length of `data.mdb` (written ahead of the data on some systems, so it may exceed
    /// [`used_pages`](Self::used_pages)).
    pub file_size: u64,
    /// Pages up to LMDB's high-water mark: the meta pages, every database's, and the free ones.
    pub used_pages: u64,
    /// Pages below the high-water mark that no database uses: reused before the file grows.
    pub free_pages: u64,
    /// The transaction id of the last commit.
    pub last_transaction: u64,
    /// Slots of LMDB's reader table.
    pub reader_slots: u32,
    /// Slots taken (by any process; a slot of a process that died stays taken until a writer
    /// clears it).
    pub readers: u32,
    /// Every database of the store, with its pages.
    pub databases: Vec<DatabaseUse>,
}

impl LmdbStats {
    /// Bytes up to the high-water mark.
    pub fn used_bytes(&self) -> u64 {
        self.used_pages * self.page_size
    }

    /// Bytes of the free pages.
    pub fn free_bytes(&self) -> u64 {
        self.free_pages * self.page_size
    }
}

impl LmdbStore {
    /// The environment's size and use (see [`LmdbStats`]), read on one snapshot; works on a
    /// store opened read-only.
    pub fn stats(&self) -> Result<LmdbStats, ReadError> {
        let inner = &self.inner;
        let r = inner.reader()?;
        let info = inner.env.info();
        let named: [(&'static str, BytesDb); 6] = [
            ("heads", inner.heads),
            ("index", inner.index),
            ("snapshots", inner.snapshots),
            ("checkpoints", inner.checkpoints),
            ("tables", inner.tables),
            ("meta", inner.meta),
        ];
        let log = inner.log.stat(&r.txn).map_err(fail::read_failed)?;
        let mut stats = vec![("log", log)];
        for (name, db) in named {
            stats.push((name, db.stat(&r.txn).map_err(fail::read_failed)?));
        }
        let main = inner.env.main_stat();
        let pages =
            |s: &heed::DatabaseStat| (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
        let used_pages = info.last_page_number as u64 + 1;
        // Two meta pages open every LMDB file.
        let taken = 2 + pages(&main) + stats.iter().map(|(_, s)| pages(s)).sum::<u64>();
        let file_size = std::fs::metadata(self.path().join("data.mdb")).map_or(0, |m| m.len());
        Ok(LmdbStats {
            path: self.path().to_owned(),
            page_size: u64::from(main.page_size),
            map_size: info.map_size as u64,
            max_map_size: inner.env.max_map_size() as u64,
            file_size,
            used_pages,
            free_pages: used_pages.saturating_sub(taken),
            last_transaction: info.last_txn_id as u64,
            reader_slots: info.maximum_number_of_readers,
            readers: info.number_of_readers,
            databases: stats
                .into_iter()
                .map(|(name, s)| DatabaseUse {
                    name,
                    entries: s.entries as u64,
                    depth: s.depth,
                    pages: pages(&s),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{ExpectedVersion, NewEvent, StreamId};
    use crate::store::EventStore;
    use crate::store::lmdb::{LmdbOptions, LmdbStore};

    #[test]
    fn the_pages_add_up_and_freed_ones_are_counted() {
        let store = LmdbStore::temporary(LmdbOptions::new()).unwrap();
        let empty = store.stats().unwrap();
        assert_eq!(empty.databases.len(), 7);
        assert_eq!(empty.databases[0].name, "log");
        assert_eq!(empty.databases[0].entries, 0);
        let stream = StreamId::new("acc", 1).unwrap();
        for _ in 0..200 {
            store
                .append(
                    &stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::raw("E", vec![0xc0; 500])],
                )
                .unwrap();
        }
        let full = store.stats().unwrap();
        assert_eq!(full.databases[0].entries, 200);
        assert!(full.databases[0].pages > 10, "{full:?}");
        assert!(full.used_pages > empty.used_pages);
        // Every commit copies the pages it changes: the old copies are free pages.
        assert!(full.free_pages > 0, "{full:?}");
        let in_databases: u64 = full.databases.iter().map(|d| d.pages).sum();
        assert!(
            in_databases + full.free_pages + 2 <= full.used_pages,
            "{full:?}"
        );
        assert!(full.map_size >= full.used_bytes());
        assert!(full.reader_slots >= 126);
        assert!(full.readers >= 1);
    }
}
