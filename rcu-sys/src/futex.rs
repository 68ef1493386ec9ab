//! Sleeping on a 32-bit word and waking its sleepers, with one of two backends chosen at
//! build time:
//!
//! - **futex** (Linux and Android): the kernel's `FUTEX_WAIT`/`FUTEX_WAKE` (`futex/linux.rs`).
//! - **park** (every other Unix, and Linux built with `--cfg rcu_force_park`): a fixed table
//!   of parked threads woken with `std::thread::Thread::unpark` (`futex/park.rs`, where its
//!   proof is). CI builds Linux with the cfg (`ci/portable.sh`), so this backend runs the
//!   whole test suite too.
//!
//! [`BACKEND`] names the one in use. Used for the slow paths only (grace-period waiters,
//! workers' idle sleeps). Waking never allocates, locks or blocks on either backend, so
//! [`wake_all`] is usable from any context, a signal handler included; [`wait`] needs a
//! context that may block.
//!
//! One difference callers never see: a futex sleeper returns on any wake, a parked one only
//! once the word differs from `expected` (or at the timeout). Callers change the word before
//! waking ([`EventCount`](crate::EventCount) bumps it), as the futex protocol requires anyway.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use rcu_sys::futex;
//!
//! let word = AtomicU32::new(0);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         while word.load(Ordering::SeqCst) == 0 {
//!             futex::wait(&word, 0, Some(Duration::from_millis(10)));
//!         }
//!     });
//!     word.store(1, Ordering::SeqCst);
//!     futex::wake_all(&word);
//! });
//! ```

use std::sync::atomic::AtomicU32;
use std::time::Duration;

#[cfg(all(any(target_os = "linux", target_os = "android"), not(rcu_force_park)))]
mod linux;
#[cfg(all(any(target_os = "linux", target_os = "android"), not(rcu_force_park)))]
use linux as backend;

// Built for the unit tests on every target (they drive the table directly), used as the
// backend where there is no futex or when forced.
#[cfg(any(test, rcu_force_park, not(any(target_os = "linux", target_os = "android"))))]
mod park;
#[cfg(any(rcu_force_park, not(any(target_os = "linux", target_os = "android"))))]
use park as backend;

/// The backend in use: `"futex"` or `"park"` (see the module docs). Reports and benchmark
/// headers print it.
///
/// ```
/// assert!(["futex", "park"].contains(&rcu_sys::futex::BACKEND));
/// ```
pub const BACKEND: &str = backend::NAME;

/// Sleeps while `*word == expected`, at most `timeout` if given. Spurious wake-ups happen:
/// callers re-check their condition.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// let word = AtomicU32::new(5);
/// rcu_sys::futex::wait(&word, 4, None); // returns at once: the word is not 4
/// rcu_sys::futex::wait(&word, 5, Some(Duration::from_millis(1))); // times out
/// ```
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    backend::wait(word, expected, timeout);
}

/// Wakes every thread sleeping on `word`. Change the word first (see the module docs).
/// Never blocks, allocates or locks.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(0);
/// rcu_sys::futex::wake_all(&word); // no sleeper: nothing happens
/// ```
pub fn wake_all(word: &AtomicU32) {
    backend::wake_all(word);
}

/// In a forked child: forgets the sleepers of the parent, none of which exists here (the park
/// backend's table would otherwise keep their slots taken for ever; the futex backend has
/// nothing to forget). The runtime calls it first thing in its `pthread_atfork` child handler
/// (`rcu-core`).
///
/// # Safety
/// 1. The calling thread is the only thread of the process (a forked child), and it is not
///    inside [`wait`] (a signal handler that interrupted it may be inside [`wake_all`]).
///
/// ```
/// // SAFETY: (1) a doctest's process runs this one thread, which is not waiting.
/// unsafe { rcu_sys::futex::reset_after_fork() };
/// ```
pub unsafe fn reset_after_fork() {
    // SAFETY: (1) is the caller's.
    unsafe { backend::reset_after_fork() };
}
