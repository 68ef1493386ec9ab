//! The runtime's one wait/notify primitive: an event count over [`crate::futex`] (the Linux
//! futex, or the park table elsewhere).
//!
//! A waiter reads a *key* (the event count), checks its condition, and sleeps only while no
//! notification has happened since the key; a notifier makes the condition true, then bumps
//! the count and wakes sleepers, skipping the syscall when nobody sleeps. Grace-period
//! completions, batch completions (barriers and backpressure) and service-thread wake-ups all
//! use it.
//!
//! # Why no wake-up is lost
//! Waiter `W`: `K = seq` (1), check the condition (2), `waiters += 1` (3), sleep while
//! `seq == K` (4, the kernel re-reads `seq`). Notifier `N`: make the condition true (a), then
//! `seq += 1` (b), then read `waiters` (c) and wake if non-zero. (1), (3), (b) and (c) are
//! SeqCst, so they lie in one total order:
//! - (b) before (1): (1) reads the bump, so (a) happens-before (2): `W` sees the condition
//!   and does not sleep.
//! - (1) before (b), (3) before (c): `N` sees a waiter and wakes it; a wake before (4) makes
//!   the futex's re-read of `seq` fail (it changed), so `W` does not sleep.
//! - (1) before (b), (c) before (3): then (b) is before (3), hence before (4)'s re-read, which
//!   sees `seq != K`: `W` does not sleep.
//!
//! Timeouts bound the damage of a bug in this argument to latency; the loom model
//! `f_event_count_never_loses_a_wakeup` (tests/loom.rs) runs these methods on loom's atomics
//! with the futex modelled as "sleep while the word equals the key".
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rcu_sys::EventCount;
//!
//! let ready = Arc::new((AtomicBool::new(false), EventCount::new()));
//! let notifier = {
//!     let ready = Arc::clone(&ready);
//!     std::thread::spawn(move || {
//!         ready.0.store(true, Ordering::SeqCst); // make the condition true...
//!         ready.1.notify_all(); // ...then notify
//!     })
//! };
//! loop {
//!     let key = ready.1.key();
//!     if ready.0.load(Ordering::SeqCst) {
//!         break;
//!     }
//!     ready.1.wait(key, Some(Duration::from_millis(100)));
//! }
//! notifier.join().unwrap();
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The word an event count is made of: std's atomic over a real futex, or (under loom, for
/// the model) loom's atomic over a modelled one. The protocol (`EventCountIn`'s methods) is
/// the same code for both.
pub trait EventWord {
    /// Loads with `order`.
    fn load(&self, order: Ordering) -> u32;
    /// Adds with `order`, returning the previous value.
    fn fetch_add(&self, v: u32, order: Ordering) -> u32;
    /// Subtracts with `order`, returning the previous value.
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32;
    /// Stores with `order`.
    fn store(&self, v: u32, order: Ordering);
    /// Sleeps while the word equals `key`, at most `timeout` (may return early).
    fn sleep_while_equal(&self, key: u32, timeout: Option<Duration>);
    /// Wakes every thread sleeping on the word.
    fn wake_all(&self);
}

impl EventWord for AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_add(self, v, order)
    }
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_sub(self, v, order)
    }
    fn store(&self, v: u32, order: Ordering) {
        AtomicU32::store(self, v, order)
    }
    fn sleep_while_equal(&self, key: u32, timeout: Option<Duration>) {
        crate::futex::wait(self, key, timeout);
    }
    fn wake_all(&self) {
        crate::futex::wake_all(self);
    }
}

/// Under loom the futex is "sleep while the word equals the key": a lost wake-up becomes a
/// waiter that never returns, which loom reports. Timeouts are not modelled.
#[cfg(loom)]
impl EventWord for loom::sync::atomic::AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        loom::sync::atomic::AtomicU32::load(self, order)
    }
    fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        loom::sync::atomic::AtomicU32::fetch_add(self, v, order)
    }
    fn fetch_sub(&self, v: u32, order: Ordering) -> u32 {
        loom::sync::atomic::AtomicU32::fetch_sub(self, v, order)
    }
    fn store(&self, v: u32, order: Ordering) {
        loom::sync::atomic::AtomicU32::store(self, v, order)
    }
    fn sleep_while_equal(&self, key: u32, _timeout: Option<Duration>) {
        // SeqCst: as the futex path's check of the word (a model of it).
        while EventWord::load(self, Ordering::SeqCst) == key {
            loom::thread::yield_now();
        }
    }
    fn wake_all(&self) {}
}

/// An event count over words of type `W`; see the module docs. The runtime uses
/// [`EventCount`]; loom models use loom's word.
#[derive(Debug, Default)]
pub struct EventCountIn<W> {
    seq: W,
    waiters: W,
}

/// The runtime's event count: std atomics over a futex.
pub type EventCount = EventCountIn<AtomicU32>;

