//! Group commit for the durable stores: a leader/follower queue that hands whole groups of
//! writes to one commit, and the layout of a group's appends in the log.
//!
//! The rule: at most one group commits at a time unless its leader releases the lead early,
//! and then at most two; a write waits for at most the groups in progress. A caller that finds
//! no group committing leads at once with its own write (a lone caller never waits for
//! company); callers arriving meanwhile queue up, and when the leader is done (or has released
//! the lead, see [`Release`]) the first of them leads the next group with the whole queue (one
//! transaction, one flush). The commit returns one outcome per write, in order, so a write
//! that fails fails alone; inside the group each append is checked against its stream's
//! version after the appends before it ([`Layout`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::AppendError;
use crate::event::{ExpectedVersion, StreamId, Timestamp};
use crate::store::AppendResult;

/// The queue of writes of type `R` with outcomes of type `O`.
#[derive(Debug)]
pub(crate) struct GroupQueue<R, O> {
    queue: Mutex<Queue<R, O>>,
}

#[derive(Debug)]
struct Queue<R, O> {
    /// Groups committing (or handed the lead and about to): at most [`MAX_LEADING`].
    /// Invariant: `waiting` is empty when this is 0.
    leading: usize,
    /// The newest of those groups released the lead, or there is none: a next may start.
    released: bool,
    waiting: Vec<(R, Arc<Place<O>>)>,
}

/// Groups in flight at once: one committing, and one more once the first released the lead.
const MAX_LEADING: usize = 2;

impl<R, O> Queue<R, O> {
    /// A new group may start now.
    fn may_lead(&self) -> bool {
        self.leading == 0 || (self.released && self.leading < MAX_LEADING)
    }

    /// Counts a group starting.
    fn start(&mut self) {
        self.leading += 1;
        self.released = false;
    }

    /// Hands the lead to the first waiting writer, if a group may start.
    fn hand_over(&mut self) {
        if self.may_lead()
            && let Some((_, next)) = self.waiting.first()
        {
            next.set(PlaceState::Lead);
            self.start();
        }
    }
}

/// Given to a group's commit: [`release`](Release::release) lets the next group start before
/// this one is done. A commit calls it once the next group can no longer overtake this one
/// (the backend orders them from there), or never: then the next starts when this one is done.
pub(crate) struct Release<'a, R, O> {
    queue: &'a GroupQueue<R, O>,
    released: std::cell::Cell<bool>,
}

impl<R, O> Release<'_, R, O> {
    /// Lets the next group start (once; later calls do nothing).
    pub(crate) fn release(&self) {
        if !self.released.replace(true) {
            let mut queue = lock(&self.queue.queue);
            queue.released = true;
            queue.hand_over();
        }
    }
}

/// A writer's place in the queue, leader or follower: where its outcome, or the lead, is
/// handed to it.
#[derive(Debug)]
struct Place<O> {
    state: Mutex<PlaceState<O>>,
    changed: Condvar,
}

#[derive(Debug)]
enum PlaceState<O> {
    Waiting,
    Lead,
    Done(O),
    /// The group's commit panicked: the writer reports its own failure.
    Failed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held, so a poisoned one is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a waiting writer is handed.
enum Handed<O> {
    Lead,
    Done(O),
    Failed,
}

impl<O> Place<O> {
    fn new() -> Self {
        Place {
            state: Mutex::new(PlaceState::Waiting),
            changed: Condvar::new(),
        }
    }

    fn set(&self, state: PlaceState<O>) {
        *lock(&self.state) = state;
        self.changed.notify_one();
    }

    fn wait(&self) -> Handed<O> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, PlaceState::Waiting) {
                PlaceState::Waiting => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                PlaceState::Lead => return Handed::Lead,
                PlaceState::Done(o) => return Handed::Done(o),
                PlaceState::Failed => return Handed::Failed,
            }
        }
    }
}

impl<R, O> Default for GroupQueue<R, O> {
    fn default() -> Self {
        GroupQueue {
            queue: Mutex::new(Queue {
                leading: 0,
                released: true,
                waiting: Vec::new(),
            }),
        }
    }
}

impl<R, O> GroupQueue<R, O> {
    /// Submits `write` and blocks until its outcome is known.
    ///
    /// `commit` receives a group in arrival order and returns one outcome per write, in the
    /// same order. Should it panic (or return a wrong count), every writer of the group gets
    /// its own `failed()`.
    pub(crate) fn submit(
        &self,
        write: R,
        commit: impl FnOnce(Vec<R>) -> Vec<O>,
        failed: impl FnOnce() -> O,
    ) -> O {
        self.submit_releasing(write, |group, _| commit(group), failed)
    }

