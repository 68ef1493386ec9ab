//! The block allocator: where a deferred free or callback gets its block from, decided by
//! the policy of the caller's token.
//!
//! In order: the thread's cache, the global pool, then (policies that may allocate) the
//! global allocator, then (`Reclaim` only) the shrinkers and one more try. `NoWait` stops
//! after the pool, wakes the refill worker, and leaves the caller to its fallback.

use core::ptr::NonNull;

use rcu_sys::ServiceThread;

use crate::block::Block;
use crate::budget::Budget;
use crate::config::AllocConfig;
use crate::fault::{FaultConfig, FaultInjector};
use crate::policy::{BlockSource, Policy};
use crate::pool::Pool;
use crate::shrinker::{self, Shrinker};
use crate::stats::{AllocStats, Counters, FallbackReason};
use crate::thread_cache::ThreadCache;

/// One domain's block allocator.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
///
/// let alloc = BlockAllocator::new(AllocConfig::new().budget_bytes(1 << 20));
/// let mut cache = ThreadCache::new();
/// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { alloc.put(block) }; // back to the pool
/// assert_eq!(alloc.stats().blocks_pooled, 1);
/// ```
#[derive(Debug)]
pub struct BlockAllocator {
    config: AllocConfig,
    pool: Pool,
    faults: FaultInjector,
    counters: Counters,
    budget: Budget,
    pub(crate) refill: ServiceThread,
}

