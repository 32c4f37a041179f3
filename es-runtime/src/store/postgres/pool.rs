//! The connections of a store: a bounded pool, each connection with every statement prepared
//! once, all driven by a small runtime that belongs to the store.
//!
//! The rule: the caller's thread never enters the store's runtime. A call hands its future to
//! the runtime and waits on a plain channel, so it blocks the same way from a plain thread, a
//! blocking pool or (against advice, but without panicking) from inside an async task of any
//! executor, tokio's included. A future that only talks to a connection (which the runtime
//! drives) may instead be polled on the calling thread by [`block_here`], which parks the
//! thread between wake-ups and needs no runtime at all.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio_postgres::{Client, NoTls, Statement};

use super::schema::Sql;
use crate::error::BoxError;

/// Declares [`Statements`] and its preparation from the same list of names, which are the
/// names of the fields of [`Sql`] holding their text.
macro_rules! statements {
    ($($name:ident),* $(,)?) => {
        /// Every statement of the store, prepared on one connection.
        #[derive(Debug)]
        pub(super) struct Statements {
            $(pub(super) $name: Statement,)*
        }

        impl Statements {
            async fn prepare(client: &Client, sql: &Sql) -> Result<Self, tokio_postgres::Error> {
                // Sent together: one round trip for all of them.
                let prepared =
                    futures_util::future::try_join_all([$(client.prepare(&sql.$name)),*]).await?;
                let mut prepared = prepared.into_iter();
                Ok(Statements {
                    $($name: prepared.next().expect("one statement per name"),)*
                })
            }
        }
    };
}

statements!(
    begin,
    commit,
    rollback,
    lock_head,
    versions,
    write_group,
    head,
    stream_version,
    read_stream,
    read_all,
    save_snapshot,
    trim_snapshots,
    snapshots,
    snapshot_before,
    save_checkpoint,
    load_checkpoint,
    lock_checkpoint,
    delete_checkpoint,
    import_group,
    checkpoints,
);

/// One open connection and its statements.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) st: Statements,
}

/// The store's runtime: two worker threads, shut down without waiting when the store drops.
#[derive(Debug)]
pub(super) struct Runtime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Runtime {
    pub(super) fn new() -> std::io::Result<Runtime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("es-postgres")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Runtime {
            runtime: Some(runtime),
            handle,
        })
    }

    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `future` on the runtime and blocks this thread (not the runtime) for its output.
    pub(super) fn run<T, F>(&self, future: F) -> Result<T, BoxError>
    where
        F: Future<Output = Result<T, BoxError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err("the store's database task ended without an answer".into()))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Polls `future` to its end on the calling thread, parking it until a wake-up: for futures
/// of the PostgreSQL client, whose connection task (on the store's runtime) wakes them. It
/// saves the two hand-offs of [`Runtime::run`] (to a task of the runtime and back).
pub(super) fn block_here<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A wake-up that came before the park leaves its token: park returns at once.
        std::thread::park();
    }
}

/// A connection driven by the threads that wait on it, on a current-thread runtime of its
/// own: a statement goes out and its answer comes in on the calling thread, with no hand-off
/// to another thread either way. Only for threads outside any async runtime (a current-thread
/// runtime cannot be entered from inside one); several may wait on it at once, the first
/// driving it for all.
#[derive(Debug)]
pub(super) struct Driven {
    pub(super) conn: Conn,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Driven {
    /// Connects and prepares the statements, on the calling thread.
    pub(super) fn connect(config: tokio_postgres::Config, sql: Arc<Sql>) -> Result<Self, BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The connection's task is spawned on this runtime, which runs it while any thread
        // waits in `block_on`.
        let conn = runtime.block_on(connect(config, sql))?;
        Ok(Driven {
            conn,
            runtime: Some(runtime),
        })
    }

    /// Polls `future` on the calling thread, driving the connection meanwhile.
    pub(super) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("dropped only with the connection")
            .block_on(future)
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A bounded pool of connections, opened on demand and dropped once the server closed them.
#[derive(Debug)]
pub(super) struct Pool {
    config: tokio_postgres::Config,
    sql: Arc<Sql>,
    max: usize,
    wait: Duration,
    state: Mutex<Idle>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct Idle {
    conns: Vec<Arc<Conn>>,
    /// Connections open or being opened, idle or in use: at most `max`.
    open: usize,
}

/// Connects and prepares the statements.
pub(super) async fn connect(
    config: tokio_postgres::Config,
    sql: Arc<Sql>,
) -> Result<Conn, BoxError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    let st = Statements::prepare(&client, &sql).await?;
    Ok(Conn { client, st })
}

impl Pool {
    pub(super) fn new(
        config: tokio_postgres::Config,
        sql: Arc<Sql>,
        max: usize,
        wait: Duration,
    ) -> Pool {
        Pool {
            config,
            sql,
            max: max.max(1),
            wait,
            state: Mutex::new(Idle::default()),
            returned: Condvar::new(),
        }
    }

    /// How the pool connects.
    pub(super) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The statements every connection prepares.
    pub(super) fn sql(&self) -> Arc<Sql> {
        Arc::clone(&self.sql)
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` with a connection of the pool on the calling thread (see [`block_here`]):
    /// `op` may only wait on the connection, never on a timer or on other I/O.
    pub(super) fn with_here<T, F, Fut>(&self, runtime: &Runtime, op: F) -> Result<T, BoxError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, BoxError>>,
    {
        let conn = self.acquire(runtime)?;
        let result = block_here(op(Arc::clone(&conn)));
        self.release(conn);
        result
    }

    /// Runs `op` with a connection of the pool, on `runtime`.
    pub(super) fn with<T, F, Fut>(&self, runtime: &Runtime, op: F) -> Result<T, BoxError>
    where
        F: FnOnce(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.acquire(runtime)?;
        let result = runtime.run(op(Arc::clone(&conn)));
        self.release(conn);
        result
    }

    pub(super) fn acquire(&self, runtime: &Runtime) -> Result<Arc<Conn>, BoxError> {
        let deadline = std::time::Instant::now() + self.wait;
        let mut idle = self.lock();
        loop {
            while let Some(conn) = idle.conns.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
                idle.open -= 1;
            }
            if idle.open < self.max {
                idle.open += 1;
                drop(idle);
                let connected = runtime.run(connect(self.config.clone(), Arc::clone(&self.sql)));
                return match connected {
                    Ok(conn) => Ok(Arc::new(conn)),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(format!(
                    "no connection of the pool ({}) came free within {:?}",
                    self.max, self.wait
                )
                .into());
            }
            idle = self
                .returned
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes one of the pool's places for a connection kept outside it, if the pool has at
    /// least two (one stays for its own use) and one is free or idle (then closed).
    pub(super) fn reserve(&self) -> bool {
        let mut idle = self.lock();
        if self.max < 2 {
            return false;
        }
        if idle.open >= self.max && idle.conns.pop().is_some() {
            idle.open -= 1;
        }
        if idle.open < self.max {
            idle.open += 1;
            true
        } else {
            false
        }
    }

    /// Gives back a place taken by [`reserve`](Self::reserve).
    pub(super) fn unreserve(&self) {
        self.lock().open -= 1;
        self.returned.notify_one();
    }

    pub(super) fn release(&self, conn: Arc<Conn>) {
        let mut idle = self.lock();
        if conn.client.is_closed() {
            idle.open -= 1;
        } else {
            idle.conns.push(conn);
        }
        drop(idle);
        self.returned.notify_one();
    }
}
