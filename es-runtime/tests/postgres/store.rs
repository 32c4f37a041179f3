//! What the PostgreSQL store promises beyond the conformance suite.

use std::time::Duration;

use es_runtime::{EventStore, ExpectedVersion, NewEvent, OpenError, PostgresOptions, StreamId};

use super::server;

fn event(n: u64) -> NewEvent {
    NewEvent::raw("Happened", es_runtime::codec::encode(&n).unwrap())
}

/// The store runs its I/O on a runtime of its own: called from inside tokio's runtimes (both
/// flavours), it neither panics nor deadlocks, and dropping it there is fine too.
#[tokio::test(flavor = "current_thread")]
async fn calls_from_inside_a_current_thread_runtime() {
    let store = server::store();
    let s = StreamId::parse("tokio-1").unwrap();
    store
        .append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .unwrap();
    assert_eq!(store.stream_version(&s).unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(store.read_all(1, 10).unwrap().len(), 1);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_inside_a_multi_thread_runtime() {
    let store = std::sync::Arc::new(server::store());
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let s = StreamId::new("tokio", t).unwrap();
                for i in 0..10 {
                    store
                        .append(&s, ExpectedVersion::Exact(i), vec![event(i)])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.head_position().unwrap(), 40);
}

#[test]
fn bad_schema_names_are_refused_at_open() {
    for bad in [
        "",
        "Bank",
        "bank-1",
        "x\"; DROP SCHEMA public; --",
        "pg_bank",
    ] {
        let err = PostgresOptions::new(server::url())
            .schema(bad)
            .open()
            .unwrap_err();
        match err {
            OpenError::Storage { source, .. } => {
                let io = source
                    .downcast_ref::<std::io::Error>()
                    .expect("an invalid-input error");
                assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Reopening a schema keeps its events; a schema of another format is refused untouched.
#[test]
fn the_format_is_checked_at_open() {
    let schema = server::fresh_schema();
    let options = PostgresOptions::new(server::url()).schema(&schema);
    let s = StreamId::parse("fmt-1").unwrap();
    {
        let store = options.open().unwrap();
        store
            .append(&s, ExpectedVersion::NoStream, vec![event(1)])
            .unwrap();
    }
    let store = options.open().unwrap();
    assert_eq!(store.stream_version(&s).unwrap(), 1);
    drop(store);
    sql(&format!(
        "UPDATE \"{schema}\".meta SET value = 99 WHERE key = 'format'"
    ));
    match options.open().unwrap_err() {
        OpenError::UnsupportedFormat {
            found, supported, ..
        } => assert_eq!(
            (found, supported),
            (99, es_runtime::store::postgres::FORMAT_VERSION)
        ),
        other => panic!("{other:?}"),
    }
    sql(&format!("DELETE FROM \"{schema}\".meta"));
    match options.open().unwrap_err() {
        OpenError::UnsupportedFormat { found: 0, .. } => {}
        other => panic!("{other:?}"),
    }
}

/// Runs SQL on the shared server, outside any store.
pub(crate) fn sql(statement: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(server::url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(statement).await.unwrap();
    });
}