impl BlockAllocator {
    /// An allocator with `config`; `const` so the global domain's can be a `static`.
    ///
    /// # Panics
    /// If `config` fails [`AllocConfig::validate`] (in a `static`, that is a compile error).
    /// The message names the field; `validate` also gives its value.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new());
    /// assert_eq!(ALLOC.block_bytes(), 4096);
    ///
    /// let too_big = AllocConfig::new().block_bytes(usize::MAX);
    /// assert!(too_big.validate().is_err());
    /// assert!(std::panic::catch_unwind(|| BlockAllocator::new(too_big)).is_err());
    /// ```
    #[track_caller]
    pub const fn new(config: AllocConfig) -> Self {
        config.assert_valid();
        BlockAllocator {
            config,
            pool: Pool::new(),
            faults: FaultInjector::new(),
            counters: Counters::new(),
            budget: Budget::new(config.budget_bytes),
            refill: ServiceThread::new(),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new().small_blocks());
    /// assert_eq!(alloc.config().block_capacity(), 4);
    /// ```
    pub fn config(&self) -> &AllocConfig {
        &self.config
    }

    /// The pending-memory budget.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new().budget_bytes(1 << 20));
    /// assert_eq!(alloc.budget().limit(), 1 << 20);
    /// assert_eq!(alloc.budget().pending(), 0);
    /// ```
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Block size in bytes.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// assert_eq!(BlockAllocator::new(AllocConfig::new()).block_bytes(), 4096);
    /// ```
    pub fn block_bytes(&self) -> usize {
        self.config.block_bytes
    }

    /// Makes block requests of `policy` fail as `config` says (for tests).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, FaultConfig, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.inject_faults(Policy::Reclaim, FaultConfig::every_nth(1));
    /// let mut cache = ThreadCache::new();
    /// assert!(alloc.get(Policy::Reclaim, &mut cache).is_none()); // failed on purpose
    /// assert_eq!(alloc.stats().alloc_failures_injected, 1);
    /// ```
    pub fn inject_faults(&self, policy: Policy, config: FaultConfig) {
        self.faults.configure(policy, config);
    }

    /// A block for a caller running under `policy`, using `cache` first (and topping it up
    /// from the pool under policies that may block). `None` means no block can be had under
    /// this policy right now: the caller falls back.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// assert!(alloc.get(Policy::NoWait, &mut cache).is_none()); // empty pool, may not allocate
    /// alloc.refill_pool(); // what the refill worker does
    /// let block = alloc.get(Policy::NoWait, &mut cache).expect("the pool has blocks now");
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// alloc.put_cache(&mut cache);
    /// ```
    pub fn get(&self, policy: Policy, cache: &mut ThreadCache) -> Option<NonNull<Block>> {
        if self.faults.should_fail(policy) {
            Counters::add(&self.counters.alloc_failures_injected, 1);
            return None;
        }
        // The sources of `policy`'s row of the table, in order.
        for &source in policy.rules().sources {
            match source {
                BlockSource::ThreadCache => {
                    if let Some(block) = cache.pop() {
                        return Some(block);
                    }
                }
                BlockSource::Pool => {
                    if let Some(block) = self.pool.pop() {
                        Counters::add(&self.counters.pool_hits, 1);
                        if policy.may_block() {
                            self.top_up(cache);
                        }
                        if self.pool.len() < self.config.pool_low {
                            self.refill.wake();
                        }
                        return Some(block);
                    }
                    self.refill.wake();
                }
                BlockSource::GlobalAllocator => {
                    if let Some(block) = self.allocate() {
                        return Some(block);
                    }
                    Counters::add(&self.counters.alloc_failures_real, 1);
                }
                BlockSource::Shrinkers => {
                    let (_, calls, panics) = shrinker::shrink_all();
                    Counters::add(&self.counters.shrinker_calls, calls);
                    Counters::add(&self.counters.shrinker_panics, panics);
                    if let Some(block) = self.allocate() {
                        return Some(block);
                    }
                    Counters::add(&self.counters.alloc_failures_real, 1);
                }
            }
        }
        if !policy.may_alloc() {
            Counters::add(&self.counters.pool_empty, 1);
        }
        None
    }

    /// Tops `cache` up from the pool while the caller is at the pool anyway.
    fn top_up(&self, cache: &mut ThreadCache) {
        while cache.len() < self.config.thread_cache_blocks {
            let Some(extra) = self.pool.pop() else { break };
            let limit = self.config.thread_cache_blocks;
            // SAFETY: (1) pooled blocks are this crate's; (2) popped, so ours; (3) blocks are
            // pooled empty (`put`'s and `put_to_pool`'s condition 3).
            if let Err(extra) = unsafe { cache.push(extra, limit) } {
                // SAFETY: as above; `push` handed it back.
                unsafe { self.put(extra) };
                break;
            }
        }
    }

    /// Returns an empty block: to the pool, or to the global allocator if the pool is full.
    /// Callers: threads that may call the global allocator.
    ///
    /// # Safety
    /// 1. `block` is a block of this crate: `get` or `ThreadCache::pop` returned it. (Normally
    ///    this allocator's; another `BlockAllocator`'s is sound, since a block records its own
    ///    size, but skews both allocators' statistics.)
    /// 2. The caller owns it and gives it up: it is in no list, cache or pool, and nobody uses
    ///    it afterwards.
    /// 3. It holds no entries (`Block::drain` it first): the block's next user would find
    ///    them and could run entries it never queued.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// assert_eq!(alloc.stats().blocks_pooled, 1);
    /// ```
    pub unsafe fn put(&self, block: NonNull<Block>) {
        // SAFETY: (1)-(3) are the caller's.
        if let Err(block) = unsafe { self.pool.push(block) } {
            // SAFETY: (1) and (2) are the caller's; the pool handed the block back.
            unsafe { self.free(block) };
        }
    }

    /// Returns an empty block to the pool only: never calls the global allocator, so any
    /// policy may; gives the block back if the pool is full (the caller still owns it then).
    ///
    /// # Safety
    /// As for [`BlockAllocator::put`]:
    /// 1. `block` is a block of this crate: `get` or `ThreadCache::pop` returned it.
    /// 2. The caller owns it and gives it up (unless it is handed back): it is in no list,
    ///    cache or pool, and nobody uses it afterwards.
    /// 3. It holds no entries.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
    /// // Never calls the global allocator: fine for any policy. A full pool hands it back.
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// if let Err(block) = unsafe { alloc.put_to_pool(block) } {
    ///     // SAFETY: as above: the pool handed it back.
    ///     unsafe { alloc.put(block) };
    /// }
    /// ```
    pub unsafe fn put_to_pool(&self, block: NonNull<Block>) -> Result<(), NonNull<Block>> {
        // SAFETY: (1)-(3) are the caller's.
        unsafe { self.pool.push(block) }
    }

    /// Returns a thread's cached blocks (at thread exit). Safe: a cache holds only blocks
    /// that satisfy `put`'s conditions (`ThreadCache::push` requires them).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { cache.push(block, 4) }.unwrap();
    /// alloc.put_cache(&mut cache); // e.g. at thread exit
    /// assert!(cache.is_empty());
    /// ```
    pub fn put_cache(&self, cache: &mut ThreadCache) {
        while let Some(block) = cache.pop() {
            // SAFETY: (1)-(3) were promised to `ThreadCache::push` (or `get` filled the cache
            // from the pool); popped, so ours.
            unsafe { self.put(block) };
        }
    }

    fn allocate(&self) -> Option<NonNull<Block>> {
        let block = Block::allocate(self.config.block_bytes)?;
        Counters::add(&self.counters.blocks_allocated, 1);
        Some(block)
    }

    /// Frees a block to the global allocator, counting it.
    ///
    /// # Safety
    /// 1. `block` is a block of this crate (`Block::allocate` made it).
    /// 2. The caller owns it and nobody uses it afterwards.
    unsafe fn free(&self, block: NonNull<Block>) {
        // SAFETY: (1) and (2) are `Block::free`'s.
        unsafe { Block::free(block) };
        Counters::add(&self.counters.blocks_freed, 1);
    }

    /// Tops the pool up to its high watermark (the refill worker's job; callable by any
    /// thread that may allocate).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new().pool_watermarks(2, 8));
    /// alloc.refill_pool();
    /// assert_eq!(alloc.stats().blocks_pooled, 8);
    /// assert_eq!(alloc.stats().refills, 1);
    /// ```
    pub fn refill_pool(&self) {
        let mut added = false;
        while self.pool.len() < self.config.pool_high {
            let Some(block) = self.allocate() else { break };
            // SAFETY: (1) just allocated, (2) by us, (3) empty.
            if let Err(block) = unsafe { self.pool.push(block) } {
                // SAFETY: (1) just allocated; (2) the pool handed it back.
                unsafe { self.free(block) };
                break;
            }
            added = true;
        }
        if added {
            Counters::add(&self.counters.refills, 1);
        }
    }

    /// Stops the refill worker (if running) and waits for it.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new());
    /// BlockAllocator::start_refill(&ALLOC, "doc");
    /// ALLOC.stop_refill();
    /// ```
    pub fn stop_refill(&self) {
        self.refill.stop();
    }

    /// Asks the refill worker (if running) to stop, without waiting for it.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new());
    /// BlockAllocator::start_refill(&ALLOC, "doc-async");
    /// ALLOC.request_stop_refill(); // returns at once; the worker exits by itself
    /// ```
    pub fn request_stop_refill(&self) {
        self.refill.request_stop();
    }

    /// Counts a fallback taken by the runtime.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, FallbackReason, Policy};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.note_fallback(Policy::NoWait, FallbackReason::NoBlock);
    /// assert_eq!(alloc.stats().fallbacks_of(Policy::NoWait, FallbackReason::NoBlock), 1);
    /// ```
    pub fn note_fallback(&self, policy: Policy, reason: FallbackReason) {
        self.counters.fallback(policy, reason);
    }

    /// Counts a backpressure wait (a `Reclaim` caller waited for pending memory to drain).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.note_backpressure();
    /// assert_eq!(alloc.stats().backpressure_waits, 1);
    /// ```
    pub fn note_backpressure(&self) {
        Counters::add(&self.counters.backpressure_waits, 1);
    }

    /// A snapshot of the statistics.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let stats = alloc.stats();
    /// assert_eq!((stats.blocks_allocated, stats.blocks_pooled), (0, 0));
    /// assert!(stats.fallbacks.is_empty());
    /// ```
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
            // SAFETY: (1) pooled blocks are this crate's; (2) popped, so ours.
            unsafe { self.free(block) };
            freed += 1;
        }
        freed
    }
}

impl Drop for BlockAllocator {
    fn drop(&mut self) {
        self.refill.stop();
        while let Some(block) = self.pool.pop() {
            // SAFETY: as in `scan`.
            unsafe { self.free(block) };
        }
    }
}