impl EventCount {
    /// A new event count; `const`, for statics.
    ///
    /// ```
    /// static EVENTS: rcu_sys::EventCount = rcu_sys::EventCount::new();
    /// EVENTS.notify_all();
    /// ```
    pub const fn new() -> Self {
        EventCountIn { seq: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }
}

#[cfg(loom)]
impl EventCountIn<loom::sync::atomic::AtomicU32> {
    /// A new event count on loom's atomics, for the models.
    pub fn new_modelled() -> Self {
        EventCountIn {
            seq: loom::sync::atomic::AtomicU32::new(0),
            waiters: loom::sync::atomic::AtomicU32::new(0),
        }
    }
}

impl<W: EventWord> EventCountIn<W> {
    /// The waiter's first step, before checking its condition: the key to pass to `wait`.
    ///
    /// ```
    /// let events = rcu_sys::EventCount::new();
    /// let key = events.key();
    /// events.notify_all();
    /// assert_ne!(events.key(), key);
    /// ```
    pub fn key(&self) -> u32 {
        // SeqCst: (1) of the module's argument.
        self.seq.load(Ordering::SeqCst)
    }

    /// The waiter's second step, its condition being false: sleeps until a `notify_all` after
    /// `key` was read, or at most `timeout`. May return early (spuriously): re-check.
    ///
    /// ```
    /// use std::time::Duration;
    /// let events = rcu_sys::EventCount::new();
    /// let key = events.key();
    /// events.notify_all();
    /// events.wait(key, Some(Duration::from_secs(10))); // returns at once: notified since
    /// ```
    pub fn wait(&self, key: u32, timeout: Option<Duration>) {
        // SeqCst (both): (3) of the module's argument, and its undo.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _counted = WaitingHere::enter();
        self.seq.sleep_while_equal(key, timeout);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// The notifier's step, after making the condition true: wakes every waiter whose key
    /// is older. Never blocks, allocates or locks: usable from a signal handler.
    ///
    /// ```
    /// let events = rcu_sys::EventCount::new();
    /// events.notify_all(); // nobody waits: no syscall
    /// ```
    pub fn notify_all(&self) {
        // SeqCst: (b) of the module's argument.
        self.seq.fetch_add(1, Ordering::SeqCst);
        // SeqCst: (c) of the module's argument.
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.seq.wake_all();
        }
    }

    /// In a forked child only the forking thread exists: forget the parent's waiters, so
    /// notifiers skip the wake syscall again. The forking thread itself may be inside `wait`
    /// (a signal handler that interrupted its wait forked): its waits, on any event count,
    /// stay counted here, so that its wait is woken and its decrement never wraps (an event
    /// count it does not wait on then keeps a waiter for ever: a wake syscall per
    /// notification, nothing worse). Call single-threaded.
    ///
    /// ```
    /// let events = rcu_sys::EventCount::new();
    /// events.reset_after_fork();
    /// ```
    pub fn reset_after_fork(&self) {
        // Relaxed: single-threaded by contract.
        self.waiters.store(WaitingHere::count(), Ordering::Relaxed);
    }
}

#[cfg(not(loom))]
thread_local! {
    /// The event-count waits this thread is inside: 0 but in a wait, or in a signal handler
    /// that interrupted one. `const`, no destructor: usable at any point of the thread's life.
    static WAITING_HERE: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// Counts this thread in a wait while it lives (for `reset_after_fork`). A signal handler
/// that waits nests its count inside the interrupted one's, so the plain cell stays right.
struct WaitingHere;

impl WaitingHere {
    fn enter() -> Self {
        #[cfg(not(loom))]
        WAITING_HERE.with(|w| w.set(w.get().saturating_add(1)));
        WaitingHere
    }

    fn count() -> u32 {
        #[cfg(not(loom))]
        return WAITING_HERE.with(|w| w.get());
        #[cfg(loom)]
        return 0;
    }
}

impl Drop for WaitingHere {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        WAITING_HERE.with(|w| w.set(w.get().saturating_sub(1)));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering;

    use super::{EventCount, WaitingHere};

    #[test]
    fn a_reset_keeps_the_forking_threads_own_waits() {
        let events = EventCount::new();
        events.waiters.store(5, Ordering::SeqCst); // the parent's waiters
        events.reset_after_fork();
        assert_eq!(events.waiters.load(Ordering::SeqCst), 0, "nobody waits here");
        // As if a signal handler that interrupted this thread's wait forked.
        events.waiters.store(5, Ordering::SeqCst);
        let in_wait = WaitingHere::enter();
        events.reset_after_fork();
        assert_eq!(events.waiters.load(Ordering::SeqCst), 1, "this thread's wait");
        drop(in_wait);
        // The wait ends as `wait` ends it: no wrap.
        events.waiters.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(events.waiters.load(Ordering::SeqCst), 0);
    }
}
