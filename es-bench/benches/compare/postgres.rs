//! The PostgreSQL store on a throwaway server of its own (fsync on, Unix socket): the host with
//! one caller and with 64 over 1000 accounts, the store's appends, a 1000-event batch,
//! rehydrating 100k events and a projection rebuild, each against raw SQL doing the same work
//! on the same server in the same rounds; and the peer, cqrs-es with `postgres-es`, on the same
//! bank workload with one caller and with 64 (see [`crate::pg_peer`]).
//!
//! Without PostgreSQL binaries (`initdb`, `pg_ctl`: `ES_PG_BIN`, `/usr/lib/postgresql/*/bin`
//! or `PATH`) the section prints that it is skipped.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use es::projection::ProjectionRunner;
use es::{Aggregate, EventStore, ExpectedVersion, Host, NewEvent, PostgresOptions, StreamId};
use es_bench::bank::{self, BankAccount};
use es_bench::{Table, alternate_samples, median, ms, per_sec, rate, speed_ratio, time};
use tokio_postgres::types::ToSql;

use crate::pg_peer::{self, Peer};
use crate::projection::Balances;
use crate::{Config, Summary};

const ACCOUNTS: u64 = 1000;
const CALLERS: u64 = 64;
/// Rows per statement of the raw multi-row baseline: the group size 64 callers can reach.
const GROUP: usize = 64;
const BATCH: u64 = 1000;
const HISTORY: u64 = 100_000;

/// A throwaway cluster in a temporary directory, stopped and removed on drop.
pub(crate) struct Server {
    bin: PathBuf,
    pub(crate) dir: PathBuf,
    as_postgres: bool,
}

pub(crate) fn find_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ES_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists())
}

impl Server {
    fn start(bin: PathBuf) -> Server {
        Server::start_with(bin, "")
    }

    /// Starts a cluster with `settings` (`-c name=value ...`) added to the server's options.
    pub(crate) fn start_with(bin: PathBuf, settings: &str) -> Server {
        // The server refuses to run as root: then it runs as `postgres`, owning the directory.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("es-bench-pg-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates the cluster's directory");
        let server = Server {
            bin,
            dir,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of {} failed", server.dir.display());
        }
        let data = server.dir.join("data");
        let data = data.to_str().unwrap();
        server.run(
            "initdb",
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let options = format!(
            "-k {} -c listen_addresses='' -p 5432 -c max_connections=200 {settings}",
            server.dir.display()
        );
        let log = server.dir.join("log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        server
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        let out = c
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "host={} port=5432 user=postgres dbname=postgres",
            self.dir.display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            )
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU time spent by this process (every thread) and by the server's processes, summed
/// over the samples of one contender.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    bench: Duration,
    server: Duration,
    commands: u64,
}

impl Cpu {
    /// Runs `f` (which does `commands` commands) and adds the CPU time it took.
    fn add<T>(&mut self, server: &Server, commands: u64, f: impl FnOnce() -> T) -> T {
        let before = (own_cpu(), server.cpu());
        let out = f();
        self.bench += own_cpu().saturating_sub(before.0);
        self.server += server.cpu().saturating_sub(before.1);
        self.commands += commands;
        out
    }

    /// Microseconds of CPU per command: this process's, then the server's.
    fn per_command(&self) -> String {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.commands.max(1) as f64;
        format!("{:.0} / {:.0}", per(self.bench), per(self.server))
    }
}

/// User and system time of this process so far.
fn own_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

impl Server {
    /// User and system time so far of the server's postmaster and of its children alive now
    /// (from /proc, in clock ticks).
    fn cpu(&self) -> Duration {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<u32>().ok())
        else {
            return Duration::ZERO;
        };
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut ticks = 0u64;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The fields after the command's closing parenthesis: state, ppid, ...
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let pid = head.split(' ').next().and_then(|p| p.parse::<u32>().ok());
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
            if pid == Some(postmaster) || ppid == Some(postmaster) {
                let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
                ticks += n(11).unwrap_or(0) + n(12).unwrap_or(0);
            }
        }
        Duration::from_secs_f64(ticks as f64 / tick)
    }
}

