//! `es` on a PostgreSQL store written by the bank and voting examples' aggregates, on the
//! server the runtime's tests use (`ES_PG_URL`, or a throwaway cluster they start).

mod common;
#[path = "../../es-runtime/tests/postgres/server.rs"]
mod server;

use std::sync::{Arc, OnceLock};

use es::PostgresOptions;

use common::{CORRELATION, EVENTS, Run, VOTES, es};

/// The schema of the examples' store, written once per test binary.
fn schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = server::fresh_schema();
        let store = PostgresOptions::new(server::url())
            .schema(schema.clone())
            .open()
            .unwrap();
        common::write_examples(Arc::new(store));
        schema
    })
}

/// `es` with `args`, then the server's connection string and `--schema`.
fn on_store(command: &str, schema: &str, args: &[&str]) -> Run {
    let mut all = vec![command, server::url(), "--schema", schema];
    all.extend_from_slice(args);
    es(&all)
}

/// Runs one SQL statement on the server.
fn sql(statement: &str) {
    let config: tokio_postgres::Config = server::url().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let connection = tokio::spawn(connection);
        client.batch_execute(statement).await.unwrap();
        drop(client);
        let _ = connection.await;
    });
}

#[test]
fn stats_streams_show_tail_snapshots_and_export_read_a_postgres_store() {
    let s = schema();
    let stats = on_store("stats", s, &["--json"]).ok().json();
    assert_eq!(stats["backend"], "postgres");
    assert_eq!(stats["events"], EVENTS);
    assert_eq!(stats["streams"], 4);
    assert!(stats["snapshots"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats.get("lmdb").is_none());
    let text = on_store("stats", s, &[]).ok().stdout;
    assert!(
        text.contains("VoteCast") && text.contains("(PostgreSQL)"),
        "{text}"
    );

    let streams = on_store("streams", s, &["--category", "poll", "--json"])
        .ok()
        .json_lines();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["version"], VOTES + 1);

    let bob = on_store("show", s, &["bank_account-bob"]).ok().stdout;
    assert!(bob.contains(&format!("correlation={CORRELATION}")), "{bob}");
    assert!(
        bob.contains(r#"{"MoneyDeposited":{"amount":100}}"#),
        "{bob}"
    );

    let tail = on_store("tail", s, &["-n", "2", "--json"])
        .ok()
        .json_lines();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[1]["position"], EVENTS);
    assert_eq!(tail[1]["type"], "Closed");

    let snapshots = on_store("snapshots", s, &["bank_account-alice", "--json"])
        .ok()
        .json_lines();
    assert_eq!(snapshots[0]["version"], 100);

    let export = on_store("export", s, &[]).ok().json_lines();
    assert_eq!(export.len() as u64, EVENTS);
    assert!(export.iter().all(|e| e["payload_base64"].is_string()));

    let verified = on_store("verify", s, &[]).ok();
    assert!(verified.stdout.contains("none found"), "{verified:?}");
}

#[test]
fn a_schema_without_a_store_is_refused_and_not_created() {
    let missing = server::fresh_schema();
    for _ in 0..2 {
        let run = on_store("stats", &missing, &[]).fails_with(3);
        assert!(run.stderr.contains("no store in schema"), "{run:?}");
    }
}

#[test]
fn verify_finds_a_gap_in_the_log_and_a_head_that_does_not_match() {
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(schema.clone())
        .open()
        .unwrap();
    common::write_examples(Arc::new(store));
    on_store("verify", &schema, &[]).ok();
    // Alice's event at position 50, deleted behind the store's back.
    sql(&format!(
        r#"DELETE FROM "{schema}".events WHERE position = 50"#
    ));
    let run = on_store("verify", &schema, &[]).fails_with(4);
    assert!(
        run.stdout.contains("position 51: follows position 49"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("version 51 follows version 49"),
        "{run:?}"
    );
    let doc = on_store("verify", &schema, &["--json"])
        .fails_with(4)
        .json();
    assert_eq!(doc["sound"], false);
    assert_eq!(doc["checked"]["events"], EVENTS - 1);
}
