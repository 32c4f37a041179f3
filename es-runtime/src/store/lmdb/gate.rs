//! The map gate: keeps every transaction of this process out of the way while the memory map
//! is replaced.
//!
//! LMDB may only change the map size (`mdb_env_set_mapsize`) when this process has no
//! transaction of the environment open, read or write: the old mapping is unmapped, and any
//! pointer a reader still holds into it would dangle. Every transaction of the store is opened
//! inside [`MapGate::enter`]; [`MapGate::exclusive`] waits until none is open, and runs the
//! resize.
//!
//! A resize first *drains* the gate: new passes wait, except those of threads that already
//! hold a pass, of this gate (a visitor that reads the store again) or of another one (a
//! visitor of one store that uses another), so that a thread never waits at a gate while it
//! keeps another gate's resize waiting. Once no pass is out, the resize runs, and every
//! thread waits for it: it waits for nothing itself. Passes are counted per gate and per
//! thread.
//!
//! A thread may only resize behind a gate if it holds no pass of it (it would wait for
//! itself) and none of a gate made after it: two threads each resizing the store that the
//! other one reads would wait for each other forever, and with gates taken in the order they
//! were made, no such circle can form.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

thread_local! {
    /// The gates this thread holds passes of: each gate's number, and how many passes.
    static HELD: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
}

/// The number of the next gate made.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// No resize: every thread enters.
const OPEN: u8 = 0;
/// A resize waits for the passes out to come back: only threads holding a pass enter.
const DRAINING: u8 = 1;
/// The map is being replaced: nobody enters.
const RESIZING: u8 = 2;

#[derive(Debug)]
pub(super) struct MapGate {
    /// Gates are ordered by when they were made (see the module's docs).
    number: u64,
    inside: AtomicUsize,
    phase: AtomicU8,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Default for MapGate {
    fn default() -> Self {
        MapGate {
            number: NEXT.fetch_add(1, Ordering::Relaxed),
            inside: AtomicUsize::new(0),
            phase: AtomicU8::new(OPEN),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }
}

/// Proof that the holder may open transactions; the gate reopens on drop. It stays on the
/// thread that took it: passes are counted per thread.
#[derive(Debug)]
pub(super) struct Pass<'g> {
    gate: &'g MapGate,
    _on_this_thread: PhantomData<*const ()>,
}

/// Why this thread may not resize behind a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It holds a pass of the gate: the resize would wait for it.
    HoldsThis,
    /// It holds a pass of a gate made after this one.
    HoldsLater,
}

/// What the current thread holds, as one gate sees it.
#[derive(Debug, Clone, Copy)]
struct Held {
    this: bool,
    other: bool,
    later: bool,
}

impl MapGate {
    fn held(&self) -> Held {
        HELD.with(|held| {
            let mut out = Held {
                this: false,
                other: false,
                later: false,
            };
            for &(number, _) in held.borrow().iter() {
                out.this |= number == self.number;
                out.other |= number != self.number;
                out.later |= number > self.number;
            }
            out
        })
    }

