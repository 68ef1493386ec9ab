//! A small lock that a `fork()` cannot leave held: the runtime's `pthread_atfork` prepare
//! handler takes every such lock, so no other thread is inside a critical section when the
//! process forks, and the parent and child handlers release them. (A `std::sync::Mutex` held
//! by a thread that does not exist in the child would block the child for ever, and its
//! guard cannot be kept across the fork.)
//!
//! Critical sections are a few instructions (clone an `Arc` out, push or remove an entry), so
//! waiters spin first; a wait that goes on (the holder was preempted, stopped, or interrupted
//! by a signal handler that blocks) sleeps in growing naps of at most a millisecond, so that
//! a runtime thread never spins without bound on it.
//!
//! ```
//! use rcu_sys::ForkLock;
//! static NAMES: ForkLock<Vec<&'static str>> = ForkLock::new(Vec::new());
//! NAMES.with(|v| v.push("a"));
//! assert_eq!(NAMES.with(|v| v.len()), 1);
//! ```

use core::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_utils::Backoff;

/// The longest sleep between two attempts once spinning has not been enough.
const MAX_NAP: Duration = Duration::from_millis(1);

/// A lock around a `T`; see the module docs.
#[derive(Debug, Default)]
pub struct ForkLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `value`, which may move between
// threads (`T: Send`).
unsafe impl<T: Send> Sync for ForkLock<T> {}

impl<T> ForkLock<T> {
    /// A lock around `value`; `const`, for statics.
    pub const fn new(value: T) -> Self {
        ForkLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    fn acquire(&self) {
        // Acquire: pairs with the Release store in `release`: the previous holder's writes
        // are visible.
        let take = || {
            self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                == Ok(false)
        };
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if take() {
                return;
            }
            backoff.snooze();
        }
        let mut nap = Duration::from_micros(1);
        while !take() {
            std::thread::sleep(nap);
            nap = (nap * 2).min(MAX_NAP);
        }
    }

    fn release(&self) {
        // Release: publishes this holder's writes to the next `acquire`.
        self.locked.store(false, Ordering::Release);
    }

    /// Runs `f` with exclusive access to the value. `f` must not fork or take this lock.
    ///
    /// ```
    /// use rcu_sys::ForkLock;
    /// let counter = ForkLock::new(0u32);
    /// counter.with(|n| *n += 1);
    /// assert_eq!(counter.with(|n| *n), 1);
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        struct Unlock<'a, T>(&'a ForkLock<T>);
        impl<T> Drop for Unlock<'_, T> {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        self.acquire();
        let _unlock = Unlock(self);
        // SAFETY: the lock is held until `_unlock` drops, after `f` returns or unwinds.
        f(unsafe { &mut *self.value.get() })
    }

    /// The `pthread_atfork` prepare handler's half: takes the lock and keeps it across the
    /// fork.
    ///
    /// ```
    /// use rcu_sys::ForkLock;
    /// let lock = ForkLock::new(());
    /// lock.hold_for_fork();
    /// // SAFETY: (1) held by this thread through `hold_for_fork`, not released since.
    /// unsafe { lock.release_after_fork() };
    /// lock.with(|_| ()); // free again
    /// ```
    pub fn hold_for_fork(&self) {
        self.acquire();
    }

    /// The parent and child handlers' half: releases the lock taken by `hold_for_fork`.
    ///
    /// # Safety
    /// 1. This thread (or, in a child, the thread it was forked from) took the lock with
    ///    `hold_for_fork` and has not released it since.
    pub unsafe fn release_after_fork(&self) {
        self.release();
    }
}
