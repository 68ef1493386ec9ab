//! The entry count, sharded by hash so that writers on different keys rarely share a cache
//! line. `len` sums the shards: exact when no writer runs, approximate otherwise.

use std::sync::atomic::{AtomicIsize, Ordering};

/// Shards (a power of two).
pub(super) const SHARDS: usize = 16;

/// One shard, alone in its cache lines (two lines: adjacent-line prefetching).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Shard(AtomicIsize);

/// The sharded count.
#[derive(Debug, Default)]
pub(crate) struct Count {
    shards: [Shard; SHARDS],
}

impl Count {
    /// Adds `delta` to the shard of `hash` (a node's stored hash: its top bits, which pick
    /// buckets only in the largest tables); returns that shard's previous value.
    #[inline]
    pub(crate) fn add(&self, hash: u32, delta: isize) -> isize {
        // Relaxed: a statistic; no memory is published through it.
        self.shards[(hash >> 28) as usize % SHARDS].0.fetch_add(delta, Ordering::Relaxed)
    }

    /// The total (never negative: a remove counted before its insert is seen clamps to 0).
    pub(crate) fn sum(&self) -> usize {
        // Relaxed: as above.
        let total: isize = self.shards.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        total.max(0) as usize
    }

    /// Every shard to zero (exclusive access).
    pub(crate) fn reset(&mut self) {
        for s in &mut self.shards {
            *s.0.get_mut() = 0;
        }
    }
}
