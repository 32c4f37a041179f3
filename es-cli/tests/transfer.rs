//! The commands that describe a store and move its events: `projections`, `docs`, `show`
//! with the recorded schema, `import` from an export and `copy` over `es::migrate`, between
//! LMDB stores and a PostgreSQL server (the runtime tests' server: `ES_PG_URL`, or a
//! throwaway cluster they start).

mod common;
#[path = "../../es-runtime/tests/postgres/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use es::prelude::*;
use es::{NewEvent, PostgresOptions};

use common::account::BankAccount;
use common::poll::Poll;
use common::{EVENTS, es};

/// The examples' store with two checkpoints (one behind the head), written once.
fn source() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        {
            let store = Arc::new(LmdbOptions::new().open(&path).unwrap());
            common::write_examples(store.clone());
            store.save_checkpoint("balances", 100).unwrap();
            store.save_checkpoint("tally", EVENTS).unwrap();
            store.sync().unwrap();
        }
        dir
    })
    .path()
    .join("store")
    .leak()
}

/// Every event of the LMDB store at `path`.
fn lmdb_events(path: &Path) -> Vec<RecordedEvent> {
    // A process opens a directory once at a time, and tests run on threads of one process:
    // reading the shared source from two of them at once would be refused.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let store = LmdbOptions::new().read_only(true).open(path).unwrap();
    store.read_all(1, usize::MAX).unwrap()
}

/// Every event of the PostgreSQL store in `schema`.
fn postgres_events(schema: &str) -> Vec<RecordedEvent> {
    let store = PostgresOptions::new(server::url())
        .schema(schema)
        .open()
        .unwrap();
    store.read_all(1, usize::MAX).unwrap()
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn export_of(store: &Path, dir: &Path) -> PathBuf {
    let file = dir.join("events.jsonl");
    es(&["export", arg(store), "--out", arg(&file)]).ok();
    file
}

#[test]
fn projections_lists_each_checkpoint_and_how_far_behind_it_is() {
    let run = es(&["projections", arg(source())]).ok();
    let behind = EVENTS - 100;
    assert!(run.stdout.contains("PROJECTION"), "{run:?}");
    let balances = run
        .stdout
        .lines()
        .find(|l| l.starts_with("balances"))
        .unwrap();
    assert_eq!(
        balances.split_whitespace().collect::<Vec<_>>(),
        ["balances", "100", &behind.to_string()]
    );
    let lines = es(&["projections", arg(source()), "--json"])
        .ok()
        .json_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "balances");
    assert_eq!(lines[0]["position"], 100);
    assert_eq!(lines[0]["behind"], behind);
    assert_eq!(lines[1]["name"], "tally");
    assert_eq!(lines[1]["behind"], 0);
    // And in the statistics.
    let stats = es(&["stats", arg(source()), "--json"]).ok().json();
    assert_eq!(stats["checkpoints"], serde_json::json!(lines));
    let text = es(&["stats", arg(source())]).ok().stdout;
    assert!(text.contains("PROJECTION"), "{text}");
}

#[test]
fn export_then_import_into_lmdb_equals_the_original_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_of(source(), dir.path());
    let target = dir.path().join("copy");
    let run = es(&["import", arg(&target), arg(&file), "--batch", "300"]).ok();
    assert!(run.stdout.contains(&format!("{EVENTS} events")), "{run:?}");
    assert_eq!(lmdb_events(&target), lmdb_events(source()));
    // A second import into the now non-empty store is refused, and writes nothing.
    let run = es(&["import", arg(&target), arg(&file)]).fails_with(1);
    assert!(run.stderr.contains("--append"), "{run:?}");
    assert_eq!(lmdb_events(&target).len() as u64, EVENTS);
    // An input that is not there creates no store.
    let nowhere = dir.path().join("nowhere");
    let run = es(&[
        "import",
        arg(&nowhere),
        arg(&dir.path().join("missing.jsonl")),
    ])
    .fails_with(1);
    assert!(run.stderr.contains("cannot read"), "{run:?}");
    assert!(!nowhere.exists());
}