    /// [`submit`](Self::submit), with a commit that may release the lead early.
    pub(crate) fn submit_releasing(
        &self,
        write: R,
        commit: impl FnOnce(Vec<R>, &Release<'_, R, O>) -> Vec<O>,
        failed: impl FnOnce() -> O,
    ) -> O {
        let place = Arc::new(Place::new());
        {
            let mut queue = lock(&self.queue);
            queue.waiting.push((write, Arc::clone(&place)));
            if queue.may_lead() {
                queue.start();
            } else {
                drop(queue);
                match place.wait() {
                    Handed::Done(outcome) => return outcome,
                    Handed::Failed => return failed(),
                    Handed::Lead => {}
                }
            }
        }
        // This thread leads: commit everything queued so far, its own write included.
        let (group, places): (Vec<R>, Vec<Arc<Place<O>>>) =
            std::mem::take(&mut lock(&self.queue).waiting)
                .into_iter()
                .unzip();
        let count = group.len();
        let release = Release {
            queue: self,
            released: std::cell::Cell::new(false),
        };
        let outcomes = match catch_unwind(AssertUnwindSafe(|| commit(group, &release))) {
            Ok(outcomes) if outcomes.len() == count => Some(outcomes),
            _ => None,
        };
        // The others are woken; the leader's own outcome is kept without a wake-up call.
        let mut own = None;
        match outcomes {
            Some(outcomes) => {
                for (other, outcome) in places.iter().zip(outcomes) {
                    if Arc::ptr_eq(other, &place) {
                        own = Some(outcome);
                    } else {
                        other.set(PlaceState::Done(outcome));
                    }
                }
            }
            None => {
                for other in places.iter().filter(|p| !Arc::ptr_eq(p, &place)) {
                    other.set(PlaceState::Failed);
                }
            }
        }
        {
            let mut queue = lock(&self.queue);
            queue.leading -= 1;
            // A group that never released is the newest (none could start after it).
            if !release.released.get() {
                queue.released = true;
            }
            queue.hand_over();
        }
        own.unwrap_or_else(failed)
    }
}

/// Where a group's appends land in the log: positions continue from the log's last one, one
/// timestamp for the whole group. Each append is checked against its stream's version as the
/// appends before it in the group left it (the caller tracks those), and refused alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    last_position: u64,
    timestamp: Timestamp,
    /// The timestamp of the last event laid out, once there is one.
    latest: Option<Timestamp>,
}

impl Layout {
    /// A group after the log's `last_position`, stamped `timestamp`.
    pub(crate) fn new(last_position: u64, timestamp: Timestamp) -> Self {
        Layout {
            last_position,
            timestamp,
            latest: None,
        }
    }

    /// Reserves positions for `count` imported events (checked by the caller), the last
    /// stamped `last`; appends laid out after them are stamped no earlier. Returns the first
    /// position.
    pub(crate) fn import(&mut self, count: u64, last: Timestamp) -> u64 {
        let first_position = self.last_position + 1;
        self.last_position += count;
        if count > 0 {
            self.timestamp = self.timestamp.max(last);
            self.latest = Some(last);
        }
        first_position
    }

    /// The timestamp of the last event laid out in the group, if any: what an import after
    /// it must not go back from.
    pub(crate) fn latest(&self) -> Option<Timestamp> {
        self.latest
    }

