//! Fault injection: make block requests fail on purpose, so that every fallback path (the
//! intrusive list, synchronize-then-free, an empty pool under `Atomic`) runs in tests rather
//! than once in a blue moon in production.
//!
//! Per policy: fail every Nth request, and/or each request with probability `p` drawn from a
//! seeded generator. Lock-free and allocation-free, so usable on `Atomic` paths.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::Policy;

/// What to inject for one policy. The default injects nothing.
///
/// ```
/// use rcu_alloc::FaultConfig;
/// let every_third = FaultConfig::every_nth(3);
/// let one_in_ten = FaultConfig::probability(0.1, 0x5eed);
/// let both = FaultConfig { every_nth: 3, ..one_in_ten };
/// assert_eq!(both.every_nth, every_third.every_nth);
/// assert_eq!(FaultConfig::default(), FaultConfig { every_nth: 0, probability: 0.0, seed: 0 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Fail every Nth block request (0: never).
    pub every_nth: u64,
    /// Fail each request with this probability (0.0 to 1.0).
    pub probability: f64,
    /// Seed of the generator behind `probability`.
    pub seed: u64,
}

impl FaultConfig {
    /// Fail every `n`th request.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, FaultConfig, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.inject_faults(Policy::Reclaim, FaultConfig::every_nth(2));
    /// let mut cache = ThreadCache::new();
    /// let first = alloc.get(Policy::Reclaim, &mut cache);
    /// assert!(first.is_some());
    /// assert!(alloc.get(Policy::Reclaim, &mut cache).is_none()); // the 2nd request fails
    /// // SAFETY: (1) it came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(first.unwrap()) };
    /// ```
    pub fn every_nth(n: u64) -> Self {
        FaultConfig { every_nth: n, ..Self::default() }
    }

    /// Fail each request with probability `p`, drawing from a generator seeded with `seed`.
    ///
    /// ```
    /// use rcu_alloc::FaultConfig;
    /// let config = FaultConfig::probability(0.3, 42); // same seed, same failures
    /// assert_eq!((config.probability, config.seed), (0.3, 42));
    /// ```
    pub fn probability(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "rcu-alloc: FaultConfig::probability({p}) is not a probability. Fix: pass a value \
             in 0.0..=1.0"
        );
        FaultConfig { probability: p, seed, ..Self::default() }
    }
}

#[derive(Debug)]
struct PolicyFaults {
    every_nth: AtomicU64,
    /// `probability` scaled to the full u64 range; 0 disables.
    threshold: AtomicU64,
    requests: AtomicU64,
    rng: AtomicU64,
}

impl PolicyFaults {
    const fn new() -> Self {
        PolicyFaults {
            every_nth: AtomicU64::new(0),
            threshold: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            rng: AtomicU64::new(0),
        }
    }
}

/// The injector of one allocator. All atomics here are Relaxed: the injected decision needs
/// no ordering with anything else, only atomicity.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    per_policy: [PolicyFaults; 3],
}

fn index(policy: Policy) -> usize {
    match policy {
        Policy::Reclaim => 0,
        Policy::NoReclaim => 1,
        Policy::NoWait => 2,
    }
}

/// splitmix64: a well-mixed 64-bit output from a counter.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultInjector {
    pub(crate) const fn new() -> Self {
        FaultInjector {
            per_policy: [PolicyFaults::new(), PolicyFaults::new(), PolicyFaults::new()],
        }
    }

    pub(crate) fn configure(&self, policy: Policy, config: FaultConfig) {
        let f = &self.per_policy[index(policy)];
        let threshold = (config.probability * u64::MAX as f64) as u64;
        // Relaxed (all): see the type's docs.
        f.every_nth.store(config.every_nth, Ordering::Relaxed);
        f.threshold.store(threshold, Ordering::Relaxed);
        f.requests.store(0, Ordering::Relaxed);
        f.rng.store(config.seed, Ordering::Relaxed);
    }

    /// Decides whether this block request fails by injection.
    #[inline]
    pub(crate) fn should_fail(&self, policy: Policy) -> bool {
        let f = &self.per_policy[index(policy)];
        // Relaxed (all): see the type's docs.
        let nth = f.every_nth.load(Ordering::Relaxed);
        let threshold = f.threshold.load(Ordering::Relaxed);
        if nth == 0 && threshold == 0 {
            return false;
        }
        let n = f.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if nth != 0 && n % nth == 0 {
            return true;
        }
        threshold != 0 && mix(f.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)) < threshold
    }
}
