//! The allocator's configuration.

use crate::block::MIN_BLOCK_BYTES;
use crate::pool::POOL_CAPACITY;
use crate::thread_cache::MAX_THREAD_CACHE;

/// How blocks are sized and cached, and how much pending memory a domain may hold.
///
/// ```
/// use rcu_alloc::AllocConfig;
/// let config = AllocConfig::new().budget_bytes(8 << 20).thread_cache_blocks(2);
/// assert_eq!(config.block_capacity(), 253); // entries in a 4 KiB block
/// assert_eq!(AllocConfig::new().small_blocks().block_capacity(), 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocConfig {
    pub(crate) block_bytes: usize,
    pub(crate) thread_cache_blocks: usize,
    pub(crate) pool_low: usize,
    pub(crate) pool_high: usize,
    pub(crate) budget_bytes: usize,
}

impl Default for AllocConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AllocConfig {
    /// Defaults: 4 KiB blocks, 4 cached per thread, pool refilled to 32 when below 8, a
    /// 64 MiB budget for pending reclamation.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// const CONFIG: AllocConfig = AllocConfig::new();
    /// assert_eq!(CONFIG.block_capacity(), 253);
    /// assert_eq!(CONFIG.budget(), 64 << 20);
    /// ```
    pub const fn new() -> Self {
        AllocConfig {
            block_bytes: 4096,
            thread_cache_blocks: 4,
            pool_low: 8,
            pool_high: 32,
            budget_bytes: 64 << 20,
        }
    }

    /// The test configuration that makes rare paths frequent: blocks of 4 entries, no thread
    /// cache and a tiny pool, so blocks fill, run out and fall back all the time.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// let config = AllocConfig::new().small_blocks();
    /// assert_eq!(config.block_capacity(), 4);
    /// assert_eq!(config.thread_cache_limit(), 0);
    /// ```
    pub const fn small_blocks(self) -> Self {
        AllocConfig {
            block_bytes: MIN_BLOCK_BYTES + 2 * core::mem::size_of::<crate::Entry>(),
            thread_cache_blocks: 0,
            pool_low: 1,
            pool_high: 2,
            ..self
        }
    }

    /// Bytes per block (at least `MIN_BLOCK_BYTES`).
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().block_bytes(8192).block_capacity(), 509);
    /// ```
    pub fn block_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes >= MIN_BLOCK_BYTES,
            "rcu-alloc: AllocConfig::block_bytes({bytes}) is too small: a block needs its header \
             and room for two entries. Fix: pass at least MIN_BLOCK_BYTES ({MIN_BLOCK_BYTES})"
        );
        self.block_bytes = bytes;
        self
    }

    /// Empty blocks each thread keeps at hand (at most `MAX_THREAD_CACHE`).
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().thread_cache_blocks(8).thread_cache_limit(), 8);
    /// ```
    pub fn thread_cache_blocks(mut self, blocks: usize) -> Self {
        assert!(
            blocks <= MAX_THREAD_CACHE,
            "rcu-alloc: AllocConfig::thread_cache_blocks({blocks}) is too large: a thread caches \
             at most MAX_THREAD_CACHE ({MAX_THREAD_CACHE}) blocks. Fix: pass a smaller count"
        );
        self.thread_cache_blocks = blocks;
        self
    }

    /// The refill worker tops the pool up to `high` blocks whenever it falls below `low`.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new().pool_watermarks(4, 16));
    /// alloc.refill_pool();
    /// assert_eq!(alloc.stats().blocks_pooled, 16);
    /// ```
    pub fn pool_watermarks(mut self, low: usize, high: usize) -> Self {
        assert!(
            low <= high && high <= POOL_CAPACITY,
            "rcu-alloc: AllocConfig::pool_watermarks({low}, {high}) out of range: the refill \
             worker tops the pool up from below `low` to `high`, and the pool holds at most \
             POOL_CAPACITY blocks. Fix: pass low <= high <= {POOL_CAPACITY}"
        );
        self.pool_low = low;
        self.pool_high = high;
        self
    }

    /// Bytes of pending reclamation (queued objects plus their blocks) before the policy's
    /// over-budget behaviour starts.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().budget_bytes(1 << 20).budget(), 1 << 20);
    /// ```
    pub fn budget_bytes(mut self, bytes: usize) -> Self {
        self.budget_bytes = bytes;
        self
    }

    /// Empty blocks each thread keeps at hand.
    ///
    /// ```
    /// assert_eq!(rcu_alloc::AllocConfig::new().thread_cache_limit(), 4);
    /// ```
    pub const fn thread_cache_limit(&self) -> usize {
        self.thread_cache_blocks
    }

    /// Entries per block.
    ///
    /// ```
    /// assert_eq!(rcu_alloc::AllocConfig::new().block_capacity(), 253);
    /// ```
    pub const fn block_capacity(&self) -> usize {
        crate::block::capacity_for(self.block_bytes)
    }

    /// The configured budget in bytes.
    ///
    /// ```
    /// assert_eq!(rcu_alloc::AllocConfig::new().budget_bytes(4096).budget(), 4096);
    /// ```
    pub const fn budget(&self) -> usize {
        self.budget_bytes
    }
}
