//! The process's fork epoch: how many forks separate it from the first process. Kept apart
//! from `fork` (the child's repair, which reaches every part of a domain) so that the parts
//! it repairs can read the epoch without importing it back.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped by each fork child's handler (`fork::child_after_fork`).
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The process's fork epoch: a value recorded before a fork differs from this in the child.
/// What was registered under an older epoch was registered by a thread of an ancestor
/// (`wait_async`: such wakers are never run on the child's worker).
pub(crate) fn epoch() -> u64 {
    // Relaxed: only changed by a child's handler, single-threaded, before any thread the
    // child starts (which the spawn synchronizes with) and on the thread that reads it after.
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// In a fork child's handler (single-threaded): a new epoch begins.
pub(crate) fn begin_after_fork() {
    // Relaxed: see `epoch`.
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}
