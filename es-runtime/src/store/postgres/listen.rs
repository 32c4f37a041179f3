//! Waking readers in every process when a group commits: one connection per store LISTENs on
//! the store's channel and sends the NOTIFYs of this process's commits, with a periodic
//! re-read of the head as the fallback.
//!
//! The rule: only committed head positions travel (a NOTIFY is sent after its group's COMMIT
//! returned, in a transaction of its own), so a wake-up never promises events a reader cannot
//! see; a lost notification (a dropped connection, a server restart) delays a reader by at
//! most one period. Commits never wait for their notification: heads queued meanwhile go out
//! as one NOTIFY of the highest.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::watch::HeadWatch;

/// Runs until the store's runtime shuts down.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    head_sql: String,
    watch: Arc<HeadWatch>,
    period: Duration,
    mut commits: UnboundedReceiver<u64>,
) {
    loop {
        let once = listen_once(&config, &channel, &head_sql, &watch, period, &mut commits);
        if let Err(e) = once.await {
            tracing::debug!(error = %e, "the PostgreSQL listener reconnects");
        }
        tokio::time::sleep(period).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    head_sql: &str,
    watch: &HeadWatch,
    period: Duration,
    commits: &mut UnboundedReceiver<u64>,
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
    let mut tick = tokio::time::interval(period);
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
            committed = commits.recv() => {
                let Some(mut position) = committed else { break Ok(()) };
                while let Ok(p) = commits.try_recv() {
                    position = position.max(p);
                }
                let payload = position.to_string();
                if let Err(e) = client.execute(&notify, &[&channel, &payload]).await {
                    break Err(e);
                }
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
