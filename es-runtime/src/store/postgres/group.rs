//! A leader/follower queue that hands whole groups of requests to one commit.
//!
//! The rule: at most one group commits at a time, and a request waits for at most the group
//! in progress. A caller that finds no group committing leads at once with its own request;
//! callers arriving meanwhile queue up, and the first of them leads the next group with the
//! whole queue. `commit` returns one outcome per request, in order, so a request that fails
//! fails alone.
//!
//! The store depends only on [`GroupQueue::submit`]; a shared queue with the same shape can
//! replace this one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The queue of requests of type `R` with outcomes of type `O`.
#[derive(Debug)]
pub(super) struct GroupQueue<R, O> {
    state: Mutex<State<R, O>>,
}

#[derive(Debug)]
struct State<R, O> {
    /// A leader is committing; while false, `queued` is empty.
    busy: bool,
    queued: Vec<(R, Arc<Ticket<O>>)>,
}

/// Where a queued request learns its outcome, or that it leads the next group.
#[derive(Debug)]
struct Ticket<O> {
    state: Mutex<Answer<O>>,
    ready: Condvar,
}

#[derive(Debug)]
enum Answer<O> {
    Pending,
    Lead,
    Done(O),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held: a poisoned one is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<O> Ticket<O> {
    fn answer(&self, answer: Answer<O>) {
        *lock(&self.state) = answer;
        self.ready.notify_one();
    }

    /// `Some(outcome)`, or `None` when this request is to lead the next group.
    fn wait(&self) -> Option<O> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, Answer::Pending) {
                Answer::Pending => {
                    state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                Answer::Lead => return None,
                Answer::Done(outcome) => return Some(outcome),
            }
        }
    }
}

impl<R, O> Default for GroupQueue<R, O> {
    fn default() -> Self {
        GroupQueue {
            state: Mutex::new(State {
                busy: false,
                queued: Vec::new(),
            }),
        }
    }
}

impl<R, O> GroupQueue<R, O> {
    /// Submits `request` and blocks until its outcome is known.
    ///
    /// `commit` receives a group in arrival order and returns one outcome per request; should
    /// it panic or return a wrong count, every request of the group gets `failed()`.
    pub(super) fn submit(
        &self,
        request: R,
        commit: impl FnOnce(Vec<R>) -> Vec<O>,
        failed: impl Fn() -> O,
    ) -> O {
        let ticket = Arc::new(Ticket {
            state: Mutex::new(Answer::Pending),
            ready: Condvar::new(),
        });
        {
            let mut state = lock(&self.state);
            state.queued.push((request, Arc::clone(&ticket)));
            if state.busy {
                drop(state);
                if let Some(outcome) = ticket.wait() {
                    return outcome;
                }
            } else {
                state.busy = true;
            }
        }
        let (group, tickets): (Vec<R>, Vec<Arc<Ticket<O>>>) =
            std::mem::take(&mut lock(&self.state).queued)
                .into_iter()
                .unzip();
        let count = group.len();
        let outcomes = match catch_unwind(AssertUnwindSafe(|| commit(group))) {
            Ok(outcomes) if outcomes.len() == count => outcomes,
            _ => (0..count).map(|_| failed()).collect(),
        };
        let mut own = None;
        for (t, outcome) in tickets.iter().zip(outcomes) {
            if Arc::ptr_eq(t, &ticket) {
                own = Some(outcome);
            } else {
                t.answer(Answer::Done(outcome));
            }
        }
        {
            let mut state = lock(&self.state);
            match state.queued.first() {
                Some((_, next)) => next.answer(Answer::Lead),
                None => state.busy = false,
            }
        }
        own.unwrap_or_else(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn requests_group_up_and_each_gets_its_own_outcome() {
        let queue = GroupQueue::<u64, u64>::default();
        let sizes = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..6u64 {
                let (queue, sizes) = (&queue, &sizes);
                s.spawn(move || {
                    for i in 0..100 {
                        let r = t * 1000 + i;
                        let out = queue.submit(
                            r,
                            |group| {
                                sizes.lock().unwrap().push(group.len());
                                std::thread::sleep(Duration::from_micros(300));
                                group.iter().map(|r| r + 1).collect()
                            },
                            || 0,
                        );
                        assert_eq!(out, r + 1);
                    }
                });
            }
        });
        let sizes = sizes.into_inner().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 600);
        assert!(sizes.iter().any(|&n| n > 1), "some requests were grouped");
    }

    #[test]
    fn a_panicking_commit_fails_its_group_only() {
        let queue = GroupQueue::<u64, Result<u64, ()>>::default();
        assert_eq!(queue.submit(1, |_| panic!("boom"), || Err(())), Err(()));
        assert_eq!(
            queue.submit(2, |g| g.into_iter().map(Ok).collect(), || Err(())),
            Ok(2)
        );
    }
}
