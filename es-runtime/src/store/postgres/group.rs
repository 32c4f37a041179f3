//! Group commit over PostgreSQL: what the store plans a group from, the pipe connection
//! that carries one-statement groups, and two groups in flight on it.
//!
//! The rule: a group is planned in one statement from what this process knows of the log
//! (the head the newest group in flight will leave, else the head the last group left), sent
//! on the pipe, and the lead released once the statement is queued there, so the next group
//! goes behind it on the same connection and the server runs them in order. Anything the
//! database refused, or that could not be planned so, is planned again under the lock on a
//! connection of the pool (`commit::transact_group`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::commit::{self, Append, Committed, Known, OneTrip, Outcome};
use super::{PostgresStore, pool};
use crate::event::Timestamp;
use crate::store::Release;

/// What this process knows of the log, to plan groups from.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Knowledge {
    /// The log as this process's last group found or left it. `None` after a failed group.
    known: Option<Known>,
    /// The log as the newest group sent on the pipe will leave it, once written.
    ahead: Option<Known>,
}

/// Groups planned under the lock after a refused one-round-trip group.
const SKIP_AFTER_REFUSAL: u32 = 8;

/// How many groups were tried in one round trip, and how many of those it wrote; how many
/// are on the pipe now, and how many were sent behind another one still there.
#[derive(Debug, Default)]
pub(super) struct OneTripCounts {
    tried: AtomicU64,
    written: AtomicU64,
    on_pipe: AtomicU64,
    behind: AtomicU64,
}

impl PostgresStore {
    /// Groups sent in one round trip (planned from what the store last knew of the log) and,
    /// of those, the ones that wrote; the others were planned again under the lock. For tests
    /// and benchmarks.
    #[doc(hidden)]
    pub fn one_trip_groups(&self) -> (u64, u64) {
        (
            self.one_trip.tried.load(Ordering::Relaxed),
            self.one_trip.written.load(Ordering::Relaxed),
        )
    }

    /// Groups sent in one round trip behind another group of this store still in flight
    /// (pipelined on one connection, so that the server runs them in order). For tests and
    /// benchmarks.
    #[doc(hidden)]
    pub fn pipelined_groups(&self) -> u64 {
        self.one_trip.behind.load(Ordering::Relaxed)
    }

    /// What the next group may be planned from in one round trip, if anything: the log as
    /// the newest group in flight will leave it, or as the last one left it.
    fn guess(&self) -> Option<Known> {
        let skip = self.skip_one_trip.load(Ordering::Relaxed);
        if skip > 0 {
            self.skip_one_trip.store(skip - 1, Ordering::Relaxed);
            return None;
        }
        let Knowledge { known, ahead } = *self.knowledge();
        let known = known?;
        let known = ahead.filter(|a| a.head > known.head).unwrap_or(known);
        // Another process's commit, notified: the head moved, its timestamp is not known.
        Some(Known {
            head: known.head.max(self.watch.head()),
            timestamp: known.timestamp,
        })
    }

    /// Makes the next group be planned under the lock.
    pub(super) fn forget_the_log(&self) {
        self.knowledge().known = None;
    }