    /// Counts a pass of this gate taken (`+1`) or returned (`-1`) by this thread.
    fn count(&self, taken: bool) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held.iter().position(|&(number, _)| number == self.number) {
                Some(i) if taken => held[i].1 += 1,
                Some(i) => {
                    held[i].1 -= 1;
                    if held[i].1 == 0 {
                        held.swap_remove(i);
                    }
                }
                None => {
                    debug_assert!(taken, "a pass is returned by the thread that took it");
                    held.push((self.number, 1));
                }
            }
        })
    }

    /// Whether a thread holding `held` may enter now.
    fn admits(&self, held: Held) -> bool {
        match self.phase.load(Ordering::SeqCst) {
            OPEN => true,
            DRAINING => held.this || held.other,
            // Only a thread holding a pass of this gate can see this phase set and be let in:
            // the resize then sees its pass out, and goes back to draining.
            _ => held.this,
        }
    }

    pub(super) fn enter(&self) -> Pass<'_> {
        let held = self.held();
        loop {
            self.inside.fetch_add(1, Ordering::SeqCst);
            if self.admits(held) {
                break;
            }
            self.leave();
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            while !self.admits(held) {
                guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        self.count(true);
        Pass {
            gate: self,
            _on_this_thread: PhantomData,
        }
    }

    fn leave(&self) {
        if self.inside.fetch_sub(1, Ordering::SeqCst) == 1
            && self.phase.load(Ordering::SeqCst) != OPEN
        {
            // Taking the lock orders this wake-up after the resizer started waiting.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.changed.notify_all();
        }
    }

    /// Whether this thread may call [`exclusive`](Self::exclusive).
    pub(super) fn may_resize(&self) -> Result<(), Refusal> {
        let held = self.held();
        if held.this {
            Err(Refusal::HoldsThis)
        } else if held.later {
            Err(Refusal::HoldsLater)
        } else {
            Ok(())
        }
    }

    /// Runs `f` once no pass is out, holding new ones back until it returns.
    ///
    /// The caller must be allowed to by [`may_resize`](Self::may_resize).
    pub(super) fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        debug_assert_eq!(self.may_resize(), Ok(()));
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Only one resizer at a time: a second one waits for the first to finish.
        while self.phase.load(Ordering::SeqCst) != OPEN {
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        self.phase.store(DRAINING, Ordering::SeqCst);
        loop {
            while self.inside.load(Ordering::SeqCst) != 0 {
                guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            self.phase.store(RESIZING, Ordering::SeqCst);
            // A thread holding another gate's pass may have come in since: it is let in
            // while draining, and the resize must wait for it.
            if self.inside.load(Ordering::SeqCst) == 0 {
                break;
            }
            self.phase.store(DRAINING, Ordering::SeqCst);
            self.changed.notify_all();
        }
        struct Reopen<'a>(&'a MapGate);
        impl Drop for Reopen<'_> {
            fn drop(&mut self) {
                self.0.phase.store(OPEN, Ordering::SeqCst);
                self.0.changed.notify_all();
            }
        }
        let _reopen = Reopen(self);
        let out = f();
        drop(_reopen);
        drop(guard);
        out
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.count(false);
        self.gate.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn a_pass_of_another_gate_does_not_let_a_thread_in_while_this_one_resizes() {
        let (a, b) = (MapGate::default(), MapGate::default());
        let (resizing, resized) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            s.spawn(|| {
                b.exclusive(|| {
                    resizing.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    resized.store(true, Ordering::SeqCst);
                })
            });
            let _a = a.enter();
            while !resizing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _b = b.enter();
            assert!(resized.load(Ordering::SeqCst), "entered during the resize");
        });
    }

    #[test]
    fn a_thread_holding_another_pass_is_let_in_while_a_resize_drains() {
        let (a, b) = (MapGate::default(), MapGate::default());
        let resized = AtomicBool::new(false);
        std::thread::scope(|s| {
            let held = b.enter();
            let resizer = s.spawn(|| b.exclusive(|| resized.store(true, Ordering::SeqCst)));
            while b.phase.load(Ordering::SeqCst) != DRAINING {
                std::thread::yield_now();
            }
            // Another thread holding a pass of `a` enters `b` while the resize waits for
            // `held`: it must not wait, or a resize of `a` could wait for it meanwhile.
            s.spawn(|| {
                let _a = a.enter();
                let _b = b.enter();
                assert!(!resized.load(Ordering::SeqCst));
            })
            .join()
            .unwrap();
            drop(held);
            resizer.join().unwrap();
            assert!(resized.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn passes_are_counted_per_gate_and_gates_resize_in_order() {
        let (a, b) = (MapGate::default(), MapGate::default());
        assert_eq!(a.may_resize(), Ok(()));
        let pass = a.enter();
        assert_eq!(a.may_resize(), Err(Refusal::HoldsThis));
        // `b` was made after `a`: it may grow while `a` is read, not the other way round.
        assert_eq!(b.may_resize(), Ok(()));
        assert_eq!(b.exclusive(|| 7), 7);
        drop(pass);
        let pass = b.enter();
        assert_eq!(a.may_resize(), Err(Refusal::HoldsLater));
        drop(pass);
        assert_eq!(a.may_resize(), Ok(()));
    }
}
