//! The memory budget for pending reclamation: bytes kept alive by queued frees and
//! callbacks (the objects and the blocks holding them). What happens when it is exceeded is
//! the policy's business (backpressure under `Reclaim`, fall back under the others).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A domain's budget.
///
/// ```
/// use rcu_alloc::Budget;
/// let budget = Budget::new(1000);
/// budget.charge(600);
/// assert!(!budget.is_over(0));
/// assert!(budget.is_over(500)); // 600 pending + 500 not yet accounted > 1000
/// budget.release(600);
/// assert_eq!((budget.pending(), budget.peak()), (0, 600));
/// ```
#[derive(Debug)]
pub struct Budget {
    limit: AtomicUsize,
    pending: AtomicUsize,
    peak: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    ///
    /// ```
    /// static BUDGET: rcu_alloc::Budget = rcu_alloc::Budget::new(64 << 20);
    /// assert_eq!(BUDGET.limit(), 64 << 20);
    /// ```
    pub const fn new(limit: usize) -> Self {
        Budget {
            limit: AtomicUsize::new(limit),
            pending: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// The limit in bytes.
    ///
    /// ```
    /// assert_eq!(rcu_alloc::Budget::new(10).limit(), 10);
    /// ```
    pub fn limit(&self) -> usize {
        // Relaxed: a setting.
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit. Any value is meaningful: 0 means always over budget, `usize::MAX`
    /// never.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(10);
    /// budget.set_limit(20);
    /// assert_eq!(budget.limit(), 20);
    /// budget.set_limit(0);
    /// assert!(budget.is_over(1));
    /// budget.set_limit(usize::MAX);
    /// assert!(!budget.is_over(usize::MAX));
    /// ```
    pub fn set_limit(&self, limit: usize) {
        // Relaxed: a setting.
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes accounted as pending.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(30);
    /// assert_eq!(budget.pending(), 30);
    /// ```
    pub fn pending(&self) -> usize {
        // Relaxed: a level, compared against the limit; approximate by nature.
        self.pending.load(Ordering::Relaxed)
    }

    /// The highest `pending` seen.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(70);
    /// budget.release(50);
    /// assert_eq!((budget.pending(), budget.peak()), (20, 70));
    /// ```
    pub fn peak(&self) -> usize {
        // Relaxed: a statistic.
        self.peak.load(Ordering::Relaxed)
    }

    /// True if `pending` plus `unaccounted` (bytes a thread holds in its unsealed block)
    /// exceeds the limit.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(90);
    /// assert!(!budget.is_over(10));
    /// assert!(budget.is_over(11));
    /// ```
    #[inline]
    pub fn is_over(&self, unaccounted: usize) -> bool {
        // Saturating: an absurd `unaccounted` is over any budget but `usize::MAX`.
        self.pending().saturating_add(unaccounted) > self.limit()
    }

    /// Accounts `bytes` more as pending.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(4096 + 128); // a block and the objects it keeps alive
    /// assert!(budget.is_over(0));
    /// ```
    pub fn charge(&self, bytes: usize) {
        // Relaxed: a level (see `pending`).
        let now = self.pending.fetch_add(bytes, Ordering::Relaxed) + bytes;
        // Relaxed: a statistic.
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Accounts `bytes` as no longer pending.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(150);
    /// budget.release(150); // the batch ran
    /// assert_eq!(budget.pending(), 0);
    /// ```
    pub fn release(&self, bytes: usize) {
        // Relaxed: a level.
        self.pending.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Sets the pending level to `bytes`, recounted from what is really queued: in a forked
    /// child, whose copy still counts batches the parent's worker held (they do not exist
    /// there). Call single-threaded.
    ///
    /// ```
    /// let budget = rcu_alloc::Budget::new(100);
    /// budget.charge(150); // counted by a batch that was lost
    /// budget.reset_pending(40); // what is really still queued
    /// assert_eq!(budget.pending(), 40);
    /// ```
    pub fn reset_pending(&self, bytes: usize) {
        // Relaxed: single-threaded by contract.
        self.pending.store(bytes, Ordering::Relaxed);
    }
}
