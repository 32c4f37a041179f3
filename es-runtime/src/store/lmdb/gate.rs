//! The map gate: keeps every transaction of this process out of the way while the memory map
//! is replaced.
//!
//! LMDB may only change the map size (`mdb_env_set_mapsize`) when this process has no
//! transaction open, read or write: the old mapping is unmapped, and any pointer a reader
//! still holds into it would dangle. Every transaction of the store is opened inside
//! [`MapGate::enter`]; [`MapGate::exclusive`] waits until none is open, keeps new ones from
//! starting, and runs the resize.
//!
//! A thread that already holds the gate (a visitor that reads the store again) passes
//! straight through even while a resize waits, so nested reads cannot deadlock; the resize
//! simply waits for the outer read to end.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

thread_local! {
    /// How many gates (of any store) this thread holds.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

#[derive(Debug, Default)]
pub(super) struct MapGate {
    inside: AtomicUsize,
    resizing: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

/// Proof that the holder may open transactions; the gate reopens on drop.
#[derive(Debug)]
pub(super) struct Pass<'g> {
    gate: &'g MapGate,
}

impl MapGate {
    /// Whether the current thread already holds a pass of some gate.
    pub(super) fn held_by_this_thread() -> bool {
        HELD.with(|h| h.get() > 0)
    }

    pub(super) fn enter(&self) -> Pass<'_> {
        let nested = Self::held_by_this_thread();
        loop {
            self.inside.fetch_add(1, Ordering::SeqCst);
            if nested || !self.resizing.load(Ordering::SeqCst) {
                break;
            }
            self.leave();
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            while self.resizing.load(Ordering::SeqCst) {
                guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
        }
        HELD.with(|h| h.set(h.get() + 1));
        Pass { gate: self }
    }

    fn leave(&self) {
        if self.inside.fetch_sub(1, Ordering::SeqCst) == 1 && self.resizing.load(Ordering::SeqCst) {
            // Taking the lock orders this wake-up after the resizer started waiting.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.changed.notify_all();
        }
    }

    /// Runs `f` once no pass is out, holding new ones back until it returns.
    ///
    /// The caller must not hold a pass itself (it would wait for itself).
    pub(super) fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        debug_assert!(!Self::held_by_this_thread());
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Only one resizer at a time: a second one waits for the first to finish.
        while self.resizing.load(Ordering::SeqCst) {
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        self.resizing.store(true, Ordering::SeqCst);
        while self.inside.load(Ordering::SeqCst) != 0 {
            guard = self.changed.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        struct Reopen<'a>(&'a MapGate);
        impl Drop for Reopen<'_> {
            fn drop(&mut self) {
                self.0.resizing.store(false, Ordering::SeqCst);
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
        HELD.with(|h| h.set(h.get() - 1));
        self.gate.leave();
    }
}
