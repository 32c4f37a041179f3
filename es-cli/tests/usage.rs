//! Bad command lines and stores that are not there: one line on stderr, a distinct exit
//! status, never a panic.

mod common;

use common::es;

#[test]
fn a_missing_or_unusable_store_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let run = es(&["stats".as_ref(), missing.as_os_str()]).fails_with(3);
    assert!(run.stderr.contains("no store at"), "{run:?}");
    assert!(!missing.exists(), "nothing created");
    // An empty directory holds no store, and is left empty.
    let run = es(&["streams".as_ref(), dir.path().as_os_str()]).fails_with(3);
    assert!(run.stderr.contains("no store"), "{run:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    es(&["verify".as_ref(), missing.as_os_str()]).fails_with(3);
    // A file is not a store.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").unwrap();
    es(&["tail".as_ref(), file.as_os_str()]).fails_with(3);
    // A server that is not there, and a connection string that is not one.
    let run = es(&["stats", "host=/nonexistent/socket dbname=app"]).fails_with(3);
    assert!(run.stderr.contains("cannot connect"), "{run:?}");
    es(&["stats", "postgres://[::1"]).fails_with(3);
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["frobnicate", "x"][..],
        &["stats"],
        &["show", "x"],
        &["tail", "x", "--from", "minus one"],
        &["streams", "x", "--limit", "-3"],
        &["stats", "x", "--no-such-flag"],
        &[],
    ] {
        let run = es(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        if !args.is_empty() {
            run.fails_with(2);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    common::write_lmdb(dir.path());
    let run = es(&[
        "show".as_ref(),
        dir.path().as_os_str(),
        "bank_account-nobody".as_ref(),
    ])
    .fails_with(1);
    assert!(run.stderr.contains("no stream"), "{run:?}");
    es(&["show".as_ref(), dir.path().as_os_str(), "".as_ref()]).fails_with(2);
}

#[test]
fn help_and_version_go_to_stdout() {
    let help = es(&["--help"]).ok();
    for command in [
        "stats",
        "streams",
        "show",
        "tail",
        "snapshots",
        "verify",
        "export",
    ] {
        assert!(help.stdout.contains(command), "{}", help.stdout);
    }
    assert!(!help.stdout.contains("__verify-child"));
    assert!(es(&["--version"]).ok().stdout.starts_with("es "));
}
