//! Waking readers in every process when a group commits: one connection per store LISTENs on
//! the store's channel and sends the NOTIFYs of this process's commits, with a periodic
//! re-read of the head as the fallback.
//!
//! The rule: only committed head positions travel (a NOTIFY is sent after its group's COMMIT
//! returned, in a transaction of its own), so a wake-up never promises events a reader cannot
//! see; a lost notification (a dropped connection, a server restart) delays a reader by at
//! most one period. Commits never wait for their notification: heads committed within the
//! notification period after the last NOTIFY, or while it was in flight, go out as one NOTIFY
//! of the highest, and only the first commit of a period wakes the listener ([`Unnotified`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::watch::HeadWatch;

/// How often the listener re-reads the head, and the least time between its NOTIFYs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Periods {
    pub(super) poll: Duration,
    pub(super) notify: Duration,
}

/// This process's committed heads not yet notified to other processes: the newest, and
/// whether the listener was woken for it since its last NOTIFY.
#[derive(Debug, Default)]
pub(super) struct Unnotified {
    newest: AtomicU64,
    woken: AtomicBool,
    wake: Notify,
}

impl Unnotified {
    /// Records a committed head, waking the listener unless it is already woken.
    pub(super) fn committed(&self, head: u64) {
        self.newest.fetch_max(head, Ordering::SeqCst);
        if !self.woken.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The newest head, to notify now: a commit after this wakes the listener again.
    fn take(&self) -> u64 {
        self.woken.store(false, Ordering::SeqCst);
        self.newest.load(Ordering::SeqCst)
    }
}

/// Runs until the store's runtime shuts down; counts in `lost` each connection it lost.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    head_sql: String,
    watch: Arc<HeadWatch>,
    periods: Periods,
    commits: Arc<Unnotified>,
    lost: Arc<AtomicU64>,
) {
    // Woken for a head not yet notified, kept across reconnections.
    let mut pending = false;
    loop {
        let once = listen_once(
            &config,
            &channel,
            &head_sql,
            &watch,
            periods,
            &commits,
            &mut pending,
        );
        if let Err(e) = once.await {
            tracing::debug!(error = %e, "the PostgreSQL listener reconnects");
        }
        // Other connections opened before may be as dead as this one was.
        lost.fetch_add(1, Ordering::Release);
        tokio::time::sleep(periods.poll).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    head_sql: &str,
    watch: &HeadWatch,
    periods: Periods,
    commits: &Unnotified,
    pending: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven here, which also hands out its notifications.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    // The channel is a validated identifier, quoted; LISTEN takes no parameters.
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    // A notification lost in a crash costs one period of delay: not worth a WAL flush.
    client.batch_execute("SET synchronous_commit = off").await?;
    let head = client.prepare(head_sql).await?;
    let notify = client.prepare("SELECT pg_notify($1, $2)").await?;
    let mut tick = tokio::time::interval(periods.poll);
    let mut quiet_until = Instant::now();
    let result = loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(p) => {
                    if let Ok(position) = p.parse::<u64>() {
                        watch.publish(position);
                    }
                }
                None => break Ok(()),
            },
            () = commits.wake.notified(), if !*pending => *pending = true,
            () = tokio::time::sleep_until(quiet_until), if *pending => {
                let position = commits.take();
                *pending = false;
                let payload = position.to_string();
                if let Err(e) = client.execute(&notify, &[&channel, &payload]).await {
                    // Not sent: notified after the reconnection.
                    commits.committed(position);
                    break Err(e);
                }
                quiet_until = Instant::now() + periods.notify;
            }
            _ = tick.tick() => match client.query_one(&head, &[]).await {
                Ok(row) => {
                    let position: i64 = row.try_get(0)?;
                    watch.publish(position as u64);
                }
                Err(e) => break Err(e),
            },
        }
    };
    driver.abort();
    result
}