#[test]
fn import_reads_standard_input_and_appends_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_of(source(), dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let (first, rest): (Vec<&str>, Vec<&str>) = {
        let lines: Vec<&str> = text.lines().collect();
        (lines[..200].to_vec(), lines[200..].to_vec())
    };
    let target = dir.path().join("copy");
    let part = dir.path().join("first.jsonl");
    std::fs::write(&part, first.join("\n") + "\n").unwrap();
    es(&["import", arg(&target), arg(&part), "--json"]).ok();
    let mut child = common::es_command()
        .args(["import", arg(&target), "-", "--append"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all((rest.join("\n") + "\n").as_bytes())
            .unwrap();
    }
    common::finished(child.wait_with_output().unwrap()).ok();
    assert_eq!(lmdb_events(&target), lmdb_events(source()));
}

#[test]
fn a_bad_line_is_one_error_naming_it_and_the_lines_before_it_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_of(source(), dir.path());
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    type Damage = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "not JSON",
            Box::new(|l| l[4] = "{\"stream\": ".to_owned()),
            "line 5 of",
        ),
        (
            "no payload bytes",
            Box::new(|l| {
                let mut v: serde_json::Value = serde_json::from_str(&l[4]).unwrap();
                v.as_object_mut().unwrap().remove("payload_base64");
                l[4] = v.to_string();
            }),
            "line 5 of",
        ),
        (
            "a missing event",
            Box::new(|l| {
                l.remove(2);
            }),
            "line 3 of",
        ),
        (
            "a bad stream id",
            Box::new(|l| {
                let mut v: serde_json::Value = serde_json::from_str(&l[4]).unwrap();
                v["stream"] = "no category".into();
                l[4] = v.to_string();
            }),
            "line 5 of",
        ),
    ];
    for (what, damage, says) in cases {
        let mut bad = lines.clone();
        damage(&mut bad);
        let input = dir.path().join("bad.jsonl");
        std::fs::write(&input, bad.join("\n") + "\n").unwrap();
        let target = tempfile::tempdir().unwrap();
        let run = es(&["import", arg(target.path()), arg(&input)]).fails_with(1);
        assert!(run.stderr.contains(says), "{what}: {run:?}");
        // The sound lines before it are in the store.
        let before: u64 = says
            .trim_start_matches("line ")
            .trim_end_matches(" of")
            .parse::<u64>()
            .unwrap()
            - 1;
        assert_eq!(lmdb_events(target.path()).len() as u64, before, "{what}");
    }
}

#[test]
fn export_then_import_into_postgres_equals_the_original_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_of(source(), dir.path());
    let schema = server::fresh_schema();
    es(&["import", server::url(), arg(&file), "--schema", &schema]).ok();
    assert_eq!(postgres_events(&schema), lmdb_events(source()));
    // Exported again from PostgreSQL: the same lines.
    let again = es(&["export", server::url(), "--schema", &schema])
        .ok()
        .stdout;
    assert_eq!(again, std::fs::read_to_string(&file).unwrap());
}

