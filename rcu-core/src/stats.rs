//! A domain's counters and the snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a domain's statistics (see [`Domain::stats`](crate::Domain::stats)).
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// let before = Domain::global().stats();
/// synchronize_rcu(&ctx);
/// let after = Domain::global().stats();
/// assert!(after.gp_completed > before.gp_completed);
/// println!("pending {} of {} bytes", after.pending_bytes, after.budget_bytes);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// The last grace period started.
    pub gp_seq: u64,
    /// The last grace period completed.
    pub gp_completed: u64,
    /// Normal grace periods completed.
    pub gps_normal: u64,
    /// Expedited grace periods completed.
    pub gps_expedited: u64,
    /// Threads currently registered as readers.
    pub readers: u64,
    /// Stall reports made.
    pub stalls: u64,
    /// `membarrier` system calls this domain's grace periods issued (each interrupts every
    /// CPU running a thread of the process). Always 0 for the flavours whose grace periods
    /// pair with readers by a fence (`QsbrDomain`, plain `SrcuDomain`) and where membarrier
    /// is unavailable.
    pub membarriers: u64,
    /// Threads that exited inside a read section (a leaked guard), force-ended.
    pub leaked_read_sections: u64,
    /// Callbacks and deferred frees queued.
    pub callbacks_queued: u64,
    /// Callbacks and deferred frees run.
    pub callbacks_invoked: u64,
    /// Queued and not yet run.
    pub callbacks_pending: u64,
    /// Callbacks that panicked (caught; the rest of their batch ran).
    pub callback_panics: u64,
    /// Other panics of user code the runtime ran and contained: async wakers (their `wake`
    /// and their drop) and stall handlers, payloads included. Each is reported on stderr;
    /// the thread that ran it goes on serving.
    pub contained_panics: u64,
    /// Bytes kept alive by collected, not yet run items.
    pub pending_bytes: u64,
    /// The highest `pending_bytes` seen.
    pub peak_pending_bytes: u64,
    /// The budget for `pending_bytes`.
    pub budget_bytes: u64,
    /// Threads waiting for a grace period right now: in `synchronize_rcu`, its expedited and
    /// conditional forms, or a reclaim call's backpressure; not the domain's worker. Each
    /// is counted once it holds the cookie it waits for, so a count that includes a thread
    /// says which grace periods it can still share.
    pub gp_waiters: u64,
}

/// The live counters. All Relaxed (statistics order nothing) except `gp_waiters`.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) gps_normal: AtomicU64,
    pub(crate) gps_expedited: AtomicU64,
    pub(crate) stalls: AtomicU64,
    pub(crate) membarriers: AtomicU64,
    pub(crate) leaked_read_sections: AtomicU64,
    pub(crate) contained_panics: AtomicU64,
    /// Threads inside `State::wait_for`, see `Waiting`.
    gp_waiters: AtomicU64,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Counters {
            gps_normal: AtomicU64::new(0),
            gps_expedited: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            membarriers: AtomicU64::new(0),
            leaked_read_sections: AtomicU64::new(0),
            contained_panics: AtomicU64::new(0),
            gp_waiters: AtomicU64::new(0),
        }
    }

    /// Counts the calling thread as waiting for a grace period until the guard drops
    /// (return or unwind). Caller: a thread that already holds the cookie it will wait for.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        // Release: pairs with the Acquire in `gp_waiters`, so a reader of the count also sees
        // everything this thread did before it (the cookie it took): a count that includes
        // this thread proves the cookie was taken before the reader looked.
        self.gp_waiters.fetch_add(1, Ordering::Release);
        Waiting(&self.gp_waiters)
    }

    /// Threads waiting for a grace period now (see `waiting`).
    pub(crate) fn gp_waiters(&self) -> u64 {
        // Acquire: pairs with the Release in `waiting`.
        self.gp_waiters.load(Ordering::Acquire)
    }

    /// In a forked child: the threads the parent counted as waiting do not exist there.
    /// (Its one thread cannot be waiting itself unless it forked from a stall handler; its
    /// `Waiting` then finds zero and leaves it so.)
    pub(crate) fn reset_after_fork(&self) {
        // Relaxed: the child has a single thread.
        self.gp_waiters.store(0, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        // Relaxed: a statistic.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        // Relaxed: a statistic.
        counter.load(Ordering::Relaxed)
    }
}

/// A thread counted in `Counters::gp_waiters`; uncounts it on drop.
pub(crate) struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Relaxed: leaving orders nothing a reader of the count relies on. Saturating: see
        // `Counters::reset_after_fork`.
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
