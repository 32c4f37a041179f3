//! Group commit with a leader and followers.
//!
//! An appender that finds no commit in progress becomes the leader and commits at once: a
//! lone caller never waits for company. Appenders arriving while a commit runs queue up; when
//! the leader is done it hands the lead to the first of them, which takes the whole queue and
//! commits it as one group (one write transaction, one fsync). Each request gets its own
//! outcome, so one failing expectation does not fail its neighbours.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Debug)]
pub(super) struct GroupCommit<R, O> {
    queue: Mutex<Queue<R, O>>,
}

#[derive(Debug)]
struct Queue<R, O> {
    /// A leader is committing. Invariant: `waiting` is empty when this is false.
    busy: bool,
    waiting: Vec<(R, Arc<Place<O>>)>,
}

/// An appender's place in the queue, leader or follower: where its own outcome, or the lead,
/// is handed to it.
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
    Taken,
}

impl<O> Place<O> {
    fn new() -> Self {
        Place {
            state: Mutex::new(PlaceState::Waiting),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PlaceState<O>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: PlaceState<O>) {
        *self.lock() = state;
        self.changed.notify_one();
    }

    /// Waits until the outcome (`Some`) or the lead (`None`) is handed over.
    fn wait(&self) -> Option<O> {
        let mut state = self.lock();
        loop {
            match std::mem::replace(&mut *state, PlaceState::Taken) {
                PlaceState::Waiting => {
                    *state = PlaceState::Waiting;
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                PlaceState::Lead => {
                    *state = PlaceState::Waiting;
                    return None;
                }
                PlaceState::Done(o) => return Some(o),
                PlaceState::Taken => unreachable!("an outcome is taken once"),
            }
        }
    }
}

impl<R, O> Default for GroupCommit<R, O> {
    fn default() -> Self {
        GroupCommit {
            queue: Mutex::new(Queue {
                busy: false,
                waiting: Vec::new(),
            }),
        }
    }
}

impl<R, O> GroupCommit<R, O> {
    fn lock(&self) -> MutexGuard<'_, Queue<R, O>> {
        // Nothing panics while the queue is locked, so a poisoned lock is still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits `request` and returns its outcome. `commit` gets a group of requests in arrival
    /// order and must return one outcome per request, in the same order; a panic in it becomes
    /// `on_panic` for every request of the group.
    pub(super) fn submit(
        &self,
        request: R,
        commit: impl Fn(&[R]) -> Vec<O>,
        on_panic: impl Fn(&R) -> O,
    ) -> O {
        let place = Arc::new(Place::new());
        {
            let mut queue = self.lock();
            queue.waiting.push((request, Arc::clone(&place)));
            if queue.busy {
                drop(queue);
                if let Some(outcome) = place.wait() {
                    return outcome;
                }
            } else {
                queue.busy = true;
            }
        }
        // This thread leads: commit everything queued so far, our own request included.
        let (requests, places): (Vec<R>, Vec<Arc<Place<O>>>) =
            std::mem::take(&mut self.lock().waiting).into_iter().unzip();
        let outcomes = match catch_unwind(AssertUnwindSafe(|| commit(&requests))) {
            Ok(outcomes) if outcomes.len() == requests.len() => outcomes,
            _ => requests.iter().map(&on_panic).collect(),
        };
        // The others are woken; the leader's own outcome is kept without a wake-up call.
        let mut own = None;
        for (other, outcome) in places.iter().zip(outcomes) {
            if Arc::ptr_eq(other, &place) {
                own = Some(outcome);
            } else {
                other.set(PlaceState::Done(outcome));
            }
        }
        {
            let mut queue = self.lock();
            match queue.waiting.first() {
                Some((_, next)) => next.set(PlaceState::Lead),
                None => queue.busy = false,
            }
        }
        own.expect("the leader's own request is in the group it commits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_gets_its_own_outcome_and_groups_form() {
        let group = GroupCommit::<u64, u64>::default();
        let sizes = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let group = &group;
                let sizes = &sizes;
                s.spawn(move || {
                    for i in 0..200 {
                        let r = t * 1000 + i;
                        let out = group.submit(
                            r,
                            |rs| {
                                sizes.lock().unwrap().push(rs.len());
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                rs.iter().map(|r| r * 2).collect()
                            },
                            |_| 0,
                        );
                        assert_eq!(out, r * 2);
                    }
                });
            }
        });
        let sizes = sizes.into_inner().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 1600);
        assert!(sizes.iter().any(|&n| n > 1), "some requests were grouped");
    }

    #[test]
    fn a_panicking_commit_fails_its_group_only() {
        let group = GroupCommit::<u64, Result<u64, ()>>::default();
        let out = group.submit(1, |_| panic!("boom"), |_| Err(()));
        assert_eq!(out, Err(()));
        let out = group.submit(2, |rs| rs.iter().map(|r| Ok(*r)).collect(), |_| Err(()));
        assert_eq!(out, Ok(2));
    }
}
