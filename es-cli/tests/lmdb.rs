//! `es` on LMDB stores written by the bank and voting examples' aggregates: as written, as a
//! read-only copy, and damaged.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use es::NewEvent;
use es::prelude::*;

use common::{CORRELATION, EVENTS, VOTES, copy_store, es, es_command, finished};

/// The examples' store, written once per test binary and never changed.
fn store() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::write_lmdb(&dir.path().join("store"));
        dir
    })
    .path()
    .join("store")
    .leak()
}

/// The examples' store, opened read-only once for the whole test binary (a process opens a
/// directory once).
fn opened() -> &'static LmdbStore {
    static STORE: OnceLock<LmdbStore> = OnceLock::new();
    STORE.get_or_init(|| LmdbOptions::new().read_only(true).open(store()).unwrap())
}

#[test]
fn stats_counts_streams_events_types_and_snapshots() {
    let run = es(&["stats".as_ref(), store().as_os_str()]).ok();
    let text = &run.stdout;
    assert!(
        text.contains(&format!("events       {EVENTS} (head position {EVENTS})")),
        "{text}"
    );
    for word in [
        "bank_account",
        "poll",
        "MoneyDeposited",
        "VoteCast",
        "map",
        "readers",
        "log",
    ] {
        assert!(text.contains(word), "{word} in {text}");
    }

    let doc = es(&["stats".as_ref(), store().as_os_str(), "--json".as_ref()])
        .ok()
        .json();
    assert_eq!(doc["events"], EVENTS);
    assert_eq!(doc["streams"], 4);
    assert_eq!(doc["backend"], "lmdb");
    assert!(doc["snapshots"].as_u64().unwrap() >= 1, "{doc}");
    let category = |name: &str| {
        doc["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["category"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(category("bank_account")["streams"], 3);
    assert_eq!(category("bank_account")["events"], 125);
    assert_eq!(category("poll")["events"], VOTES + 1);
    let votes = doc["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "VoteCast")
        .cloned()
        .unwrap();
    assert_eq!(votes["events"], VOTES);
    let lmdb = &doc["lmdb"];
    assert!(lmdb["map_size"].as_u64().unwrap() >= lmdb["used_bytes"].as_u64().unwrap());
    let log = &lmdb["databases"][0];
    assert_eq!(
        (log["name"].as_str(), log["entries"].as_u64()),
        (Some("log"), Some(EVENTS))
    );
    assert!(lmdb["reader_slots"].as_u64().unwrap() >= 126);
}

#[test]
fn streams_lists_versions_by_category_and_up_to_a_limit() {
    let run = es(&["streams".as_ref(), store().as_os_str()]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert!(lines[0].starts_with("STREAM"));
    assert!(
        lines[1].starts_with("bank_account-alice") && lines[1].contains(" 121 "),
        "{}",
        lines[1]
    );
    assert!(lines[4].starts_with("poll-lunch"));

    let rows = es(&[
        "streams".as_ref(),
        store().as_os_str(),
        "--category".as_ref(),
        "bank_account".as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .json_lines();
    let found: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap().to_owned(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("bank_account-alice".to_owned(), 121),
            ("bank_account-bob".to_owned(), 3),
            ("bank_account-carol".to_owned(), 1)
        ]
    );
    let limited = es(&[
        "streams".as_ref(),
        store().as_os_str(),
        "--limit".as_ref(),
        "2".as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .json_lines();
    assert_eq!(limited.len(), 2);
}

#[test]
fn show_prints_each_event_with_its_envelope_and_payload() {
    let run = es(&[
        "show".as_ref(),
        store().as_os_str(),
        "bank_account-bob".as_ref(),
    ])
    .ok();
    let text = &run.stdout;
    assert!(text.contains("bank_account-bob v1  Opened"), "{text}");
    assert!(text.contains("bank_account-bob v3  Withdrawn"), "{text}");
    assert!(
        text.contains(&format!("correlation={CORRELATION}")),
        "{text}"
    );
    assert!(text.contains("teller=t-17"), "{text}");
    assert!(text.contains(r#"{"Withdrawn":{"amount":10}}"#), "{text}");

    let events = es(&[
        "show".as_ref(),
        store().as_os_str(),
        "bank_account-alice".as_ref(),
        "--from".as_ref(),
        "120".as_ref(),
        "--json".as_ref(),
        "--raw".as_ref(),
    ])
    .ok()
    .json_lines();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["version"], 120);
    assert_eq!(events[1]["version"], 121);
    assert_eq!(events[1]["type"], "MoneyDeposited");
    assert_eq!(
        events[1]["payload"],
        serde_json::json!({"MoneyDeposited": {"amount": 120}})
    );
    // The stored bytes, as the runtime reads them.
    let stored = opened();
    let alice = StreamId::parse("bank_account-alice").unwrap();
    let expected = &stored.read_stream(&alice, 121, 1).unwrap()[0];
    let hex: String = expected
        .payload
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(events[1]["payload_hex"], hex);
    assert_eq!(events[1]["id"], expected.event_id.to_string());
    assert_eq!(events[1]["position"], expected.position);
    assert_eq!(events[1]["timestamp_ns"], expected.timestamp.as_nanos());
}

#[test]
fn tail_shows_the_last_events_filtered_by_category_and_type() {
    let run = es(&[
        "tail".as_ref(),
        store().as_os_str(),
        "-n".as_ref(),
        "3".as_ref(),
    ])
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[2].trim_start().starts_with(&EVENTS.to_string()),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("poll-lunch v1501  Closed"),
        "{}",
        lines[2]
    );

    let typed = |args: &[&str]| {
        let mut all = vec!["tail", store().to_str().unwrap(), "--json"];
        all.extend_from_slice(args);
        es(&all).ok().json_lines()
    };
    let deposits = typed(&["--type", "MoneyDeposited", "-n", "1000"]);
    assert_eq!(deposits.len(), 121, "alice's 120 and bob's 1");
    assert!(deposits.iter().all(|e| e["type"] == "MoneyDeposited"));
    let bank = typed(&["--category", "bank_account", "--from", "1", "-n", "1"]);
    assert_eq!(bank.len(), 125, "--from shows all from there");
    let from = typed(&["--from", &(EVENTS - 1).to_string()]);
    assert_eq!(from.len(), 2);
    assert_eq!(from[1]["position"], EVENTS);
}

#[test]
fn snapshots_shows_the_states_saved() {
    let run = es(&[
        "snapshots".as_ref(),
        store().as_os_str(),
        "bank_account-alice".as_ref(),
    ])
    .ok();
    assert!(run.stdout.starts_with("VERSION"), "{}", run.stdout);
    assert!(run.stdout.contains("100"), "{}", run.stdout);
    let rows = es(&[
        "snapshots".as_ref(),
        store().as_os_str(),
        "bank_account-alice".as_ref(),
        "--json".as_ref(),
    ])
    .ok()
    .json_lines();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["version"], 100);
    // The balance after the first 99 deposits, 1 to 99 cents.
    assert_eq!(rows[0]["state"]["balance"], 99 * 100 / 2);
    let none = es(&[
        "snapshots".as_ref(),
        store().as_os_str(),
        "bank_account-carol".as_ref(),
    ])
    .ok();
    assert!(none.stdout.contains("no snapshots"), "{}", none.stdout);
}

#[test]
fn export_writes_every_event_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let run = es(&[
        "export".as_ref(),
        store().as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ])
    .ok();
    assert!(
        run.stderr.contains(&format!("exported {EVENTS} events")),
        "{run:?}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let stored = opened();
    let expected = stored.read_all(1, usize::MAX).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (line, e) in lines.iter().zip(&expected) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line["payload_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, e.payload);
        assert_eq!(line["position"], e.position);
        assert_eq!(line["stream"], e.stream.as_str());
        assert_eq!(line["version"], e.version);
        assert_eq!(line["type"], &*e.event_type);
        assert_eq!(line["event_version"], e.event_version);
        assert_eq!(line["id"], e.event_id.to_string());
        assert_eq!(line["timestamp_ns"], e.timestamp.as_nanos());
        let metadata: es::Metadata = serde_json::from_value(line["metadata"].clone()).unwrap();
        assert_eq!(metadata, e.metadata);
        assert_eq!(line["payload"], e.payload_json().unwrap());
    }
    // To stdout, the same lines; an existing file is not replaced without --force.
    let piped = es(&["export".as_ref(), store().as_os_str()]).ok();
    assert_eq!(piped.stdout, text);
    es(&[
        "export".as_ref(),
        store().as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ])
    .fails_with(2);
    es(&[
        "export".as_ref(),
        store().as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
        "--force".as_ref(),
    ])
    .ok();
}

#[test]
fn output_cut_short_by_its_reader_is_no_failure() {
    for args in [&["export"][..], &["tail", "--from=1"]] {
        let mut child = es_command()
            .arg(args[0])
            .arg(store())
            .args(&args[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let run = finished(child.wait_with_output().unwrap());
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert_eq!(run.stderr, "", "{args:?}");
    }
}

#[test]
fn verify_finds_no_damage_in_a_sound_store() {
    let run = es(&["verify".as_ref(), store().as_os_str()]).ok();
    assert!(run.stdout.contains("none found"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("{EVENTS} events")),
        "{}",
        run.stdout
    );
    let doc = es(&["verify".as_ref(), store().as_os_str(), "--json".as_ref()])
        .ok()
        .json();
    assert_eq!(doc["sound"], true);
    assert_eq!(doc["checked"]["events"], EVENTS);
}

#[test]
fn follow_prints_new_events_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    copy_store(store(), &path);
    let mut child = es_command()
        .args(["tail", "--follow", "--json", "-n", "1"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["position"], EVENTS);
    // Another process's writer appends: the follower prints it.
    {
        let writer = LmdbStore::open(&path).unwrap();
        let stream = StreamId::parse("bank_account-dave").unwrap();
        writer
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![NewEvent::raw("Opened", es::codec::encode(&7u32).unwrap())],
            )
            .unwrap();
    }
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(next["position"], EVENTS + 1);
    assert_eq!(next["stream"], "bank_account-dave");
    assert_eq!(next["payload"], 7);
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still following after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn follow_ends_when_its_reader_goes_away() {
    let mut child = es_command()
        .args(["tail", "--follow", "-n", "1"])
        .arg(store())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    drop(out);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still following with no reader"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The files of a store directory and their contents.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `es` as a user for whom permission bits hold: `nobody` when the tests run as root.
fn es_unprivileged(args: &[&std::ffi::OsStr]) -> common::Run {
    let mut command = if common::is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(env!("CARGO_BIN_EXE_es"));
        c
    } else {
        es_command()
    };
    finished(command.args(args).output().unwrap())
}

#[test]
fn a_read_only_copy_is_read_and_left_as_it_was() {
    let parent = tempfile::tempdir().unwrap();
    set_mode(parent.path(), 0o755);
    let path = parent.path().join("store");
    copy_store(store(), &path);
    for (name, _) in files(&path) {
        set_mode(&path.join(name), 0o444);
    }
    set_mode(&path, 0o555);
    // The user the tool runs as cannot write there.
    let probe = es_unprivileged(&[
        "export".as_ref(),
        path.as_os_str(),
        "--out".as_ref(),
        path.join("x").as_os_str(),
    ]);
    assert_eq!(probe.code, Some(1), "{probe:?}");
    let before = files(&path);
    let p = path.as_os_str();
    let stats = es_unprivileged(&["stats".as_ref(), p, "--json".as_ref()])
        .ok()
        .json();
    assert_eq!(stats["events"], EVENTS);
    let shown = es_unprivileged(&["show".as_ref(), p, "bank_account-bob".as_ref()]).ok();
    assert!(shown.stdout.contains("Withdrawn"), "{shown:?}");
    let streams = es_unprivileged(&["streams".as_ref(), p]).ok();
    assert_eq!(streams.stdout.lines().count(), 5);
    let tail = es_unprivileged(&["tail".as_ref(), p, "-n".as_ref(), "5".as_ref()]).ok();
    assert_eq!(tail.stdout.lines().count(), 5);
    let snapshots = es_unprivileged(&["snapshots".as_ref(), p, "bank_account-alice".as_ref()]).ok();
    assert!(snapshots.stdout.contains("100"));
    let exported = es_unprivileged(&["export".as_ref(), p]).ok();
    assert_eq!(exported.stdout.lines().count() as u64, EVENTS);
    let verified = es_unprivileged(&["verify".as_ref(), p]).ok();
    assert!(verified.stdout.contains("none found"), "{verified:?}");
    assert_eq!(files(&path), before, "nothing written");
    set_mode(&path, 0o755);
}

/// The offsets of the keys of the log's leaf entries in a data file (8-byte big-endian
/// positions up to `last`), found by LMDB's node layout on leaf pages: data size (u16 +
/// u16), flags (u16), key size (u16, here 8), then the key.
fn log_key_offsets(file: &[u8], last: u64) -> Vec<usize> {
    const PAGE: usize = 4096;
    let mut found = Vec::new();
    for page in (2..file.len() / PAGE).map(|p| p * PAGE) {
        let flags = u16::from_le_bytes([file[page + 10], file[page + 11]]);
        if flags & 0x02 == 0 {
            continue;
        }
        let mut at = page + 16;
        while at + 16 <= page + PAGE {
            let node = &file[at..at + 16];
            let size = u32::from(u16::from_le_bytes([node[0], node[1]]))
                | (u32::from(u16::from_le_bytes([node[2], node[3]])) << 16);
            let key = u64::from_be_bytes(node[8..16].try_into().unwrap());
            if node[4..8] == [0, 0, 8, 0] && (34..2048).contains(&size) && (1..=last).contains(&key)
            {
                found.push(at + 8);
                at += 16;
            } else {
                at += 2;
            }
        }
    }
    found
}

/// A copy of the examples' store with its data file changed by `damage`.
fn damaged(damage: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_store(store(), dir.path());
    let data = dir.path().join("data.mdb");
    let mut bytes = std::fs::read(&data).unwrap();
    damage(&mut bytes);
    std::fs::write(&data, bytes).unwrap();
    dir
}

#[test]
fn verify_names_a_damaged_log_key_and_the_reads_fail_with_damage() {
    let dir = damaged(|file| {
        let keys = log_key_offsets(file, EVENTS);
        assert!(keys.len() as u64 >= EVENTS / 2, "found the log's keys");
        // The highest byte of every key, in the live pages and the free ones: positions far
        // out of order.
        for at in keys {
            file[at] ^= 0x40;
        }
    });
    let p = dir.path().as_os_str();
    let run = es(&["verify".as_ref(), p]).fails_with(4);
    assert!(
        run.stdout.contains("damage   ") && run.stdout.contains("position"),
        "{run:?}"
    );
    assert!(run.stderr.contains("is damaged"), "{run:?}");
    let doc = es(&["verify".as_ref(), p, "--json".as_ref()])
        .fails_with(4)
        .json();
    assert_eq!(doc["sound"], false);
    assert!(!doc["damage"].as_array().unwrap().is_empty());
    // The commands reading the whole log say it is damaged instead of answering short.
    es(&["stats".as_ref(), p]).fails_with(4);
    es(&["export".as_ref(), p]).fails_with(4);
}

#[test]
fn verify_reports_a_truncated_data_file_as_damage() {
    for keep in [0.5, 0.9] {
        let dir = damaged(|file| file.truncate((file.len() as f64 * keep) as usize / 4096 * 4096));
        let p = dir.path().as_os_str();
        let run = es(&["verify".as_ref(), p]).fails_with(4);
        assert!(run.stdout.contains("truncated"), "{run:?}");
        es(&["stats".as_ref(), p]).fails_with(4);
        es(&["show".as_ref(), p, "poll-lunch".as_ref()]).fails_with(4);
    }
}

#[test]
fn a_verifying_process_killed_by_a_signal_is_damage_reported_by_the_tool() {
    let out = es_command()
        .arg("verify")
        .arg(store())
        .env("__ES_VERIFY_CHILD_RAISES_SIGBUS", "1")
        .output()
        .unwrap();
    let run = finished(out).fails_with(4);
    assert!(
        run.stdout.contains("signal") && run.stdout.contains("SIGBUS"),
        "{run:?}"
    );
}

#[test]
fn a_reading_process_killed_by_a_signal_is_damage_reported_by_the_tool() {
    for command in ["stats", "export", "show", "docs"] {
        let mut c = es_command();
        c.arg(command).arg(store());
        if command == "show" {
            c.arg("bank_account-alice");
        }
        let out = c
            .env("__ES_READER_CHILD_RAISES_SIGBUS", "1")
            .output()
            .unwrap();
        let run = finished(out).fails_with(4);
        assert!(
            run.stderr.contains("SIGBUS") && run.stderr.contains("is damaged"),
            "{command}: {run:?}"
        );
    }
}

#[test]
fn verify_never_dies_of_damage_and_a_sound_verdict_reads_what_was_written() {
    let original = es(&["export".as_ref(), store().as_os_str()]).ok().stdout;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut tally = [0u32; 2];
    for trial in 0..24 {
        let (a, b) = (next(), next());
        let dir = damaged(|file| {
            let len = file.len() as u64;
            match trial % 3 {
                0 => file[(a % len) as usize] ^= 1 + (b % 255) as u8,
                1 => {
                    let at = (a % (len - 64)) as usize;
                    for (i, byte) in file[at..at + 64].iter_mut().enumerate() {
                        *byte = (b >> (i % 8 * 8)) as u8 ^ i as u8;
                    }
                }
                _ => {
                    let page = (a % (len / 4096)) as usize;
                    file[page * 4096..(page + 1) * 4096].fill(0);
                }
            }
        });
        // The other commands reading it answer, or fail with damage (4, one line): never a
        // signal's death (`finished` would say so) nor a refusal to open it.
        for command in ["stats", "export"] {
            let run = es(&[command.as_ref(), dir.path().as_os_str()]);
            if run.code != Some(0) {
                run.fails_with(4);
            }
        }
        let run = es(&["verify".as_ref(), dir.path().as_os_str()]);
        match run.code {
            Some(0) => {
                tally[0] += 1;
                let exported = es(&["export".as_ref(), dir.path().as_os_str()]).ok().stdout;
                assert_eq!(
                    exported, original,
                    "trial {trial}: sound, yet reads otherwise"
                );
            }
            Some(4) => {
                tally[1] += 1;
                run.fails_with(4);
            }
            _ => panic!("trial {trial}: {run:?}"),
        }
    }
    eprintln!(
        "damage trials: {} sound, {} damage found",
        tally[0], tally[1]
    );
}