#[test]
fn copy_lmdb_to_postgres_to_lmdb_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let schema = server::fresh_schema();
    let run = es(&[
        "copy",
        arg(source()),
        server::url(),
        "--target-schema",
        &schema,
        "--checkpoints",
    ])
    .ok();
    assert!(run.stdout.contains("verified"), "{run:?}");
    assert!(run.stdout.contains(&format!("{EVENTS} written")), "{run:?}");
    assert_eq!(postgres_events(&schema), lmdb_events(source()));

    let back = dir.path().join("back");
    let report = es(&[
        "copy",
        server::url(),
        arg(&back),
        "--schema",
        &schema,
        "--checkpoints",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(report["read"], EVENTS);
    assert_eq!(report["written"], EVENTS);
    assert_eq!(report["verified"], true);
    assert_eq!(report["checkpoints_copied"], 2);
    assert!(
        report["snapshots_copied"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_eq!(lmdb_events(&back), lmdb_events(source()));
    let checkpoints = es(&["projections", arg(&back), "--json"]).ok().json_lines();
    assert_eq!(checkpoints.len(), 2);
    // The recorded schemas came along: the copy documents itself as the source does.
    assert_eq!(
        es(&["docs", arg(&back)]).ok().stdout,
        es(&["docs", arg(source())]).ok().stdout
    );

    // Into a store that holds events: refused without --append, one line.
    let run = es(&["copy", arg(source()), arg(&back)]).fails_with(1);
    assert!(run.stderr.contains("not empty"), "{run:?}");
    // Without snapshots.
    let bare = dir.path().join("bare");
    let report = es(&[
        "copy",
        arg(source()),
        arg(&bare),
        "--no-snapshots",
        "--json",
    ])
    .ok()
    .json();
    assert_eq!(report["snapshots_copied"], 0);
    let snapshots = es(&["snapshots", arg(&bare), "bank_account-alice", "--json"])
        .ok()
        .json_lines();
    assert!(snapshots.is_empty());
    // A source that is not there.
    let run = es(&["copy", arg(&dir.path().join("nothing")), arg(&bare)]).fails_with(3);
    assert!(run.stderr.contains("no store"), "{run:?}");
}

#[test]
fn docs_renders_the_recorded_schemas_as_the_aggregates_do() {
    let bank = BankAccount::schema().to_markdown();
    let poll = Poll::schema().to_markdown();
    let one = es(&["docs", arg(source()), "--aggregate", "bank_account"]).ok();
    assert_eq!(one.stdout, bank);
    let all = es(&["docs", arg(source())]).ok();
    assert_eq!(all.stdout, format!("{bank}\n{poll}"));
    assert!(all.stdout.contains("```mermaid"));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("docs");
    es(&["docs", arg(source()), "--out", arg(&out)]).ok();
    assert_eq!(
        std::fs::read_to_string(out.join("bank_account.md")).unwrap(),
        bank
    );
    assert_eq!(std::fs::read_to_string(out.join("poll.md")).unwrap(), poll);
    let index = std::fs::read_to_string(out.join("index.md")).unwrap();
    assert!(
        index.contains("[`bank_account`](bank_account.md)"),
        "{index}"
    );
    assert!(index.contains("[`poll`](poll.md)"), "{index}");
    assert!(index.contains("revision 1"), "{index}");

    let run = es(&["docs", arg(source()), "--aggregate", "nothing"]).fails_with(1);
    assert!(run.stderr.contains("bank_account, poll"), "{run:?}");
}

#[test]
fn docs_of_a_store_without_recorded_schemas_says_so() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store
            .append(
                &StreamId::new("account", 1).unwrap(),
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("Opened", vec![0xc0])],
            )
            .unwrap();
    }
    let run = es(&["docs", arg(dir.path())]).fails_with(1);
    assert!(run.stderr.contains("no recorded schemas"), "{run:?}");
}

#[test]
fn show_names_and_types_the_fields_and_flags_a_payload_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Arc::new(LmdbOptions::new().open(&path).unwrap());
        common::write_examples(store.clone());
        // An event of the bank's type, stored with a misspelt field.
        let payload = es::codec::encode(&serde_json::json!({"Opened": {"initail": 5}})).unwrap();
        store
            .append(
                &StreamId::new("bank_account", "zed").unwrap(),
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("Opened", payload)],
            )
            .unwrap();
    }
    let bob = es(&["show", arg(&path), "bank_account-bob"]).ok().stdout;
    assert!(bob.contains("fields    initial: u64 = 0"), "{bob}");
    assert!(bob.contains("amount: u64 = 100"), "{bob}");
    assert!(!bob.contains("MISMATCH"), "{bob}");
    let zed = es(&["show", arg(&path), "bank_account-zed"]).ok().stdout;
    assert!(zed.contains("MISMATCH"), "{zed}");
    assert!(zed.contains("declared but missing: initial"), "{zed}");
    assert!(zed.contains("stored but not declared: initail"), "{zed}");
    let json = es(&["show", arg(&path), "bank_account-zed", "--json"])
        .ok()
        .json_lines();
    assert_eq!(json[0]["schema"]["fields"][0]["name"], "initial");
    assert_eq!(json[0]["schema"]["fields"][0]["type"], "u64");
    assert!(json[0]["schema"]["mismatch"].is_string());
    let poll = es(&["show", arg(&path), "poll-lunch", "--json"])
        .ok()
        .json_lines();
    assert!(poll.iter().all(|e| e["schema"]["mismatch"].is_null()));
}
