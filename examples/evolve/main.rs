//! Events that change shape: a store written by the first release of an aggregate is read by
//! the current one through the upcasts it declares, then rewritten at the current versions
//! with `es::migrate`.
//!
//! ```sh
//! cargo run --example evolve
//! ```

#[allow(unreachable_pub)]
mod member;

use std::sync::Arc;

use es::migrate::{self, Migration};
use es::prelude::*;

use member::{current, release_1};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;

    // The first release writes three events of `member-ada`, each at version 1 of its shape.
    let old = Arc::new(LmdbStore::open(dir.path().join("old"))?);
    let first = Host::<release_1::Member, _>::new(old.clone());
    let join = release_1::MemberCommand::Join {
        name: "Ada Lovelace".into(),
        city: "London".into(),
    };
    first.execute("ada", join)?;
    let borrow = release_1::MemberCommand::Borrow {
        isbn: "978-0-00".into(),
        fee: 50,
    };
    first.execute("ada", borrow)?;
    let nickname = release_1::MemberCommand::Nickname {
        nickname: "Enchantress of Numbers".into(),
    };
    first.execute("ada", nickname)?;
    drop(first);
    println!("stored by the first release:");
    for e in old.read_all(1, usize::MAX)? {
        let fields = es::codec::to_json(&e.payload)?;
        println!("  {} version {}: {fields}", e.event_type, e.event_version);
    }

    // The current code reads them through its upcasts; the stored bytes stay as they are.
    let host = Host::<current::Member, _>::new(old.clone());
    let ada = host.state("ada")?;
    println!("\nread by the current code: {ada:?}");
    assert_eq!((ada.first.as_str(), ada.last.as_str()), ("Ada", "Lovelace"));
    assert_eq!((ada.loans.len(), ada.fees), (1, 50));
    // New events are written at the current versions, beside the old ones.
    let borrow = current::MemberCommand::Borrow {
        isbn: "978-0-01".into(),
        fee: 20,
    };
    host.execute("ada", borrow)?;
    drop(host);

    // Rewritten at the current versions: a copy through the upcasts, the nickname dropped
    // and the fee split out, ids and timestamps kept, the schema history carried.
    let new = Arc::new(LmdbStore::open(dir.path().join("new"))?);
    let report = Migration::new(&*old, &*new)
        .transform(migrate::upcast::<current::Member>())
        .run()?;
    println!(
        "\nmigrated: {} read, {} dropped, {} added, {} written, {} schema revisions",
        report.read, report.dropped, report.added, report.written, report.schemas_copied
    );
    for e in new.read_all(1, usize::MAX)? {
        println!("  {} version {}", e.event_type, e.event_version);
    }
    let copied = Host::<current::Member, _>::new(new.clone()).state("ada")?;
    let original = Host::<current::Member, _>::new(old).state("ada")?;
    assert_eq!(copied, original);
    println!("\nthe copy reads the same: {copied:?}");
    Ok(())
}
