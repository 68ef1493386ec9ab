//! Counters of the allocation side, and the snapshot users read.
//!
//! Every counter is Relaxed: statistics order nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::Policy;

/// Why a deferred free or callback took a fallback path instead of a block.
///
/// ```
/// use rcu_alloc::FallbackReason;
/// for reason in FallbackReason::ALL {
///     println!("{reason:?}");
/// }
/// assert_eq!(FallbackReason::ALL.len(), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// No block could be had: cache and pool empty, and the policy may not allocate or the
    /// allocation failed (really or by injection).
    NoBlock,
    /// The domain's pending memory was over budget and the policy may not wait.
    OverBudget,
    /// The thread's staging area was in use by the code this call interrupted (a signal
    /// handler calling in the middle of another call).
    Reentrant,
    /// The thread had no staging area in this domain and the policy may not allocate one.
    Unregistered,
}

impl FallbackReason {
    /// Every reason, in a fixed order.
    pub const ALL: [FallbackReason; 4] = [
        FallbackReason::NoBlock,
        FallbackReason::OverBudget,
        FallbackReason::Reentrant,
        FallbackReason::Unregistered,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

const POLICIES: [Policy; 3] = [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait];

fn policy_index(p: Policy) -> usize {
    match p {
        Policy::Reclaim => 0,
        Policy::NoReclaim => 1,
        Policy::NoWait => 2,
    }
}

/// A snapshot of an allocator's statistics.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, FallbackReason, Policy};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// alloc.note_fallback(Policy::NoReclaim, FallbackReason::OverBudget);
/// let stats = alloc.stats();
/// for (policy, reason, count) in &stats.fallbacks {
///     println!("{policy:?} fell back {count} time(s): {reason:?}");
/// }
/// assert_eq!(stats.fallbacks_total(Policy::NoReclaim), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Blocks obtained from the global allocator.
    pub blocks_allocated: u64,
    /// Blocks returned to the global allocator.
    pub blocks_freed: u64,
    /// Blocks in the global pool now.
    pub blocks_pooled: u64,
    /// Block requests the pool satisfied.
    pub pool_hits: u64,
    /// Requests that found the pool empty under a policy that may not allocate.
    pub pool_empty: u64,
    /// Real allocation failures of the global allocator.
    pub alloc_failures_real: u64,
    /// Block requests failed by fault injection.
    pub alloc_failures_injected: u64,
    /// Fallbacks, by policy and reason: `(policy, reason, count)` for every non-zero count.
    pub fallbacks: Vec<(Policy, FallbackReason, u64)>,
    /// Times a `Reclaim`-policy call waited for pending memory to drain.
    pub backpressure_waits: u64,
    /// Shrinker `scan` calls made.
    pub shrinker_calls: u64,
    /// Shrinker calls (`count` or `scan`) that panicked: contained, reported on stderr, and
    /// counted as having freed nothing; the allocation goes on.
    pub shrinker_panics: u64,
    /// Times the refill worker topped the pool up.
    pub refills: u64,
}

impl AllocStats {
    /// Fallbacks of one policy and reason.
    ///
    /// ```
    /// use rcu_alloc::{AllocStats, FallbackReason, Policy};
    /// let stats = AllocStats {
    ///     fallbacks: vec![(Policy::NoWait, FallbackReason::Reentrant, 3)],
    ///     ..AllocStats::default()
    /// };
    /// assert_eq!(stats.fallbacks_of(Policy::NoWait, FallbackReason::Reentrant), 3);
    /// assert_eq!(stats.fallbacks_of(Policy::NoWait, FallbackReason::NoBlock), 0);
    /// ```
    pub fn fallbacks_of(&self, policy: Policy, reason: FallbackReason) -> u64 {
        self.fallbacks
            .iter()
            .find(|(p, r, _)| *p == policy && *r == reason)
            .map_or(0, |(_, _, n)| *n)
    }

    /// All fallbacks of one policy.
    ///
    /// ```
    /// use rcu_alloc::{AllocStats, FallbackReason, Policy};
    /// let stats = AllocStats {
    ///     fallbacks: vec![
    ///         (Policy::NoWait, FallbackReason::NoBlock, 2),
    ///         (Policy::NoWait, FallbackReason::OverBudget, 5),
    ///     ],
    ///     ..AllocStats::default()
    /// };
    /// assert_eq!(stats.fallbacks_total(Policy::NoWait), 7);
    /// assert_eq!(stats.fallbacks_total(Policy::Reclaim), 0);
    /// ```
    pub fn fallbacks_total(&self, policy: Policy) -> u64 {
        self.fallbacks.iter().filter(|(p, _, _)| *p == policy).map(|(_, _, n)| n).sum()
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) blocks_allocated: AtomicU64,
    pub(crate) blocks_freed: AtomicU64,
    pub(crate) pool_hits: AtomicU64,
    pub(crate) pool_empty: AtomicU64,
    pub(crate) alloc_failures_real: AtomicU64,
    pub(crate) alloc_failures_injected: AtomicU64,
    fallbacks: [[AtomicU64; 4]; 3],
    pub(crate) backpressure_waits: AtomicU64,
    pub(crate) shrinker_calls: AtomicU64,
    pub(crate) shrinker_panics: AtomicU64,
    pub(crate) refills: AtomicU64,
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Counters {
            blocks_allocated: AtomicU64::new(0),
            blocks_freed: AtomicU64::new(0),
            pool_hits: AtomicU64::new(0),
            pool_empty: AtomicU64::new(0),
            alloc_failures_real: AtomicU64::new(0),
            alloc_failures_injected: AtomicU64::new(0),
            fallbacks: [const { [const { AtomicU64::new(0) }; 4] }; 3],
            backpressure_waits: AtomicU64::new(0),
            shrinker_calls: AtomicU64::new(0),
            shrinker_panics: AtomicU64::new(0),
            refills: AtomicU64::new(0),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        // Relaxed: a statistic.
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn fallback(&self, policy: Policy, reason: FallbackReason) {
        Self::add(&self.fallbacks[policy_index(policy)][reason.index()], 1);
    }

    pub(crate) fn snapshot(&self, blocks_pooled: usize) -> AllocStats {
        // Relaxed: a statistic.
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut fallbacks = Vec::new();
        for p in POLICIES {
            for r in FallbackReason::ALL {
                let n = get(&self.fallbacks[policy_index(p)][r.index()]);
                if n != 0 {
                    fallbacks.push((p, r, n));
                }
            }
        }
        AllocStats {
            blocks_allocated: get(&self.blocks_allocated),
            blocks_freed: get(&self.blocks_freed),
            blocks_pooled: blocks_pooled as u64,
            pool_hits: get(&self.pool_hits),
            pool_empty: get(&self.pool_empty),
            alloc_failures_real: get(&self.alloc_failures_real),
            alloc_failures_injected: get(&self.alloc_failures_injected),
            fallbacks,
            backpressure_waits: get(&self.backpressure_waits),
            shrinker_calls: get(&self.shrinker_calls),
            shrinker_panics: get(&self.shrinker_panics),
            refills: get(&self.refills),
        }
    }
}