/// A plain client for the raw baselines, on a runtime of its own.
pub(crate) struct Raw {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    pub(crate) one: tokio_postgres::Statement,
    group: tokio_postgres::Statement,
    batch: tokio_postgres::Statement,
    next: i64,
}

/// One row as the store writes it.
pub(crate) struct RawRow {
    stream: String,
    event_type: String,
    metadata: Vec<u8>,
    payload: Vec<u8>,
}

fn values(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=8).map(|c| format!("${}", r * 8 + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Raw {
    pub(crate) fn connect(url: &str, schema: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, one, group, batch) = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!(
                    r#"CREATE SCHEMA "{schema}";
                    CREATE TABLE "{schema}".events (
                        position bigint PRIMARY KEY, stream text COLLATE "C" NOT NULL,
                        version bigint NOT NULL, event_type text NOT NULL, event_id uuid NOT NULL,
                        timestamp_ns bigint NOT NULL, metadata bytea NOT NULL,
                        payload bytea NOT NULL, UNIQUE (stream, version))"#
                ))
                .await
                .unwrap();
            let insert = |rows: usize| {
                format!(
                    r#"INSERT INTO "{schema}".events (position, stream, version, event_type,
                       event_id, timestamp_ns, metadata, payload) VALUES {}"#,
                    values(rows)
                )
            };
            let one = client.prepare(&insert(1)).await.unwrap();
            let group = client.prepare(&insert(GROUP)).await.unwrap();
            let batch = client.prepare(&insert(BATCH as usize)).await.unwrap();
            (client, one, group, batch)
        });
        Raw {
            rt,
            client,
            one,
            group,
            batch,
            next: 1,
        }
    }

    /// Inserts `rows` in one statement, committed alone (autocommit).
    pub(crate) fn insert(&mut self, statement: &tokio_postgres::Statement, rows: &[RawRow]) {
        let ids: Vec<uuid::Uuid> = rows.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let first = self.next;
        let numbers: Vec<(i64, i64, i64)> = (0..rows.len() as i64)
            .map(|i| (first + i, first + i, 0))
            .collect();
        self.next += rows.len() as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * 8);
        for ((row, id), (p, v, ts)) in rows.iter().zip(&ids).zip(&numbers) {
            params.extend([
                p as &(dyn ToSql + Sync),
                &row.stream,
                v,
                &row.event_type,
                id,
                ts,
                &row.metadata,
                &row.payload,
            ]);
        }
        let n = self
            .rt
            .block_on(self.client.execute(statement, &params))
            .unwrap();
        assert_eq!(n, rows.len() as u64);
    }

    /// Reads every column of `rows` rows of the table from `from`, in pages like the store.
    fn read(&self, schema: &str, from: i64, rows: i64) -> u64 {
        self.rt.block_on(async {
            let page = self
                .client
                .prepare(&format!(
                    r#"SELECT position, stream, version, event_type, event_id, timestamp_ns,
                       metadata, payload FROM "{schema}".events
                       WHERE position >= $1 ORDER BY position LIMIT $2"#
                ))
                .await
                .unwrap();
            let (mut at, mut bytes) = (from, 0u64);
            while at < from + rows {
                let got = self.client.query(&page, &[&at, &2048i64]).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for r in &got {
                    let payload: &[u8] = r.get(7);
                    let stream: &str = r.get(1);
                    bytes += (payload.len() + stream.len()) as u64;
                }
                at = got.last().unwrap().get::<_, i64>(0) + 1;
            }
            bytes
        })
    }

    /// Events and mean group size of a store's schema since `after`.
    fn groups(&self, schema: &str, after: i64) -> (i64, i64) {
        let row = self
            .rt
            .block_on(self.client.query_one(
                &format!(
                    r#"SELECT count(*), count(DISTINCT timestamp_ns) FROM "{schema}".events
                       WHERE position > $1"#
                ),
                &[&after],
            ))
            .unwrap();
        (row.get(0), row.get(1))
    }

    fn head(&self, schema: &str) -> i64 {
        self.rt
            .block_on(
                self.client
                    .query_one(&format!(r#"SELECT position FROM "{schema}".head"#), &[]),
            )
            .unwrap()
            .get(0)
    }
}

pub(crate) fn raw_row(stream: &StreamId, e: &NewEvent) -> RawRow {
    RawRow {
        stream: stream.to_string(),
        event_type: e.event_type.to_string(),
        metadata: Vec::new(),
        payload: e.payload.clone(),
    }
}

/// Which account caller `c` uses for its `i`th command: spread, and different per caller.
fn account(c: u64, i: u64) -> u64 {
    (c * 7919 + i * 104_729) % ACCOUNTS
}

/// `CALLERS` threads each running `per_caller` operations; the time until all are done.
fn concurrently(per_caller: u64, op: impl Fn(u64, u64) + Sync) -> Duration {
    let barrier = Barrier::new(CALLERS as usize + 1);
    std::thread::scope(|s| {
        for c in 0..CALLERS {
            let (op, barrier) = (&op, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_caller {
                    op(c, i);
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed()
}

pub(crate) fn run(cfg: &Config, summary: &mut Summary) {
    let Some(bin) = find_bin() else {
        println!(
            "## PostgreSQL\n\nSkipped: no PostgreSQL server binaries (initdb, pg_ctl) found in \
             ES_PG_BIN, /usr/lib/postgresql/*/bin or PATH. Debian: `apt-get install \
             postgresql`.\n"
        );
        return;
    };
    let server = Server::start(bin);
    let url = server.url();
    let n: u64 = cfg.pick(1000, 300);
    let per_caller: u64 = cfg.pick(100, 30);
    let events: u64 = cfg.pick(1_000_000, 100_000);
    let open = |schema: &str| {
        Arc::new(
            PostgresOptions::new(url.as_str())
                .schema(schema)
                .max_connections(8)
                .open()
                .unwrap(),
        )
    };
    let streams: Vec<StreamId> = (0..ACCOUNTS)
        .map(|a| StreamId::new(BankAccount::NAME, a).unwrap())
        .collect();
    let opened = |schema: &str| {
        let store = open(schema);
        for s in &streams {
            store
                .append(s, ExpectedVersion::NoStream, vec![bank::new_event(1)])
                .unwrap();
        }
        store
    };
    let host = Host::<BankAccount, _>::new(opened("host_one"));
    let host_64 = Host::<BankAccount, _>::new(opened("host_many"));
    for a in 0..ACCOUNTS {
        host.version(a).unwrap();
        host_64.version(a).unwrap();
    }
    let store = opened("store_one");
    let store_64 = opened("store_many");
    let batches = open("batches");
    let peer_url = pg_peer::url(&server.dir.display().to_string());
    let peer = Peer::open(&peer_url, "peer_one", ACCOUNTS, CALLERS as u32);
    let peer_64 = Peer::open(&peer_url, "peer_many", ACCOUNTS, CALLERS as u32);
    let mut raw = Raw::connect(&url, "raw");
    let rows: Vec<RawRow> = streams
        .iter()
        .map(|s| raw_row(s, &bank::new_event(2)))
        .collect();
    raw.insert(&raw.one.clone(), &rows[..1]);

    let (mut cpu_host_one, mut cpu_raw_one, mut cpu_host_many) =
        (Cpu::default(), Cpu::default(), Cpu::default());
    let mut next = 0u64;
    let mut host_one = || {
        let d = cpu_host_one.add(&server, n, || {
            time(|| {
                for i in next..next + n {
                    host.execute(i % ACCOUNTS, bank::deposit(1)).unwrap();
                }
                host.flush_snapshots();
            })
        });
        next += n;
        d
    };
    let mut store_next = 0u64;
    let mut store_one = || {
        let mut versions: Vec<u64> = streams
            .iter()
            .map(|s| store.stream_version(s).unwrap())
            .collect();
        let events: Vec<NewEvent> = (0..n).map(|_| bank::new_event(2)).collect();
        let d = time(|| {
            for (i, e) in (store_next..store_next + n).zip(events) {
                let a = (i % ACCOUNTS) as usize;
                store
                    .append(&streams[a], ExpectedVersion::Exact(versions[a]), vec![e])
                    .unwrap();
                versions[a] += 1;
            }
        });
        store_next += n;
        d
    };
    let raw = std::cell::RefCell::new(raw);
    let mut raw_one = || {
        let mut raw = raw.borrow_mut();
        let one = raw.one.clone();
        cpu_raw_one.add(&server, n, || {
            time(|| {
                for i in 0..n as usize {
                    raw.insert(&one, &rows[i % rows.len()..][..1]);
                }
            })
        })
    };
    // The same rows, 64 in one statement per commit (timed per row written).
    let mut raw_group = || {
        let mut raw = raw.borrow_mut();
        let group = raw.group.clone();
        time(|| {
            for g in 0..(n as usize).div_ceil(GROUP) {
                let at = (g * GROUP) % (rows.len() - GROUP);
                raw.insert(&group, &rows[at..at + GROUP]);
            }
        })
    };
    let mut peer_next = 0u64;
    let mut peer_one = || {
        let d = peer.one(peer_next, n);
        peer_next += n;
        d
    };
    let group_rows = (n as usize).div_ceil(GROUP) * GROUP;
    let [host_one, store_one, raw_one, raw_group, peer_one] = alternate_samples(
        cfg.rounds,
        [
            &mut host_one,
            &mut store_one,
            &mut raw_one,
            &mut raw_group,
            &mut peer_one,
        ],
    );

    let mut host_groups = (0i64, 0i64);
    let mut host_many = || {
        let before = raw.borrow().head("host_many");
        let d = cpu_host_many.add(&server, per_caller * CALLERS, || {
            concurrently(per_caller, |c, i| {
                host_64.execute(account(c, i), bank::deposit(1)).unwrap();
            }) + time(|| host_64.flush_snapshots())
        });
        let (e, g) = raw.borrow().groups("host_many", before);
        host_groups = (host_groups.0 + e, host_groups.1 + g);
        d
    };
    let mut store_groups = (0i64, 0i64);
    let mut store_many = || {
        let before = raw.borrow().head("store_many");
        let d = concurrently(per_caller, |c, i| {
            store_64
                .append(
                    &streams[account(c, i) as usize],
                    ExpectedVersion::Any,
                    vec![bank::new_event(2)],
                )
                .unwrap();
        });
        let (e, g) = raw.borrow().groups("store_many", before);
        store_groups = (store_groups.0 + e, store_groups.1 + g);
        d
    };
    let mut peer_many = || peer_64.many(CALLERS, per_caller, account);
    let [host_many, store_many, peer_many] = alternate_samples(
        cfg.rounds,
        [&mut host_many, &mut store_many, &mut peer_many],
    );
    let peer_retries = (
        peer.retries.load(std::sync::atomic::Ordering::Relaxed),
        peer_64.retries.load(std::sync::atomic::Ordering::Relaxed),
    );
    drop((peer, peer_64));

    // One append of 1000 events to a new stream, against one INSERT of the same 1000 rows.
    let mut batch_no = 0u64;
    let mut batch = || {
        let stream = StreamId::new("batch", batch_no).unwrap();
        batch_no += 1;
        let events: Vec<NewEvent> = (1..=BATCH).map(bank::new_event).collect();
        time(|| {
            batches
                .append(&stream, ExpectedVersion::NoStream, events)
                .unwrap();
        })
    };
    let batch_rows: Vec<RawRow> = (1..=BATCH)
        .map(|v| raw_row(&streams[0], &bank::new_event(v)))
        .collect();
    let mut raw_batch = || {
        let mut raw = raw.borrow_mut();
        let statement = raw.batch.clone();
        time(|| raw.insert(&statement, &batch_rows))
    };
    let [batch, raw_batch] = alternate_samples(cfg.rounds, [&mut batch, &mut raw_batch]);

    // Rehydrating one stream of 100k events (no snapshot), against raw SQL reading the rows.
    let history = open("history");
    let long = StreamId::new(BankAccount::NAME, "long").unwrap();
    bank::write_history(&*history, &long, 1, HISTORY);
    let history_host = Host::<BankAccount, _>::builder(history.clone())
        .snapshot_every(0)
        .build();
    let mut rehydrate = || {
        history_host.passivate("long");
        time(|| assert_eq!(history_host.version("long").unwrap(), HISTORY))
    };
    let mut raw_read = || time(|| assert!(raw.borrow().read("history", 1, HISTORY as i64) > 0));
    let [rehydrate, raw_read] = alternate_samples(cfg.rounds, [&mut rehydrate, &mut raw_read]);

    // A projection rebuild over a log of `events` events of 1000 accounts.
    let log = open("log");
    let write = time(|| {
        let per_account = events / ACCOUNTS;
        for s in &streams {
            bank::write_history(&*log, s, 1, per_account);
        }
    });
    assert_eq!(log.head_position().unwrap(), events);
    let mut rebuild = || {
        let mut runner = ProjectionRunner::new(log.clone(), Balances::default());
        let d = time(|| assert_eq!(runner.rebuild(|_| {}).unwrap(), events));
        assert_eq!(runner.projection().by_account.len(), ACCOUNTS as usize);
        d
    };
    let mut raw_scan = || time(|| assert!(raw.borrow().read("log", 1, events as i64) > 0));
    let [rebuild, raw_scan] = alternate_samples(cfg.rounds.min(5), [&mut rebuild, &mut raw_scan]);
    drop(server);

    let pct = |r: f64| format!("{:.0}%", 100.0 * r);
    let one_vs = |s: &[Duration]| speed_ratio(s, &raw_one);
    let (host_vs, store_vs, group_vs) = (one_vs(&host_one), one_vs(&store_one), 0.0);
    let _ = group_vs;
    let (peer_one_vs, peer_many_vs) = (
        speed_ratio(&host_one, &peer_one),
        speed_ratio(&host_many, &peer_many),
    );
    let one = |s: Vec<Duration>| rate(n, median(s));
    let peer_one = one(peer_one);
    let (host_one, store_one, raw_one) = (one(host_one), one(store_one), one(raw_one));
    let raw_group = rate(group_rows as u64, median(raw_group));
    let many = CALLERS * per_caller;
    let (host_many, store_many, peer_many) = (
        rate(many, median(host_many)),
        rate(many, median(store_many)),
        rate(many, median(peer_many)),
    );
    let mean = |(e, g): (i64, i64)| e as f64 / g.max(1) as f64;

    println!("## PostgreSQL, 1000 accounts (fsync on, Unix socket)\n");
    println!(
        "A throwaway PostgreSQL server started for the run (`initdb`, fsync on, one Unix \
         socket). One caller: {n} commands (or appends, or raw commits) one after another, \
         round robin over the accounts. {CALLERS} callers: {many} from {CALLERS} threads at \
         once, group-committed; the mean group is the events written over the transactions \
         that wrote them. Raw SQL writes the store's rows (same columns, keys and payloads) \
         with prepared statements through tokio-postgres: one INSERT committed alone per row, \
         or {GROUP} rows in one multi-row INSERT per commit. \"vs raw\" is the median over \
         the rounds of each round's ratio to raw one-row commits. CPU per command is this \
         process's (every thread: callers, the store's runtime, its listener) and then the \
         server's (the postmaster and its processes alive at the end of each sample, from \
         /proc) over every sample of the contender; on this machine's two cores the two \
         together bound the rate at about two million over their sum per second.\n"
    );
    let mut t = Table::new(&[
        "",
        "1 caller",
        "vs raw, paired by round",
        "64 callers",
        "mean group",
        "CPU µs per command, 1 caller",
        "64 callers",
    ]);
    t.row(vec![
        "Host::execute".into(),
        per_sec(host_one),
        pct(host_vs),
        per_sec(host_many),
        format!("{:.1}", mean(host_groups)),
        cpu_host_one.per_command(),
        cpu_host_many.per_command(),
    ]);
    t.row(vec![
        "PostgresStore::append".into(),
        per_sec(store_one),
        pct(store_vs),
        per_sec(store_many),
        format!("{:.1}", mean(store_groups)),
        String::new(),
        String::new(),
    ]);
    t.row(vec![
        "raw SQL, one INSERT + commit per row".into(),
        per_sec(raw_one),
        "100%".into(),
        String::new(),
        "1".into(),
        cpu_raw_one.per_command(),
        String::new(),
    ]);
    t.row(vec![
        format!("raw SQL, {GROUP} rows per INSERT + commit (rows/s)"),
        per_sec(raw_group),
        String::new(),
        String::new(),
        GROUP.to_string(),
        String::new(),
        String::new(),
    ]);
    t.print();

    println!("## The peer over PostgreSQL: cqrs-es 0.5 with postgres-es 0.5 vs es\n");
    println!(
        "The same bank account and deposits on the same server, in the same rounds as the \
         table above: es is `Host::execute` over `PostgresStore`; the peer is cqrs-es's \
         `CqrsFramework` over postgres-es's `PostgresEventRepository` (a sqlx pool of \
         {CALLERS} connections, a tokio runtime of two workers), which loads every event of the \
         account on each command and commits its event in a transaction of its own. {CALLERS} \
         callers are {CALLERS} threads for es and {CALLERS} tasks for the peer; the peer's \
         commands that lost a race on their account were retried ({} with one caller, {} with \
         {CALLERS}). \"es / peer\" is the median over the rounds of each round's ratio.\n",
        peer_retries.0, peer_retries.1
    );
    let mut t = Table::new(&["workload", "es", "postgres-es", "es / postgres-es"]);
    t.row(vec![
        format!("1 caller, {n} deposits round robin over {ACCOUNTS} accounts"),
        per_sec(host_one),
        per_sec(peer_one),
        format!("{peer_one_vs:.2}×"),
    ]);
    t.row(vec![
        format!("{CALLERS} callers over {ACCOUNTS} accounts, {many} deposits"),
        per_sec(host_many),
        per_sec(peer_many),
        format!("{peer_many_vs:.2}×"),
    ]);
    t.print();

    let batch_ratio = 1.0 / speed_ratio(&batch, &raw_batch);
    let rebuild_rate = rate(events, median(rebuild.clone()));
    println!(
        "Bulk: one append of {BATCH} events to a new stream against one INSERT of the same \
         {BATCH} rows; rehydrating a stream of {HISTORY} events (no snapshot) against raw SQL \
         reading its rows in pages of 2048; a projection rebuild (every account's balance) \
         over a log of {events} events (written in {:.1} s, 1000 events per append) against \
         raw SQL reading the log.\n",
        write.as_secs_f64()
    );
    let mut t = Table::new(&["", "es", "raw SQL", "es / raw"]);
    t.row(vec![
        format!("{BATCH}-event batch"),
        ms(median(batch.clone())),
        ms(median(raw_batch.clone())),
        format!("{batch_ratio:.2}×"),
    ]);
    t.row(vec![
        format!("rehydrate {HISTORY} events"),
        ms(median(rehydrate.clone())),
        ms(median(raw_read.clone())),
        format!("{:.2}×", 1.0 / speed_ratio(&rehydrate, &raw_read)),
    ]);
    t.row(vec![
        format!("projection rebuild, {events} events"),
        format!(
            "{} ({})",
            ms(median(rebuild.clone())),
            per_sec(rebuild_rate)
        ),
        ms(median(raw_scan.clone())),
        format!("{:.2}×", 1.0 / speed_ratio(&rebuild, &raw_scan)),
    ]);
    t.print();

    summary.goal(
        "PostgreSQL host, 1 caller, vs raw one-row commits",
        "≥ 90%",
        format!(
            "{} vs {} (medians); {} paired by round",
            per_sec(host_one),
            per_sec(raw_one),
            pct(host_vs)
        ),
        host_vs >= 0.9,
    );
    summary.goal(
        "PostgreSQL host, 64 callers over 1000 accounts",
        "≥ 50k commands/s",
        per_sec(host_many),
        host_many >= 50e3,
    );
    summary.goal(
        "PostgreSQL host, 64 callers, vs postgres-es 0.5",
        "≥ 10×",
        format!(
            "{} vs {}: {peer_many_vs:.2}×",
            per_sec(host_many),
            per_sec(peer_many)
        ),
        peer_many_vs >= 10.0,
    );
    summary.goal(
        "PostgreSQL 1000-event batch vs raw multi-row insert",
        "≤ 1.3×",
        format!("{batch_ratio:.2}×"),
        batch_ratio <= 1.3,
    );
    let rehydrated = median(rehydrate);
    summary.goal(
        "PostgreSQL rehydrate 100k events",
        "≤ 100 ms",
        ms(rehydrated),
        rehydrated <= Duration::from_millis(100),
    );
    summary.goal(
        &format!("PostgreSQL projection rebuild over {events} events"),
        "≥ 500k events/s",
        per_sec(rebuild_rate),
        rebuild_rate >= 500e3,
    );
}
