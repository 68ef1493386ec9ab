//! The memory budget for pending reclamation: bytes kept alive by queued frees and
//! callbacks (the objects and the blocks holding them). What happens when it is exceeded is
//! the policy's business (backpressure under `Reclaim`, fall back under the others).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A domain's budget.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicUsize,
    pending: AtomicUsize,
    peak: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub const fn new(limit: usize) -> Self {
        Budget {
            limit: AtomicUsize::new(limit),
            pending: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        // Relaxed: a setting.
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit.
    pub fn set_limit(&self, limit: usize) {
        // Relaxed: a setting.
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes accounted as pending.
    pub fn pending(&self) -> usize {
        // Relaxed: a level, compared against the limit; approximate by nature.
        self.pending.load(Ordering::Relaxed)
    }

    /// The highest `pending` seen.
    pub fn peak(&self) -> usize {
        // Relaxed: a statistic.
        self.peak.load(Ordering::Relaxed)
    }

    /// True if `pending` plus `unaccounted` (bytes a thread holds in its unsealed block)
    /// exceeds the limit.
    #[inline]
    pub fn is_over(&self, unaccounted: usize) -> bool {
        self.pending() + unaccounted > self.limit()
    }

    /// Accounts `bytes` more as pending.
    pub fn charge(&self, bytes: usize) {
        // Relaxed: a level (see `pending`).
        let now = self.pending.fetch_add(bytes, Ordering::Relaxed) + bytes;
        // Relaxed: a statistic.
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Accounts `bytes` as no longer pending.
    pub fn release(&self, bytes: usize) {
        // Relaxed: a level.
        self.pending.fetch_sub(bytes, Ordering::Relaxed);
    }
}