    fn knowledge(&self) -> std::sync::MutexGuard<'_, Knowledge> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection that carries one-statement groups, in the order they were planned,
    /// connected on first use and again once the server closed it. `None` on a thread inside
    /// an async runtime, with `max_connections(1)`, while the pool has no place free, or
    /// while the server cannot be reached.
    fn pipe(&self) -> Option<Arc<pool::Driven>> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return None;
        }
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = self.epoch.load(Ordering::Acquire);
        if pipe
            .take_if(|(p, at)| p.conn.client.is_closed() || *at != epoch)
            .is_some()
        {
            self.pool.unreserve();
        }
        // The pipe takes one of the pool's places: `max_connections` bounds it too.
        if pipe.is_none() && self.pool.reserve() {
            match pool::Driven::connect(self.pool.config().clone(), self.pool.sql()) {
                Ok(p) => *pipe = Some((Arc::new(p), epoch)),
                Err(_) => self.pool.unreserve(),
            }
        }
        pipe.as_ref().map(|(p, _)| Arc::clone(p))
    }

    /// Commits one group; called by the group's leader.
    ///
    /// A group that can be planned from what the store knows goes out as one statement on
    /// the store's pipe connection, and the lead is released as soon as it is queued there:
    /// the next group, planned after it, is sent behind it on the same connection, so the
    /// server runs it right after this one commits, with no round trip between them. If this
    /// group is refused, the one behind it (planned on it) is refused too, and both are
    /// planned again under the lock on connections of the pool.
    pub(super) fn commit_group(
        &self,
        group: Vec<Append>,
        release: &Release<'_, Append, Outcome>,
    ) -> Vec<Outcome> {
        let now = self.clock.now();
        let hold = self.hold_commits.map(random_below);
        let guess = self.guess();
        let mut refused = false;
        if hold.is_none()
            && let Some(known) = guess
            && let Some(trip) = OneTrip::plan(&group, known, now)
            && let Some(pipe) = self.pipe()
        {
            self.knowledge().ahead = Some(trip.after());
            if self.one_trip.on_pipe.fetch_add(1, Ordering::Relaxed) > 0 {
                self.one_trip.behind.fetch_add(1, Ordering::Relaxed);
            }
            let sent = pipe.block_on(commit::send_queued(&pipe.conn, &trip, || release.release()));
            self.one_trip.on_pipe.fetch_sub(1, Ordering::Relaxed);
            match sent {
                Ok(true) => return self.settle(trip.written()),
                Ok(false) => refused = true,
                Err(e) => {
                    self.knowledge().ahead = None;
                    return self.settle(commit::failed(&group, e.into(), true));
                }
            }
        }
        if refused {
            self.knowledge().ahead = None;
        }
        // Not pipelined, or refused: on a connection of the pool, in one round trip or under
        // the lock.
        let guess = guess.filter(|_| !refused);
        let done = match hold {
            // Without a hold (a timer), a group only waits on its connection: it is polled on
            // the leader's thread, saving two hand-offs between threads per group.
            None => {
                let group = &group;
                self.pool
                    .with_here(&self.runtime, |conn| async move {
                        Ok(pooled(&conn, group, now, None, guess, refused).await)
                    })
                    .map_err(|e| commit::failed(group, e, refused))
            }
            Some(_) => {
                let group = Arc::new(group);
                let shared = Arc::clone(&group);
                self.pool
                    .with(&self.runtime, move |conn| async move {
                        Ok(pooled(&conn, &shared, now, hold, guess, refused).await)
                    })
                    .map_err(|e| commit::failed(&group, e, refused))
            }
        };
        match done {
            Ok(committed) => self.settle(committed),
            // No connection, or no answer from the store's runtime: every append fails.
            Err(failed) => failed.outcomes,
        }
    }

    /// Records how a group went (what the log is known to be, the one-trip counts) and
    /// publishes its head.
    fn settle(&self, committed: Committed) -> Vec<Outcome> {
        if committed.tried_one_trip {
            self.one_trip.tried.fetch_add(1, Ordering::Relaxed);
            if committed.one_trip {
                self.one_trip.written.fetch_add(1, Ordering::Relaxed);
            } else {
                self.skip_one_trip
                    .store(SKIP_AFTER_REFUSAL, Ordering::Relaxed);
            }
        }
        {
            let known = &mut self.knowledge().known;
            // Groups in flight together settle in any order: the log only moves forward.
            *known = match (committed.known, *known) {
                (Some(new), Some(old)) if old.head > new.head => Some(old),
                (new, _) => new,
            };
        }
        if let Some(head) = committed.head {
            self.watch.publish(head);
            self.commits.committed(head);
        }
        committed.outcomes
    }
}

/// Commits `group` on a connection of the pool: in one round trip from `guess` when it can be
/// planned so, else (or when the pipe refused it) under the lock.
async fn pooled(
    conn: &pool::Conn,
    group: &[Append],
    now: Timestamp,
    hold: Option<Duration>,
    guess: Option<Known>,
    refused: bool,
) -> Committed {
    let mut committed = match refused {
        false => commit::commit(conn, group, now, hold, guess).await,
        true => commit::transact_group(conn, group, now, hold, true).await,
    };
    committed.tried_one_trip |= refused;
    committed
}

fn random_below(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 29;
    let max = max.as_nanos().max(1) as u64;
    Duration::from_nanos(x % max)
}
