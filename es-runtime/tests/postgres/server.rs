//! The PostgreSQL server the tests of one binary share, and a fresh schema for each test.
//!
//! With `ES_PG_URL` set (a libpq connection string or URL; `.ci/run` sets it), the tests use
//! that server. Without it, the first test starts a throwaway cluster: `initdb` and `pg_ctl`
//! from `ES_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin`, or `PATH`, in a temporary
//! directory, listening on a Unix socket there and nowhere else. As root, the binaries run as
//! the `postgres` user (the server refuses root) and the directory is given to that user. A
//! watchdog process stops the cluster and removes the directory when the test binary exits,
//! however it exits. Without any binaries the tests fail, saying how to get some: never a
//! silent skip.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use es_runtime::{PostgresOptions, PostgresStore};

/// The connection string of the shared server.
pub(crate) fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("ES_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let cluster = Cluster::start();
            let url = cluster.url();
            // Kept for the life of the process: its watchdog stops it at exit.
            std::mem::forget(cluster);
            url
        }
    })
}

/// A schema name no other test (of any run, on a shared server) uses.
pub(crate) fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("es_test_{}_{n}_{nanos}", std::process::id())
}

/// Options for the shared server with a fresh schema.
pub(crate) fn options() -> PostgresOptions {
    PostgresOptions::new(url()).schema(fresh_schema())
}

/// A store in a fresh schema of the shared server.
pub(crate) fn store() -> PostgresStore {
    options().open().expect("opens a PostgreSQL store")
}

/// A throwaway cluster in a temporary directory.
#[derive(Debug)]
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    /// Closing it (at exit) tells the watchdog to stop the server and remove `dir`.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

fn find_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("ES_PG_BIN") {
        return PathBuf::from(dir);
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
        return bin;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").exists() && dir.join("initdb").exists() {
                return dir;
            }
        }
    }
    panic!(
        "\n\n*** The PostgreSQL tests need a server. ***\n\
         Set ES_PG_URL to a connection string (a database the tests may create schemas in),\n\
         or install the server binaries (Debian: `apt-get install postgresql`; or set\n\
         ES_PG_BIN to the directory holding initdb and pg_ctl) and the tests start their own.\n\n"
    );
}

impl Cluster {
    /// Starts a new cluster; panics (saying why) if it cannot.
    pub(crate) fn start() -> Cluster {
        let bin = find_bin();
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir =
            std::env::temp_dir().join(format!("es-pg-{}-{}", std::process::id(), fresh_schema()));
        std::fs::create_dir_all(&dir).expect("creates the cluster's directory");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("runs chown");
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        let cluster = Cluster {
            bin,
            dir,
            as_postgres,
            watchdog: Mutex::new(None),
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
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
        cluster.start_watchdog();
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The connection string: the Unix socket in the cluster's directory.
    pub(crate) fn url(&self) -> String {
        format!(
            "host={} port=5432 user=postgres dbname=postgres",
            self.dir.display()
        )
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} from {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Runs `sql` with `psql` over the cluster's socket; returns its unaligned output.
    pub(crate) fn psql(&self, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql from {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub(crate) fn start_server(&self) {
        let options = format!(
            "-k {} -c listen_addresses='' -p 5432 -c max_connections=300",
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                self.dir.join("log").to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server, waiting until it has (fast: open transactions are rolled back).
    pub(crate) fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn start_watchdog(&self) {
        let stop = format!(
            "{prefix}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            prefix = if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &format!("cat >/dev/null; {stop}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the cluster's watchdog");
        let stdin = child.stdin.take().expect("the watchdog's stdin");
        *self.watchdog.lock().unwrap() = Some((child, stdin));
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the pipe stops the server; waiting makes the stop finish before we go on.
        if let Some((mut child, mut stdin)) = self.watchdog.lock().unwrap().take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}