    /// Admits `count` events for `stream` at version `current` if `expected` matches it,
    /// reserving their positions; refused, the append takes none.
    pub(crate) fn admit(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        current: u64,
        count: u64,
    ) -> Result<AppendResult, AppendError> {
        if !expected.matches(current) {
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: current,
            });
        }
        let first_position = self.last_position + 1;
        self.last_position += count;
        if count > 0 {
            self.latest = Some(self.timestamp);
        }
        Ok(AppendResult::new(
            current + 1,
            first_position,
            count,
            self.timestamp,
        ))
    }

    /// The last position reserved (the log's last one when nothing was admitted).
    pub(crate) fn last_position(&self) -> u64 {
        self.last_position
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_write_gets_its_own_outcome_and_groups_form() {
        let queue = GroupQueue::<u64, u64>::default();
        let sizes = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (queue, sizes) = (&queue, &sizes);
                s.spawn(move || {
                    for i in 0..200 {
                        let r = t * 1000 + i;
                        let out = queue.submit(
                            r,
                            |group| {
                                sizes.lock().unwrap().push(group.len());
                                std::thread::sleep(Duration::from_micros(200));
                                group.iter().map(|r| r * 2).collect()
                            },
                            || 0,
                        );
                        assert_eq!(out, r * 2);
                    }
                });
            }
        });
        let sizes = sizes.into_inner().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 1600);
        assert!(sizes.iter().any(|&n| n > 1), "some writes were grouped");
    }

    /// Without a release, groups never overlap; with one, at most two do, and every write
    /// still gets its own outcome.
    #[test]
    fn groups_overlap_only_after_a_release_and_never_more_than_two() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for releasing in [false, true] {
            let queue = GroupQueue::<u64, u64>::default();
            let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    let (queue, now, most) = (&queue, &now, &most);
                    s.spawn(move || {
                        for i in 0..100 {
                            let r = t * 1000 + i;
                            let out = queue.submit_releasing(
                                r,
                                |group, release| {
                                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                                    most.fetch_max(n, Ordering::SeqCst);
                                    if releasing {
                                        release.release();
                                    }
                                    std::thread::sleep(Duration::from_micros(300));
                                    now.fetch_sub(1, Ordering::SeqCst);
                                    group.iter().map(|r| r * 2).collect()
                                },
                                || 0,
                            );
                            assert_eq!(out, r * 2);
                        }
                    });
                }
            });
            let most = most.into_inner();
            if releasing {
                assert_eq!(most, 2, "released groups overlap, two at most");
            } else {
                assert_eq!(most, 1, "groups that do not release never overlap");
            }
        }
    }

    /// A leader that released lets the next group commit while it is still committing.
    #[test]
    fn a_released_lead_starts_the_next_group_at_once() {
        let queue = GroupQueue::<u64, u64>::default();
        let (released, next_ran) = (std::sync::Barrier::new(2), std::sync::mpsc::channel());
        std::thread::scope(|s| {
            let (queue, released) = (&queue, &released);
            let (tx, rx) = next_ran;
            let first = s.spawn(move || {
                queue.submit_releasing(
                    1,
                    |group, release| {
                        release.release();
                        released.wait();
                        // The next group commits while this one has not returned.
                        let overlapped = rx.recv_timeout(Duration::from_secs(10)).is_ok();
                        assert!(overlapped, "the next group waited for this one");
                        group
                    },
                    || 0,
                )
            });
            released.wait();
            let second = queue.submit(
                2,
                |group| {
                    tx.send(()).unwrap();
                    group
                },
                || 0,
            );
            assert_eq!(second, 2);
            assert_eq!(first.join().unwrap(), 1);
        });
    }

    #[test]
    fn a_panicking_commit_fails_its_group_only_each_writer_with_its_own_failure() {
        let queue = GroupQueue::<u64, Result<u64, u64>>::default();
        assert_eq!(queue.submit(1, |_| panic!("boom"), || Err(1)), Err(1));
        assert_eq!(
            queue.submit(2, |g| g.into_iter().map(Ok).collect(), || Err(2)),
            Ok(2)
        );
        // Followers of a panicking leader report their own failure, not the leader's.
        let started = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let (queue, started) = (&queue, &started);
            let leader = s.spawn(move || {
                queue.submit(
                    10,
                    |_| {
                        started.wait();
                        std::thread::sleep(Duration::from_millis(100));
                        panic!("boom")
                    },
                    || Err(10),
                )
            });
            started.wait();
            let follower =
                s.spawn(move || queue.submit(11, |g| g.into_iter().map(Ok).collect(), || Err(11)));
            assert_eq!(leader.join().unwrap(), Err(10));
            // Queued behind the panicking group (then failed by it) or leading the next one.
            assert!(matches!(follower.join().unwrap(), Err(11) | Ok(11)));
        });
    }

    #[test]
    fn a_layout_checks_each_append_and_reserves_positions_for_the_admitted() {
        let stream = StreamId::parse("acc-1").unwrap();
        let mut layout = Layout::new(7, Timestamp(5));
        let first = layout
            .admit(&stream, ExpectedVersion::NoStream, 0, 3)
            .unwrap();
        assert_eq!((first.first_version, first.first_position), (1, 8));
        let refused = layout.admit(&stream, ExpectedVersion::Exact(1), 3, 2);
        assert!(matches!(
            refused,
            Err(AppendError::WrongExpectedVersion { actual: 3, .. })
        ));
        let empty = layout
            .admit(&stream, ExpectedVersion::Exact(3), 3, 0)
            .unwrap();
        assert_eq!((empty.first_version, empty.first_position), (4, 11));
        assert_eq!(layout.last_position(), 10);
    }
}
