//! LMDB's page structure, walked with plain file I/O: nothing is mapped, so damage that makes
//! LMDB fault (a page number past the file, a node outside its page, a loop of pages) is
//! found and reported instead.
//!
//! The walk starts from the meta page of a given transaction and visits every B-tree: the
//! free list (LMDB's database 0: transaction id → the pages it freed), the main database
//! (database name → its record) and each named database. Every page must be one of the
//! file's pages, say its own number, be a branch or leaf page (or an overflow run reached
//! from a leaf), keep its nodes inside itself in key order, and belong to exactly one tree
//! or to the free list; together they must account for every page up to the last one in use.
//! Run it under a read transaction of the same snapshot: LMDB then reuses none of its pages.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Where a meta page's body starts, and the layout of its fields on 64-bit targets (see
/// `datafile`): magic, version, map address, map size, the free list's and the main
/// database's records (48 bytes each), last page, transaction id.
const META_AT: usize = 16;
const FREE_DB_AT: usize = META_AT + 24;
const MAIN_DB_AT: usize = META_AT + 72;
const LAST_PAGE_AT: usize = META_AT + 120;
const TXN_AT: usize = META_AT + 128;

/// A database record: pad (u32), flags (u16), depth (u16), branch, leaf and overflow page
/// counts, entries, root (u64 each).
const DB_RECORD: usize = 48;

const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
/// No page: the root of an empty tree.
const P_INVALID: u64 = u64::MAX;
/// Deeper than any tree of a file of 2^64 bytes.
const MAX_DEPTH: usize = 64;

/// What the walk found.
#[derive(Debug, Default)]
pub(super) struct Walked {
    /// Pages in the file's trees (branch, leaf and overflow).
    pub(super) in_use: u64,
    /// Pages in the free list.
    pub(super) free: u64,
    /// The named databases, with their entries.
    pub(super) databases: Vec<(String, u64)>,
    /// Every flaw, said with the database and page.
    pub(super) damage: Vec<String>,
    /// Whether a flaw is one LMDB could fault on (a page pointer or a node out of bounds,
    /// a page that is not what its tree needs); keys out of order or a miscount are not.
    pub(super) faulty: bool,
}

/// A database's record in a meta page or the main database.
#[derive(Debug, Clone, Copy)]
struct DbRecord {
    depth: u16,
    entries: u64,
    root: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn db_record(b: &[u8]) -> DbRecord {
    DbRecord {
        depth: u16_at(b, 6),
        entries: u64_at(b, 32),
        root: u64_at(b, 40),
    }
}

/// What a tree's walk hands each leaf entry: the walker, the key, the node's flags, the data.
type LeafVisitor<'a> = dyn FnMut(&mut Walker, &[u8], u16, &[u8]) + 'a;

struct Walker {
    file: File,
    page_size: usize,
    last_page: u64,
    /// The tree (or the free list) each page seen belongs to.
    owner: HashMap<u64, String>,
    walked: Walked,
}

impl Walker {
    fn damaged(&mut self, what: String) {
        self.walked.faulty = true;
        self.note(what);
    }

    /// A flaw that LMDB reads through without faulting.
    fn note(&mut self, what: String) {
        // A badly damaged file could report a flaw per page; a few hundred say enough.
        if self.walked.damage.len() < 500 {
            self.walked.damage.push(what);
        }
    }

    fn page(&self, number: u64) -> io::Result<Vec<u8>> {
        let mut page = vec![0; self.page_size];
        self.file
            .read_exact_at(&mut page, number * self.page_size as u64)?;
        Ok(page)
    }

    /// Claims `number` for `tree`: false if it is no page of the file, or already claimed.
    fn claim(&mut self, number: u64, tree: &str) -> bool {
        if !(2..=self.last_page).contains(&number) {
            self.damaged(format!(
                "{tree}: a pointer to page {number}, outside the pages in use (2 to {})",
                self.last_page
            ));
            return false;
        }
        if let Some(other) = self.owner.get(&number) {
            let other = other.clone();
            self.damaged(format!("{tree}: page {number} is also in {other}"));
            return false;
        }
        self.owner.insert(number, tree.to_owned());
        true
    }

