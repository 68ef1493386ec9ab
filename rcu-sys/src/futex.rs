//! Sleeping on a 32-bit word: the Linux futex, wrapped.
//!
//! Used for the slow paths only (grace-period waiters, workers' idle sleeps). Waking never
//! allocates, locks or blocks, so `wake_all` is usable from any context, a signal handler
//! included; `wait` needs a context that may block.
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
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the whole call; `ts_ptr` is null or points to
    // `ts`, which outlives the call. FUTEX_WAIT only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes every thread sleeping on `word`.
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(0);
/// rcu_sys::futex::wake_all(&word); // no sleeper: nothing happens
/// ```
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access user memory beyond
    // using its address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}
