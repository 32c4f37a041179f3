//! Several processes on one database: writers with randomly long transactions while
//! followers read the log live, two processes racing on shared streams, and a writer killed
//! with SIGKILL mid-group.
//!
//! The child processes are this test binary run again with `ES_PG_CHILD` naming a role; the
//! `child` test dispatches on it and is a no-op otherwise.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_runtime::{
    AppendError, EventStore, ExpectedVersion, NewEvent, PostgresOptions, PostgresStore,
    RecordedEvent, StreamId,
};
use serde::{Deserialize, Serialize};

use super::server;

const ROLE: &str = "ES_PG_CHILD";
const SCHEMA: &str = "ES_PG_SCHEMA";
const WRITER: &str = "ES_PG_WRITER";

/// What each event says about the append it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Tag {
    writer: u64,
    thread: u64,
    seq: u64,
    index: u64,
    size: u64,
}

fn event(tag: &Tag) -> NewEvent {
    NewEvent::raw("Tagged", es_runtime::codec::encode(tag).unwrap())
}

fn tag_of(e: &RecordedEvent) -> Tag {
    es_runtime::codec::decode(&e.payload).expect("a tag")
}

fn batch(writer: u64, thread: u64, seq: u64, size: u64) -> Vec<NewEvent> {
    (0..size)
        .map(|index| {
            event(&Tag {
                writer,
                thread,
                seq,
                index,
                size,
            })
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn seeded(extra: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((nanos ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Bypasses the harness's capture, so the counts show in a plain `cargo test`.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let schema = std::env::var(SCHEMA).expect("the schema");
    let writer: u64 = std::env::var(WRITER).unwrap().parse().unwrap();
    match role.as_str() {
        "write" => write_randomly(&schema, writer),
        "contend" => contend(&schema, writer),
        "crash" => write_until_killed(&schema, writer),
        other => panic!("unknown child role {other}"),
    }
    std::process::exit(0);
}

fn spawn_child(role: &str, schema: &str, writer: u64, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "processes::child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(SCHEMA, schema)
        .env(WRITER, writer.to_string())
        // The children use this process's server, never one of their own.
        .env("ES_PG_URL", server::url())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawns a child process")
}

fn open(schema: &str) -> PostgresStore {
    PostgresOptions::new(server::url())
        .schema(schema)
        .open()
        .expect("opens the store")
}

const WRITE_THREADS: u64 = 4;
const WRITE_APPENDS: u64 = 30;

/// Appends batches of 1 to 4 events to random streams, with random pauses between appends;
/// an odd writer holds every group's transaction open for up to 15 ms before COMMIT, an even
/// one commits at once (its exact-version groups pipelined, one behind another).
fn write_randomly(schema: &str, writer: u64) {
    let mut options = PostgresOptions::new(server::url()).schema(schema);
    if writer % 2 == 1 {
        options = options.hold_commits_up_to(Duration::from_millis(15));
    }
    let store = options.open().unwrap();
    std::thread::scope(|s| {
        for thread in 0..WRITE_THREADS {
            let store = &store;
            s.spawn(move || {
                let mut rng = Rng::seeded(writer * 100 + thread);
                // Odd threads write a stream of their own with exact versions, which the store
                // may send in one round trip planned from a head that other processes moved.
                let own = StreamId::new("own", writer * 100 + thread).unwrap();
                let mut own_version = 0;
                for seq in 0..WRITE_APPENDS {
                    let size = 1 + rng.below(4);
                    let (stream, expected) = if thread % 2 == 1 {
                        own_version += size;
                        (own.clone(), ExpectedVersion::Exact(own_version - size))
                    } else {
                        let stream = StreamId::new("nos", rng.below(16)).unwrap();
                        (stream, ExpectedVersion::Any)
                    };
                    store
                        .append(&stream, expected, batch(writer, thread, seq, size))
                        .unwrap();
                    std::thread::sleep(Duration::from_micros(rng.below(5000)));
                }
            });
        }
    });
}

/// What a follower saw: each event's position and id, in the order it saw them.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<(u64, uuid::Uuid)>,
    /// Positions it saw out of order (skipped to, repeated or went back to).
    violations: Vec<(u64, u64)>,
    reads: u64,
    wakeups: u64,
}

/// Reads the log live from position 1 until `done` is set and the head is reached: by
/// polling, or by waiting on the store's head watch (woken by other processes' NOTIFYs).
fn follow(store: &PostgresStore, done: &AtomicBool, watch: bool) -> Seen {
    let mut seen = Seen::default();
    let mut last = 0;
    loop {
        let finished = done.load(Ordering::SeqCst);
        seen.reads += 1;
        store
            .read_all_with(last + 1, &mut |e| {
                if e.position != last + 1 {
                    seen.violations.push((last, e.position));
                }
                last = last.max(e.position);
                seen.events.push((e.position, e.event_id));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        if finished && last >= store.head_position().unwrap() {
            return seen;
        }
        if watch {
            let w = store.head_watch().expect("a head watch");
            if w.wait_beyond(last, Duration::from_millis(200)) > last {
                seen.wakeups += 1;
            }
        } else {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

/// Writer processes commit groups, some in transactions that stay open for random times; followers
/// reading meanwhile never skip, repeat or reorder a position, and what they saw is the
/// final log's prefix.
#[test]
fn followers_never_skip_a_position_of_concurrent_writer_processes() {
    const WRITERS: u64 = 4;
    let schema = server::fresh_schema();
    let store = open(&schema);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let followers: Vec<_> = [false, false, true]
            .into_iter()
            .map(|watch| {
                let (store, done) = (&store, &done);
                s.spawn(move || follow(store, done, watch))
            })
            .collect();
        let children: Vec<Child> = (0..WRITERS)
            .map(|w| spawn_child("write", &schema, w + 1, Stdio::null()))
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "a writer process failed");
        }
        done.store(true, Ordering::SeqCst);
        followers.into_iter().map(|f| f.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let log = store.read_all(1, usize::MAX).unwrap();
    let appends = WRITERS * WRITE_THREADS * WRITE_APPENDS;
    let batches: std::collections::HashSet<(u64, u64, u64)> = log
        .iter()
        .map(tag_of)
        .map(|t| (t.writer, t.thread, t.seq))
        .collect();
    assert_eq!(batches.len() as u64, appends, "every append is in the log");
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "the log has no gaps");
    }
    let final_ids: Vec<(u64, uuid::Uuid)> = log.iter().map(|e| (e.position, e.event_id)).collect();
    for (i, f) in seen.iter().enumerate() {
        assert!(
            f.violations.is_empty(),
            "follower {i} saw positions out of order (after, got): {:?}",
            &f.violations[..f.violations.len().min(10)]
        );
        assert_eq!(
            f.events, final_ids,
            "follower {i} saw exactly the final log"
        );
    }
    report(&format!(
        "no-skip: {} writer processes, {appends} appends, {} events in {elapsed:.2?}; \
         followers read {} times (polling), {} and {} times; the watching one woke {} times; \
         0 skipped, repeated or reordered",
        WRITERS,
        log.len(),
        seen[0].reads,
        seen[1].reads,
        seen[2].reads,
        seen[2].wakeups,
    ));
}

const SHARED_STREAMS: u64 = 10;
const CONTEND_THREADS: u64 = 4;
const CONTEND_APPENDS: u64 = 25;

/// Appends events to the shared streams, each with the exact version read just before,
/// retrying on conflicts; prints its conflict count.
fn contend(schema: &str, writer: u64) {
    let store = open(schema);
    let conflicts = Mutex::new(0u64);
    std::thread::scope(|s| {
        for thread in 0..CONTEND_THREADS {
            let (store, conflicts) = (&store, &conflicts);
            s.spawn(move || {
                let mut rng = Rng::seeded(writer * 100 + thread);
                for seq in 0..CONTEND_APPENDS {
                    let stream = StreamId::new("acct", rng.below(SHARED_STREAMS)).unwrap();
                    loop {
                        let v = store.stream_version(&stream).unwrap();
                        match store.append(
                            &stream,
                            ExpectedVersion::Exact(v),
                            batch(writer, thread, seq, 1),
                        ) {
                            Ok(r) => {
                                assert_eq!(r.first_version, v + 1);
                                break;
                            }
                            Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                                assert!(actual > v);
                                *conflicts.lock().unwrap() += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    println!("conflicts {}", conflicts.into_inner().unwrap());
}

/// Two processes racing with exact expected versions on 10 shared streams: every append
/// lands once, no update is lost, and each stream's versions are contiguous.
#[test]
fn expected_versions_hold_across_processes() {
    let schema = server::fresh_schema();
    let store = open(&schema);
    let started = Instant::now();
    let children: Vec<Child> = (1..=2)
        .map(|w| spawn_child("contend", &schema, w, Stdio::piped()))
        .collect();
    let mut conflicts = 0;
    for mut c in children {
        let out = BufReader::new(c.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(at) = line.find("conflicts ") {
                conflicts += line[at + 10..].trim().parse::<u64>().unwrap();
            }
        }
        assert!(c.wait().unwrap().success(), "a contending process failed");
    }
    let log = store.read_all(1, usize::MAX).unwrap();
    let appends = 2 * CONTEND_THREADS * CONTEND_APPENDS;
    assert_eq!(log.len() as u64, appends, "every append landed once");
    let mut tags: Vec<Tag> = log.iter().map(tag_of).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len() as u64, appends, "no append landed twice");
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &log {
        versions
            .entry(e.stream.as_str())
            .or_default()
            .push(e.version);
    }
    for (s, vs) in &versions {
        assert_eq!(vs, &(1..=vs.len() as u64).collect::<Vec<_>>(), "{s}");
    }
    assert!(conflicts > 0, "the processes did race");
    report(&format!(
        "two processes: {appends} appends over {SHARED_STREAMS} streams in {:.2?}, {conflicts} \
         conflicts retried, no lost update",
        started.elapsed()
    ));
}

/// Appends batches of 1 to 8 events from several threads until killed, printing each
/// acknowledged append as `ok WRITER THREAD SEQ SIZE FIRST_POSITION`.
fn write_until_killed(schema: &str, writer: u64) {
    let store = open(schema);
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for thread in 0..4 {
            let (store, out) = (&store, &out);
            s.spawn(move || {
                let mut rng = Rng::seeded(writer * 100 + thread);
                for seq in 0.. {
                    let stream = StreamId::new("crash", rng.below(8)).unwrap();
                    let size = 1 + rng.below(8);
                    let r = store
                        .append(
                            &stream,
                            ExpectedVersion::Any,
                            batch(writer, thread, seq, size),
                        )
                        .unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(
                        out,
                        "ok {writer} {thread} {seq} {size} {}",
                        r.first_position
                    )
                    .unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// A writer killed with SIGKILL mid-group, three times over: every acknowledged append is
/// in the log where it was reported, no batch is partly there, and positions and versions
/// stay gap-free.
#[test]
fn a_writer_killed_mid_group_loses_nothing_acknowledged() {
    let schema = server::fresh_schema();
    let store = open(&schema);
    let mut acknowledged: HashMap<(u64, u64, u64), (u64, u64)> = HashMap::new();
    let mut rng = Rng::seeded(7);
    for round in 1..=3 {
        let mut child = spawn_child("crash", &schema, round, Stdio::piped());
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Kill it once it is well into writing.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines.lock().unwrap().len() < 20 + rng.below(200) as usize {
            assert!(Instant::now() < deadline, "the writer made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            // The harness prints its own text too, the first report on its line.
            let Some(at) = line.find("ok ") else {
                continue;
            };
            let fields = &line[at + 3..];
            let f: Vec<u64> = fields.split(' ').map(|n| n.parse().unwrap()).collect();
            acknowledged.insert((f[0], f[1], f[2]), (f[3], f[4]));
        }
    }
    let log = store.read_all(1, usize::MAX).unwrap();
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "the log has no gaps");
    }
    let mut batches: HashMap<(u64, u64, u64), Vec<(u64, u64)>> = HashMap::new();
    for e in &log {
        let t = tag_of(e);
        batches
            .entry((t.writer, t.thread, t.seq))
            .or_default()
            .push((t.index, e.position));
        assert!(t.index < t.size);
    }
    for (key, events) in &batches {
        let first = events[0].1;
        let want: Vec<(u64, u64)> = (0..events.len() as u64).map(|i| (i, first + i)).collect();
        assert_eq!(events, &want, "batch {key:?} is whole and contiguous");
    }
    for e in &log {
        let t = tag_of(e);
        assert_eq!(
            batches[&(t.writer, t.thread, t.seq)].len() as u64,
            t.size,
            "no batch is partly written"
        );
    }
    for (key, (size, first)) in &acknowledged {
        let events = batches
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged append {key:?} is lost"));
        assert_eq!(
            (events.len() as u64, events[0].1),
            (*size, *first),
            "{key:?}"
        );
    }
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &log {
        versions
            .entry(e.stream.as_str())
            .or_default()
            .push(e.version);
    }
    for (s, vs) in &versions {
        assert_eq!(vs, &(1..=vs.len() as u64).collect::<Vec<_>>(), "{s}");
    }
    report(&format!(
        "kill: 3 writers killed with SIGKILL; {} appends acknowledged, {} in the log ({} events), \
         none lost or partial, no gaps",
        acknowledged.len(),
        batches.len(),
        log.len()
    ));
}
