//! The OS and threading primitives an RCU runtime stands on, none of which knows about
//! grace periods, tokens or allocation policy.
//!
//! - [`EventCount`]: the one wait/notify primitive (a waiter reads a key, checks its
//!   condition, sleeps while nothing was notified since), with its proof and loom model.
//! - [`futex`]: sleeping on a 32-bit word and waking its sleepers. A wake never allocates,
//!   locks or blocks, so it is usable from any context, a signal handler included.
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

pub mod contain;
mod event_count;
mod fork_lock;
pub mod futex;
mod raw_thread;
mod service;
pub mod stderr;

pub use event_count::{EventCount, EventCountIn, EventWord};
pub use fork_lock::ForkLock;
pub use raw_thread::spawn_detached;
pub use service::ServiceThread;
