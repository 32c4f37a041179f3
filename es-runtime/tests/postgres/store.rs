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
    match PostgresOptions::new("host=/tmp port=notaport").open() {
        Err(OpenError::InvalidInput { .. }) => {}
        other => panic!("a malformed connection string: {other:?}"),
    }
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
            OpenError::InvalidInput { path, reason } => {
                assert!(path.contains("schema"), "{bad:?}: {path}");
                assert!(!reason.is_empty(), "{bad:?}");
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

/// A group whose write fails commits nothing, although its COMMIT is sent before the write's
/// answer: the failed statement aborts the transaction, and the COMMIT behind it rolls back.
#[test]
fn a_failed_write_rolls_back_the_commit_sent_behind_it() {
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(schema.as_str())
        .open()
        .unwrap();
    let a = StreamId::parse("acc-1").unwrap();
    store
        .append(&a, ExpectedVersion::NoStream, vec![event(1)])
        .unwrap();
    // A row at the next position, written behind the store's back: the group's insert hits
    // the primary key.
    sql(&format!(
        r#"INSERT INTO "{schema}".events
           SELECT 2, 'rogue-1', 1, t, gen_random_uuid(), 0, ''::bytea, ''::bytea
           FROM (VALUES ('Happened')) AS v(t)"#
    ));
    let failed = store.append(&a, ExpectedVersion::Exact(1), vec![event(2), event(3)]);
    assert!(
        matches!(failed, Err(es_runtime::AppendError::Storage { .. })),
        "{failed:?}"
    );
    assert_eq!(store.stream_version(&a).unwrap(), 1);
    assert_eq!(store.head_position().unwrap(), 1);
    sql(&format!(
        r#"DELETE FROM "{schema}".events WHERE stream = 'rogue-1'"#
    ));
    let done = store
        .append(&a, ExpectedVersion::Exact(1), vec![event(2)])
        .unwrap();
    assert_eq!((done.first_version, done.first_position), (2, 2));
    let mut seen = Vec::new();
    store
        .read_all_with(0, &mut |e| {
            seen.push((e.position, e.stream.to_owned(), e.version));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![(1, "acc-1".to_owned(), 1), (2, "acc-1".to_owned(), 2)]
    );
}

/// A store wakes its readers when another store (another process, for all it knows) commits
/// to the same schema: by NOTIFY, long before its fallback re-read is due.
#[test]
fn readers_wake_when_another_store_commits() {
    let schema = server::fresh_schema();
    let writer = PostgresOptions::new(server::url())
        .schema(&schema)
        .open()
        .unwrap();
    let reader = PostgresOptions::new(server::url())
        .schema(&schema)
        .poll_every(Duration::from_secs(3600))
        .open()
        .unwrap();
    let watch = reader.head_watch().expect("a head watch");
    let s = StreamId::parse("wake-1").unwrap();
    for round in 1..=5u64 {
        // The reader's LISTEN may still be starting: give the first round time.
        let started = std::time::Instant::now();
        writer
            .append(&s, ExpectedVersion::Any, vec![event(round)])
            .unwrap();
        let head = watch.wait_beyond(round - 1, Duration::from_secs(10));
        assert_eq!(head, round, "woken by the other store's commit");
        if round > 1 {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "woken by the notification, not by a re-read"
            );
        }
    }
}

/// A store notifies other processes at most once per `notify_every`: commits within one period
/// reach another store as one wake-up to the newest head, not one per commit.
#[test]
fn notifications_of_a_burst_of_commits_coalesce_within_the_period() {
    let schema = server::fresh_schema();
    let writer = PostgresOptions::new(server::url())
        .schema(&schema)
        .notify_every(Duration::from_secs(1))
        .open()
        .unwrap();
    let reader = PostgresOptions::new(server::url())
        .schema(&schema)
        .poll_every(Duration::from_secs(3600))
        .open()
        .unwrap();
    let watch = reader.head_watch().expect("a head watch");
    let s = StreamId::parse("burst-1").unwrap();
    // The first commit is notified at once (and waits out the reader's LISTEN starting).
    writer
        .append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .unwrap();
    assert_eq!(watch.wait_beyond(0, Duration::from_secs(10)), 1);
    let (seen, burst) = std::thread::scope(|scope| {
        let seen = scope.spawn(|| {
            let mut seen = vec![1];
            while *seen.last().unwrap() < 40 {
                let last = *seen.last().unwrap();
                let head = watch.wait_beyond(last, Duration::from_secs(10));
                assert!(head > last, "the reader was not woken");
                seen.push(head);
            }
            seen
        });
        let burst = std::time::Instant::now();
        for n in 2..=40u64 {
            writer
                .append(&s, ExpectedVersion::Exact(n - 1), vec![event(n)])
                .unwrap();
            // Spaced out, so that unpaced each commit would be notified alone.
            std::thread::sleep(Duration::from_millis(10));
        }
        (seen.join().unwrap(), burst.elapsed())
    });
    assert_eq!(
        *seen.last().unwrap(),
        40,
        "the last wake-up carries the newest head"
    );
    // One wake-up per period the burst spans (and the period it started in), not one per
    // commit: unpaced, a commit every 10 ms is a wake-up each.
    let periods = burst.as_secs() as usize + 2;
    assert!(
        seen.len() <= 1 + periods,
        "{} wake-ups for 40 commits in {burst:?}: {seen:?}",
        seen.len()
    );
}

/// The server stopped and started again under a writer: calls fail with `Storage` errors
/// while it is down, the store reconnects by itself, and every acknowledged append is in the
/// log where it was reported.
#[test]
fn a_server_restart_fails_calls_while_down_and_loses_nothing_acknowledged() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    let cluster = server::Cluster::start();
    let store = PostgresOptions::new(cluster.url())
        .schema("restart")
        .open()
        .unwrap();
    let stop = AtomicBool::new(false);
    let acknowledged = Mutex::new(Vec::new());
    let failed = Mutex::new(0u64);
    let exact = StreamId::parse("restart-exact").unwrap();
    for v in 0..5 {
        let e = event(v);
        let id = e.event_id;
        let r = store
            .append(&exact, ExpectedVersion::Exact(v), vec![e])
            .unwrap();
        acknowledged.lock().unwrap().push((id, r.first_position));
    }
    let (tried, written) = store.one_trip_groups();
    assert!(
        written >= 3,
        "exact appends alone go in one trip: {tried}, {written}"
    );
    std::thread::scope(|scope| {
        for t in 0..3u64 {
            let (store, stop, acknowledged, failed) = (&store, &stop, &acknowledged, &failed);
            scope.spawn(move || {
                let s = StreamId::new("restart", t).unwrap();
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let e = event(t * 1_000_000 + seq);
                    let id = e.event_id;
                    match store.append(&s, ExpectedVersion::Any, vec![e]) {
                        Ok(r) => acknowledged.lock().unwrap().push((id, r.first_position)),
                        Err(es_runtime::AppendError::Storage { .. }) => {
                            *failed.lock().unwrap() += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => panic!("{e}"),
                    }
                    seq += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        cluster.stop_server();
        let s = StreamId::parse("restart-down").unwrap();
        for _ in 0..2 {
            // The first call may find a pooled connection the server closed.
            let _ = store.append(&s, ExpectedVersion::Any, vec![event(0)]);
        }
        match store.append(&s, ExpectedVersion::Any, vec![event(0)]) {
            Err(es_runtime::AppendError::Storage { .. }) => {}
            other => panic!("an append while the server is down: {other:?}"),
        }
        assert!(matches!(
            store.head_position(),
            Err(es_runtime::ReadError::Storage(_))
        ));
        std::thread::sleep(Duration::from_millis(300));
        cluster.start_server();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while store.head_position().is_err() {
            assert!(std::time::Instant::now() < deadline, "the store reconnects");
            std::thread::sleep(Duration::from_millis(50));
        }
        let before = acknowledged.lock().unwrap().len();
        while acknowledged.lock().unwrap().len() < before + 30 {
            assert!(
                std::time::Instant::now() < deadline,
                "appends succeed again"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
    });
    // Alone, exact versions go in one round trip on the store's own connection for them,
    // which the restart killed while nothing used it: it is opened again, not failed on.
    let exact = StreamId::parse("restart-exact").unwrap();
    for v in 5..10 {
        let e = event(v);
        let id = e.event_id;
        let r = store
            .append(&exact, ExpectedVersion::Exact(v), vec![e])
            .expect("an exact append once the server is back");
        acknowledged.lock().unwrap().push((id, r.first_position));
    }
    let log = store.read_all(1, usize::MAX).unwrap();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "the log has no gaps");
    }
    let acknowledged = acknowledged.into_inner().unwrap();
    for (id, position) in &acknowledged {
        let e = &log[*position as usize - 1];
        assert_eq!(e.event_id, *id, "acknowledged event at position {position}");
    }
    let failed = failed.into_inner().unwrap();
    let _ = writeln_stderr(&format!(
        "restart: {} appends acknowledged, all in the log ({} events); {failed} failed while \
         the server was down or restarting",
        acknowledged.len(),
        log.len()
    ));
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr().lock(), "{line}")
}

/// Each event's version is stored with it; a schema of format 1 (written before event
/// versions) is upgraded at open, its events reading as version 1.
#[test]
fn event_versions_are_stored_and_a_format_1_schema_is_upgraded() {
    let schema = server::fresh_schema();
    let options = PostgresOptions::new(server::url()).schema(&schema);
    let s = StreamId::parse("evolving-1").unwrap();
    {
        let store = options.open().unwrap();
        store
            .append(&s, ExpectedVersion::NoStream, vec![event(1), event(2)])
            .unwrap();
    }
    // What format 1 looked like: no event_version column.
    sql(&format!(
        "ALTER TABLE \"{schema}\".events DROP COLUMN event_version; \
         UPDATE \"{schema}\".meta SET value = 1 WHERE key = 'format'"
    ));
    let store = options.open().unwrap();
    store
        .append(
            &s,
            ExpectedVersion::Exact(2),
            vec![event(3).with_event_version(3)],
        )
        .unwrap();
    let read = store.read_stream(&s, 1, usize::MAX).unwrap();
    let versions: Vec<u32> = read.iter().map(|e| e.event_version).collect();
    assert_eq!(versions, [1, 1, 3]);
    let all = store.read_all(1, usize::MAX).unwrap();
    assert_eq!(all.last().unwrap().event_version, 3);
    drop(store);
    // The upgrade is recorded: opening again finds the current format.
    let store = options.open().unwrap();
    assert_eq!(store.read_stream(&s, 3, 1).unwrap()[0].event_version, 3);
}

/// A group whose appends expect exact versions is sent in one round trip, planned from what
/// the store last knew of the log; when another store (another process) moved the log
/// meanwhile, that statement writes nothing and the group is planned again under the lock:
/// no append is lost, doubled or wrongly refused, a real conflict is still the append's own,
/// and the log stays gap-free.
#[test]
fn one_round_trip_groups_fall_back_when_another_store_moved_the_log() {
    let schema = server::fresh_schema();
    let open = || {
        PostgresOptions::new(server::url())
            .schema(schema.as_str())
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    let (s, t) = (
        StreamId::parse("acc-1").unwrap(),
        StreamId::parse("acc-2").unwrap(),
    );
    // The first group learns the log under the lock; the next ones go in one trip each.
    a.append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .unwrap();
    for v in 1..=5 {
        let r = a
            .append(&s, ExpectedVersion::Exact(v), vec![event(v + 1)])
            .unwrap();
        assert_eq!((r.first_version, r.first_position), (v + 1, v + 1));
    }
    assert_eq!(
        a.one_trip_groups(),
        (5, 5),
        "five groups, one round trip each"
    );
    // Another store writes both streams: `a`'s knowledge of the head and of `s` is stale.
    b.append(&s, ExpectedVersion::Exact(6), vec![event(7)])
        .unwrap();
    b.append(&t, ExpectedVersion::NoStream, vec![event(1)])
        .unwrap();
    // A stale expectation is a conflict, reported with the stream's real version.
    let stale = a.append(&s, ExpectedVersion::Exact(6), vec![event(7)]);
    assert!(
        matches!(
            stale,
            Err(es_runtime::AppendError::WrongExpectedVersion { actual: 7, .. })
        ),
        "{stale:?}"
    );
    // A stream `a` never wrote, expected new although it exists: a conflict too.
    let exists = a.append(&t, ExpectedVersion::NoStream, vec![event(2)]);
    assert!(
        matches!(
            exists,
            Err(es_runtime::AppendError::WrongExpectedVersion { actual: 1, .. })
        ),
        "{exists:?}"
    );
    // Right expectations land after `b`'s events, whatever `a` knew.
    let r = a
        .append(&s, ExpectedVersion::Exact(7), vec![event(8), event(9)])
        .unwrap();
    assert_eq!((r.first_version, r.first_position), (8, 9));
    let r = b
        .append(&t, ExpectedVersion::Exact(1), vec![event(2)])
        .unwrap();
    assert_eq!((r.first_version, r.first_position), (2, 11));
    let log = a.read_all(1, usize::MAX).unwrap();
    let seen: Vec<(u64, String, u64)> = log
        .iter()
        .map(|e| (e.position, e.stream.to_string(), e.version))
        .collect();
    let mut want: Vec<(u64, String, u64)> = (1..=7).map(|v| (v, "acc-1".to_owned(), v)).collect();
    want.push((8, "acc-2".to_owned(), 1));
    want.push((9, "acc-1".to_owned(), 8));
    want.push((10, "acc-1".to_owned(), 9));
    want.push((11, "acc-2".to_owned(), 2));
    assert_eq!(seen, want);
    // Timestamps never go back along the log, whichever way each group went.
    assert!(log.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let (tried, written) = a.one_trip_groups();
    assert!(written >= 5 && tried > written, "({tried}, {written})");
    println!("one-trip groups of the store that was overtaken: {tried} tried, {written} written");
}

/// Groups of exact-version appends are pipelined: the next is sent behind the one in flight,
/// planned on it. Under 32 writers of one store, while another store (another process) keeps
/// moving the log, which refuses every group planned on a stale head (and the one behind it):
/// every acknowledged append is in the log once, where it was reported, versions and
/// positions stay contiguous, and timestamps never go back.
#[test]
fn pipelined_groups_lose_nothing_when_another_store_moves_the_log() {
    let schema = server::fresh_schema();
    let open = || {
        PostgresOptions::new(server::url())
            .schema(schema.as_str())
            .open()
            .unwrap()
    };
    let (a, b) = (open(), open());
    const THREADS: u64 = 32;
    const APPENDS: u64 = 40;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, b_acked) = std::thread::scope(|s| {
        let (a, b, stop) = (&a, &b, &stop);
        let other = s.spawn(move || {
            let mut acked = Vec::new();
            let stream = StreamId::parse("other-1").unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = b
                    .append(&stream, ExpectedVersion::Any, vec![event(0)])
                    .unwrap();
                acked.push((r.first_position, stream.to_string(), r.first_version));
                std::thread::sleep(Duration::from_millis(2));
            }
            acked
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let stream = StreamId::new("piped", t).unwrap();
                    let mut acked = Vec::new();
                    for v in 0..APPENDS {
                        let r = a
                            .append(&stream, ExpectedVersion::Exact(v), vec![event(v)])
                            .unwrap();
                        assert_eq!(r.first_version, v + 1);
                        acked.push((r.first_position, stream.to_string(), r.first_version));
                    }
                    acked
                })
            })
            .collect();
        let acked: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (acked, other.join().unwrap())
    });
    let log = a.read_all(1, usize::MAX).unwrap();
    let mut want: Vec<(u64, String, u64)> = acked.into_iter().chain(b_acked).collect();
    want.sort();
    let seen: Vec<(u64, String, u64)> = log
        .iter()
        .map(|e| (e.position, e.stream.to_string(), e.version))
        .collect();
    assert_eq!(
        seen, want,
        "every acknowledged append, once, where it was reported"
    );
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
    assert!(log.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let (tried, written) = a.one_trip_groups();
    let behind = a.pipelined_groups();
    assert!(
        behind > 0,
        "some groups were sent behind another ({tried} tried)"
    );
    println!(
        "pipelined groups: {behind} sent behind another; {tried} tried in one trip, {written} \
         written so; {} events",
        log.len()
    );
}

/// `max_connections` bounds every connection of a store but its listener's, the one that
/// carries pipelined groups included: under 32 writers and 8 readers at once, the server
/// never sees more than `max + 1` of them, and with `max_connections(1)` nothing is pipelined.
#[test]
fn max_connections_bounds_the_pool_and_the_pipe() {
    let cluster = server::Cluster::start();
    for max in [3usize, 1] {
        let schema = format!("bounded_{max}");
        let store = PostgresOptions::new(cluster.url())
            .schema(schema.as_str())
            .max_connections(max)
            .open()
            .unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let most = std::thread::scope(|s| {
            let (store, stop) = (&store, &stop);
            for t in 0..32u64 {
                s.spawn(move || {
                    let stream = StreamId::new("bounded", t).unwrap();
                    for v in 0..30 {
                        store
                            .append(&stream, ExpectedVersion::Exact(v), vec![event(v)])
                            .unwrap();
                    }
                });
            }
            for t in 0..8u64 {
                s.spawn(move || {
                    let stream = StreamId::new("bounded", t).unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        store.read_stream(&stream, 1, usize::MAX).unwrap();
                    }
                });
            }
            let mut most = 0usize;
            for _ in 0..20 {
                let n: usize = cluster
                    .psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'es'")
                    .parse()
                    .unwrap();
                most = most.max(n);
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            most
        });
        assert!(
            most <= max + 1,
            "{most} connections for max_connections({max})"
        );
        let behind = store.pipelined_groups();
        if max == 1 {
            assert_eq!(behind, 0, "one connection: nothing pipelined");
        }
        assert_eq!(store.read_all(1, usize::MAX).unwrap().len(), 32 * 30);
        println!(
            "max_connections({max}): at most {most} connections seen, {behind} groups pipelined"
        );
        drop(store);
    }
}

/// A stream is read in pages that each ask for one range of versions, up to the version its
/// stream row holds (read with the first page): every page boundary reads whole, and a
/// version missing below the stream's last one is reported as corruption, never read past
/// or silently cut short.
#[test]
fn stream_pages_read_ranges_and_a_hole_is_corruption() {
    let schema = server::fresh_schema();
    let store = PostgresOptions::new(server::url())
        .schema(schema.as_str())
        .open()
        .unwrap();
    let s = StreamId::parse("long-1").unwrap();
    // Pages of 32, 128, 512, 2048 and 4096 versions: boundaries at 32, 160, 672, 2720, 6816.
    let total = 7000u64;
    let mut v = 0;
    while v < total {
        let n = (total - v).min(1000);
        let events = (v + 1..=v + n).map(event).collect();
        store.append(&s, ExpectedVersion::Exact(v), events).unwrap();
        v += n;
    }
    for from in [
        0,
        1,
        31,
        32,
        33,
        160,
        161,
        2720,
        6816,
        6817,
        7000,
        7001,
        u64::MAX,
    ] {
        let versions: Vec<u64> = store
            .read_stream(&s, from, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        let want: Vec<u64> = (from.max(1)..=total).collect();
        assert_eq!(versions, want, "from {from}");
    }
    let none = StreamId::parse("none-1").unwrap();
    assert!(store.read_stream(&none, 1, usize::MAX).unwrap().is_empty());
    // Streams of 200 versions (pages of 32 and 128, then 40), each with one version gone.
    for hole in [40, 32, 160, 161, 200] {
        let s = StreamId::new("hole", hole).unwrap();
        let events = (1..=200).map(event).collect();
        store.append(&s, ExpectedVersion::NoStream, events).unwrap();
        assert_eq!(store.read_stream(&s, 1, usize::MAX).unwrap().len(), 200);
        sql(&format!(
            r#"DELETE FROM "{schema}".events WHERE stream = '{s}' AND version = {hole}"#
        ));
        let read = store.read_stream(&s, 1, usize::MAX);
        assert!(
            matches!(read, Err(es_runtime::ReadError::Corrupt { .. })),
            "a hole at version {hole}: {:?}",
            read.map(|r| r.len())
        );
    }
}
