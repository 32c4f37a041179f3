//! `es projections`: every projection checkpoint, its position, and how many events of the
//! log it has still to read (the head position minus its position).

use std::io::Write;

use serde_json::{Value, json};

use crate::error::Result;
use crate::open::Store;
use crate::output::{self, Table};

/// A checkpoint and how far behind the head it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) name: String,
    pub(crate) position: u64,
    /// Events after the checkpoint's position up to the head: what the projection has still
    /// to read. 0 for a checkpoint at (or, after a restore from an older copy, beyond) the
    /// head.
    pub(crate) behind: u64,
}

impl Checkpoint {
    pub(crate) fn to_json(&self) -> Value {
        json!({"name": self.name, "position": self.position, "behind": self.behind})
    }
}

/// The store's checkpoints against its head position, by name.
pub(crate) fn read(store: &Store, head: u64) -> Result<Vec<Checkpoint>> {
    Ok(store
        .events()
        .checkpoints()?
        .into_iter()
        .map(|(name, position)| Checkpoint {
            name,
            position,
            behind: head.saturating_sub(position),
        })
        .collect())
}

/// The checkpoints as a table.
pub(crate) fn table(checkpoints: &[Checkpoint]) -> Table {
    let mut table = Table::new(&["PROJECTION", ">POSITION", ">BEHIND"]);
    for c in checkpoints {
        table.row(vec![
            c.name.clone(),
            c.position.to_string(),
            c.behind.to_string(),
        ]);
    }
    table
}

pub(crate) fn run(store: &Store, json: bool, out: &mut dyn Write) -> Result<()> {
    let head = store.events().head_position()?;
    let checkpoints = read(store, head)?;
    if json {
        for c in &checkpoints {
            output::json_line(out, &c.to_json())?;
        }
        return Ok(());
    }
    if checkpoints.is_empty() {
        writeln!(out, "no checkpoints (head position {head})")?;
        return Ok(());
    }
    writeln!(out, "head position {head}")?;
    table(&checkpoints).write(out)?;
    Ok(())
}
