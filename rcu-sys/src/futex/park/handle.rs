//! The calling thread as the table knows it: its `std::thread::Thread`, for notifiers to
//! unpark it (taken once per thread from `thread::current()` and kept in a thread-local), and
//! a mark that tells its slots apart in a forked child.
//!
//! Why a cache: std documents `thread::current()` as possibly panicking once the thread's
//! local data is being destroyed. This thread-local is destroyed before std's own, and from
//! then on `current` answers `None`: the waiter polls instead of parking (`park.rs`,
//! Limits). A thread whose *first* wait comes later still (code in a pthread key destructor
//! that never waited before) asks std: with Rust 1.95 and glibc it still answers there
//! (`tests/red7_exit_waits.rs` waits in both kinds of destructor, first wait and later).

use std::thread::{self, Thread};

thread_local! {
    static HANDLE: Thread = thread::current();
    /// Only its address is used: distinct for every live thread, readable without
    /// allocating, at any point of the thread's exit, and kept by the forking thread in its
    /// child.
    static MARK: u8 = const { 0 };
}

/// This thread's handle, or `None` once its thread-locals are being destroyed. Allocates on a
/// thread's first call if std had no handle for it yet (threads std did not start).
pub(super) fn current() -> Option<Thread> {
    HANDLE.try_with(Thread::clone).ok()
}

/// A number no other live thread has (the address of a thread-local), for `reset_after_fork`
/// to find the slots of the forking thread. Never 0.
pub(super) fn mark() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}
