//! The block allocator: where a deferred free or callback gets its block from, decided by
//! the policy of the caller's token.
//!
//! In order: the thread's cache, the global pool, then (policies that may allocate) the
//! global allocator, then (`Reclaim` only) the shrinkers and one more try. `NoWait` stops
//! after the pool, wakes the refill worker, and leaves the caller to its fallback.

use core::ptr::NonNull;

use crate::block::Block;
use crate::budget::Budget;
use crate::config::AllocConfig;
use crate::fault::{FaultConfig, FaultInjector};
use crate::policy::Policy;
use crate::pool::Pool;
use crate::refill::Refill;
use crate::shrinker::{self, Shrinker};
use crate::stats::{AllocStats, Counters, FallbackReason};
use crate::thread_cache::ThreadCache;

/// One domain's block allocator.
#[derive(Debug)]
pub struct BlockAllocator {
    config: AllocConfig,
    pool: Pool,
    faults: FaultInjector,
    counters: Counters,
    budget: Budget,
    pub(crate) refill: Refill,
}

impl BlockAllocator {
    /// An allocator with `config`; `const` so the global domain's can be a `static`.
    pub const fn new(config: AllocConfig) -> Self {
        BlockAllocator {
            config,
            pool: Pool::new(),
            faults: FaultInjector::new(),
            counters: Counters::new(),
            budget: Budget::new(config.budget_bytes),
            refill: Refill::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AllocConfig {
        &self.config
    }

    /// The pending-memory budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Block size in bytes.
    pub fn block_bytes(&self) -> usize {
        self.config.block_bytes
    }

    /// Makes block requests of `policy` fail as `config` says (for tests).
    pub fn inject_faults(&self, policy: Policy, config: FaultConfig) {
        self.faults.configure(policy, config);
    }

    /// A block for a caller running under `policy`, using `cache` first (and topping it up
    /// from the pool under policies that may block). `None` means no block can be had under
    /// this policy right now: the caller falls back.
    pub fn get(&self, policy: Policy, cache: &mut ThreadCache) -> Option<NonNull<Block>> {
        if self.faults.should_fail(policy) {
            Counters::add(&self.counters.alloc_failures_injected, 1);
            return None;
        }
        if let Some(block) = cache.pop() {
            return Some(block);
        }
        if let Some(block) = self.pool.pop() {
            Counters::add(&self.counters.pool_hits, 1);
            if policy.may_block() {
                // Top the cache up while we are at the pool anyway.
                while cache.len() < self.config.thread_cache_blocks {
                    let Some(extra) = self.pool.pop() else { break };
                    if let Err(extra) = cache.push(extra, self.config.thread_cache_blocks) {
                        self.put(extra);
                        break;
                    }
                }
            }
            if self.pool.len() < self.config.pool_low {
                self.refill.wake();
            }
            return Some(block);
        }
        self.refill.wake();
        if !policy.may_alloc() {
            Counters::add(&self.counters.pool_empty, 1);
            return None;
        }
        if let Some(block) = self.allocate() {
            return Some(block);
        }
        Counters::add(&self.counters.alloc_failures_real, 1);
        if policy.may_reclaim() {
            let (_, calls) = shrinker::shrink_all();
            Counters::add(&self.counters.shrinker_calls, calls);
            if let Some(block) = self.allocate() {
                return Some(block);
            }
            Counters::add(&self.counters.alloc_failures_real, 1);
        }
        None
    }

    /// Returns an empty block: to the pool, or to the global allocator if the pool is full.
    /// Callers: threads that may call the global allocator.
    pub fn put(&self, block: NonNull<Block>) {
        if let Err(block) = self.pool.push(block) {
            self.free(block);
        }
    }

    /// Returns an empty block to the pool only: never calls the global allocator, so any
    /// policy may; gives the block back if the pool is full.
    pub fn put_to_pool(&self, block: NonNull<Block>) -> Result<(), NonNull<Block>> {
        self.pool.push(block)
    }

    /// Returns a thread's cached blocks (at thread exit).
    pub fn put_cache(&self, cache: &mut ThreadCache) {
        while let Some(block) = cache.pop() {
            self.put(block);
        }
    }

    fn allocate(&self) -> Option<NonNull<Block>> {
        let block = Block::allocate(self.config.block_bytes)?;
        Counters::add(&self.counters.blocks_allocated, 1);
        Some(block)
    }

    fn free(&self, block: NonNull<Block>) {
        // SAFETY: (1) every block of this allocator has its configured size; (2) the caller
        // handed it over.
        unsafe { Block::free(block, self.config.block_bytes) };
        Counters::add(&self.counters.blocks_freed, 1);
    }

    /// Tops the pool up to its high watermark (the refill worker's job; callable by any
    /// thread that may allocate).
    pub fn refill_pool(&self) {
        let mut added = false;
        while self.pool.len() < self.config.pool_high {
            let Some(block) = self.allocate() else { break };
            if let Err(block) = self.pool.push(block) {
                self.free(block);
                break;
            }
            added = true;
        }
        if added {
            Counters::add(&self.counters.refills, 1);
        }
    }

    /// Stops the refill worker (if running) and waits for it.
    pub fn stop_refill(&self) {
        self.refill.stop();
    }

    /// Counts a fallback taken by the runtime.
    pub fn note_fallback(&self, policy: Policy, reason: FallbackReason) {
        self.counters.fallback(policy, reason);
    }

    /// Counts a backpressure wait (a `Reclaim` caller waited for pending memory to drain).
    pub fn note_backpressure(&self) {
        Counters::add(&self.counters.backpressure_waits, 1);
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> AllocStats {
        self.counters.snapshot(self.pool.len())
    }
}

/// The pool is a cache the runtime can give back: `scan` frees pooled blocks.
impl Shrinker for BlockAllocator {
    fn count(&self) -> usize {
        self.pool.len()
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        let mut freed = 0;
        while freed < nr_to_scan {
            let Some(block) = self.pool.pop() else { break };
            self.free(block);
            freed += 1;
        }
        freed
    }
}

impl Drop for BlockAllocator {
    fn drop(&mut self) {
        self.refill.stop();
        while let Some(block) = self.pool.pop() {
            self.free(block);
        }
    }
}