    /// Walks the tree `tree` from `record`, handing each leaf entry's key, flags and data to
    /// `leaf` (the data of an overflow run read from it).
    fn tree(
        &mut self,
        tree: &str,
        record: DbRecord,
        integer_keys: bool,
        leaf: &mut LeafVisitor<'_>,
    ) -> io::Result<()> {
        if record.root == P_INVALID {
            if record.entries != 0 {
                self.damaged(format!(
                    "{tree}: no root page, but {} entries",
                    record.entries
                ));
            }
            return Ok(());
        }
        let mut entries = 0;
        let mut last_key: Option<Vec<u8>> = None;
        // Depth first, children in key order, so that leaves are met in key order.
        let mut stack = vec![(record.root, 1usize)];
        while let Some((number, level)) = stack.pop() {
            if level > MAX_DEPTH || !self.claim(number, tree) {
                continue;
            }
            self.walked.in_use += 1;
            let page = self.page(number)?;
            let at = |what: &str| format!("{tree}: page {number} {what}");
            if u64_at(&page, 0) != number {
                self.damaged(at(&format!("says it is page {}", u64_at(&page, 0))));
                continue;
            }
            let flags = u16_at(&page, 10);
            let (lower, upper) = (
                usize::from(u16_at(&page, 12)),
                usize::from(u16_at(&page, 14)),
            );
            let kind = flags & (P_BRANCH | P_LEAF | P_OVERFLOW);
            if (kind != P_BRANCH && kind != P_LEAF) || flags & !(P_BRANCH | P_LEAF | 0x10) != 0 {
                self.damaged(at(&format!(
                    "has flags {flags:#x}, not a branch or leaf page"
                )));
                continue;
            }
            if lower < 16 || lower > upper || upper > self.page_size || lower % 2 != 0 {
                self.damaged(at(&format!("has bounds {lower} and {upper}")));
                continue;
            }
            let leaf_page = kind == P_LEAF;
            if leaf_page != (level == usize::from(record.depth)) {
                self.damaged(at(&format!(
                    "is a {} page at level {level} of a tree of depth {}",
                    if leaf_page { "leaf" } else { "branch" },
                    record.depth
                )));
                continue;
            }
            let mut children = Vec::new();
            for i in 0..(lower - 16) / 2 {
                let node = usize::from(u16_at(&page, 16 + 2 * i));
                if node < upper || node + 8 > self.page_size {
                    self.damaged(at(&format!(
                        "has node {i} at offset {node}, outside its nodes"
                    )));
                    break;
                }
                let (lo, hi) = (u16_at(&page, node), u16_at(&page, node + 2));
                let node_flags = u16_at(&page, node + 4);
                let key_size = usize::from(u16_at(&page, node + 6));
                let key_end = node + 8 + key_size;
                if key_end > self.page_size {
                    self.damaged(at(&format!("has node {i} with a key past its end")));
                    break;
                }
                let key = &page[node + 8..key_end];
                if !leaf_page {
                    let child = u64::from(lo) | u64::from(hi) << 16 | u64::from(node_flags) << 32;
                    children.push(child);
                    continue;
                }
                let ordered = match &last_key {
                    None => true,
                    Some(last) if integer_keys && key.len() == 8 && last.len() == 8 => {
                        u64_at(last, 0) < u64_at(key, 0)
                    }
                    Some(last) => last.as_slice() < key,
                };
                if !ordered {
                    self.note(at(&format!("has node {i} with a key out of order")));
                }
                last_key = Some(key.to_vec());
                entries += 1;
                let size = usize::from(lo) | usize::from(hi) << 16;
                if node_flags & F_DUPDATA != 0 {
                    self.damaged(at(&format!(
                        "has node {i} with duplicates, which no database of the store keeps"
                    )));
                    continue;
                }
                if node_flags & F_BIGDATA != 0 {
                    if key_end + 8 > self.page_size {
                        self.damaged(at(&format!("has node {i} past its end")));
                        continue;
                    }
                    let run = u64_at(&page, key_end);
                    let key = key.to_vec();
                    if let Some(data) = self.overflow(tree, run, size)? {
                        leaf(self, &key, node_flags, &data);
                    }
                    continue;
                }
                if key_end + size > self.page_size {
                    self.damaged(at(&format!("has node {i} with data past its end")));
                    continue;
                }
                let data = page[key_end..key_end + size].to_vec();
                let key = key.to_vec();
                leaf(self, &key, node_flags, &data);
            }
            for child in children.into_iter().rev() {
                stack.push((child, level + 1));
            }
        }
        if entries != record.entries {
            self.note(format!(
                "{tree}: {entries} entries found, and its record says {}",
                record.entries
            ));
        }
        Ok(())
    }

