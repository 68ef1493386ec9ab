//! The OS and threading primitives an RCU runtime stands on, none of which knows about
//! grace periods, tokens or allocation policy.
//!
//! - [`EventCount`]: the one wait/notify primitive (a waiter reads a key, checks its
//!   condition, sleeps while nothing was notified since), with its proof and loom model.
//! - [`futex`]: sleeping on a 32-bit word and waking its sleepers: the Linux futex, or on
//!   other Unixes (and under `--cfg rcu_force_park`) a table of parked threads. A wake never
//!   allocates, locks or blocks, so it is usable from any context, a signal handler included.
//! - [`thread_id`], [`thread_name`]: the calling thread's identity for reports, from whatever
//!   the OS offers.
//! - [`ServiceThread`]: a background thread's lifecycle (started once on demand, woken
//!   through a futex event, stopped and joined or detached, forgotten in a forked child). Each
//!   domain's worker and each allocator's refill worker is one. Its threads are started with
//!   `pthread_create`, not `std::thread` (a forked child must be able to start them again),
//!   and run with every signal blocked.
//! - [`contain`]: running user code with its panics (and their payloads' panics) caught.
//! - [`stderr`]: the runtime's reports, written with `write(2)` (no std lock a forked child
//!   could find held).
//! - [`ForkLock`]: a small spinning lock that the runtime's `pthread_atfork` handlers hold
//!   across `fork()`, so a child never inherits it held by a thread that does not exist there.
//!
//! Platforms: Unix only (pthreads, `fork`, signals). Tested on Linux; the code paths other
//! Unixes take instead of Linux-only calls (the park backend, readers' fence mode) are
//! exercised on Linux by CI through `--cfg rcu_force_park` and `--cfg rcu_force_fence`.
//!
//! Users reach none of this directly: `rcu-alloc` and `rcu-core` build on it, and users
//! depend on `rcu-core` only.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rcu_sys::{ForkLock, ServiceThread};
//!
//! static DONE: ForkLock<u32> = ForkLock::new(0);
//! let service = Arc::new(ServiceThread::new());
//! let for_thread = Arc::clone(&service);
//! service.start("sys-example".into(), move || {
//!     while !for_thread.stopping() {
//!         let seen = for_thread.event();
//!         DONE.with(|n| *n += 1);
//!         for_thread.sleep(seen, Duration::from_millis(10));
//!     }
//! });
//! service.wake(); // a futex wake: never blocks
//! while DONE.with(|n| *n) == 0 {
//!     std::thread::yield_now(); // the thread has not run its first round yet
//! }
//! service.stop(); // wakes the thread and joins it
//! ```

#[cfg(not(unix))]
compile_error!(
    "rcu-sys supports Unix targets only (Linux, tested; macOS, FreeBSD and other Unixes, \
     untested): the runtime is built on pthreads, fork and signals. Windows is not supported."
);

pub mod contain;
mod event_count;
mod fork_lock;
pub mod futex;
mod identity;
mod raw_thread;
mod service;
pub mod stderr;

pub use event_count::{EventCount, EventCountIn, EventWord};
pub use fork_lock::ForkLock;
pub use identity::{thread_id, thread_name};
pub use raw_thread::spawn_detached;
pub use service::ServiceThread;