    /// Reads the overflow run from page `first` holding `size` bytes of data, claiming its
    /// pages; `None` if it is damaged.
    fn overflow(&mut self, tree: &str, first: u64, size: usize) -> io::Result<Option<Vec<u8>>> {
        if !self.claim(first, tree) {
            return Ok(None);
        }
        let page = self.page(first)?;
        let pages = u64::from(u16_at(&page, 12)) | u64::from(u16_at(&page, 14)) << 16;
        let needed = (16 + size).div_ceil(self.page_size) as u64;
        if u64_at(&page, 0) != first || u16_at(&page, 10) & P_OVERFLOW == 0 || pages != needed {
            self.damaged(format!(
                "{tree}: page {first} is not an overflow run of {needed} pages for {size} bytes"
            ));
            return Ok(None);
        }
        self.walked.in_use += 1;
        for number in first + 1..first + pages {
            if !self.claim(number, tree) {
                return Ok(None);
            }
            self.walked.in_use += 1;
        }
        let mut data = vec![0; size];
        self.file
            .read_exact_at(&mut data, first * self.page_size as u64 + 16)?;
        Ok(Some(data))
    }
}

/// The names of the databases the store keeps.
pub(super) const DATABASES: [&str; 8] = [
    "log",
    "heads",
    "index",
    "snapshots",
    "checkpoints",
    "meta",
    "tables",
    "schemas",
];

/// Walks the data file in `dir` as of the meta page of transaction `txn` (or of the newer meta
/// page, for a store no process writes); `None` when neither meta page is that transaction's
/// any more (two commits since), as the pages of a newer one may be reused while they are read.
pub(super) fn walk(dir: &Path, txn: Option<u64>) -> io::Result<Option<Walked>> {
    let file = File::open(dir.join(super::datafile::DATA_FILE))?;
    let mut first = vec![0; TXN_AT + 8];
    file.read_exact_at(&mut first, 0)?;
    let page_size = u64::from(u32::from_le_bytes(
        first[FREE_DB_AT..FREE_DB_AT + 4]
            .try_into()
            .unwrap_or_default(),
    ));
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Ok(Some(Walked {
            damage: vec![format!(
                "meta page 0 gives a page size of {page_size} bytes"
            )],
            faulty: true,
            ..Walked::default()
        }));
    }
    let mut second = vec![0; TXN_AT + 8];
    file.read_exact_at(&mut second, page_size)?;
    let metas = [first, second];
    let meta = match txn {
        Some(txn) => metas.iter().find(|m| u64_at(m, TXN_AT) == txn),
        None => metas.iter().max_by_key(|m| u64_at(m, TXN_AT)),
    };
    let Some(meta) = meta.cloned() else {
        return Ok(None);
    };
    let mut walker = Walker {
        file,
        page_size: page_size as usize,
        last_page: u64_at(&meta, LAST_PAGE_AT),
        owner: HashMap::new(),
        walked: Walked::default(),
    };
    let free = db_record(&meta[FREE_DB_AT..FREE_DB_AT + DB_RECORD]);
    walker.tree("the free list", free, true, &mut |w, key, _, data| {
        let count = if data.len() >= 8 {
            u64_at(data, 0)
        } else {
            u64::MAX
        };
        let txn = if key.len() == 8 { u64_at(key, 0) } else { 0 };
        if count.checked_add(1).and_then(|n| n.checked_mul(8)) != Some(data.len() as u64) {
            w.damaged(format!(
                "the free list: the entry of transaction {txn} has {} bytes, not a list of pages",
                data.len()
            ));
            return;
        }
        for i in 0..count as usize {
            if w.claim(u64_at(data, 8 + 8 * i), "the free list") {
                w.walked.free += 1;
            }
        }
    })?;
    let main = db_record(&meta[MAIN_DB_AT..MAIN_DB_AT + DB_RECORD]);
    let mut named = Vec::new();
    walker.tree(
        "the main database",
        main,
        false,
        &mut |w, key, flags, data| {
            let name = String::from_utf8_lossy(key).into_owned();
            if flags & F_SUBDATA == 0 || data.len() != DB_RECORD {
                w.damaged(format!(
                    "the main database: {name:?} is not a database record"
                ));
                return;
            }
            if !DATABASES.contains(&name.as_str()) {
                w.note(format!(
                    "the main database: {name:?} is no database of the store"
                ));
            }
            named.push((name, db_record(data)));
        },
    )?;
    for (name, record) in named {
        let tree = format!("the `{name}` database");
        walker.tree(&tree, record, false, &mut |_, _, _, _| {})?;
        walker.walked.databases.push((name, record.entries));
    }
    if walker.walked.damage.is_empty() {
        let accounted = walker.owner.len() as u64;
        let pages = walker.last_page.saturating_sub(1);
        if accounted != pages {
            walker.note(format!(
                "{accounted} of the {pages} pages after the meta pages are in a tree or the free \
                 list: the others are lost"
            ));
        }
    }
    Ok(Some(walker.walked))
}
