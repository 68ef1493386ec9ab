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
    pub fn block_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes >= MIN_BLOCK_BYTES,
            "rcu-alloc: blocks need at least {MIN_BLOCK_BYTES} bytes"
        );
        self.block_bytes = bytes;
        self
    }

    /// Empty blocks each thread keeps at hand (at most `MAX_THREAD_CACHE`).
    pub fn thread_cache_blocks(mut self, blocks: usize) -> Self {
        assert!(blocks <= MAX_THREAD_CACHE, "rcu-alloc: at most {MAX_THREAD_CACHE} cached blocks");
        self.thread_cache_blocks = blocks;
        self
    }

    /// The refill worker tops the pool up to `high` blocks whenever it falls below `low`.
    pub fn pool_watermarks(mut self, low: usize, high: usize) -> Self {
        assert!(
            low <= high && high <= POOL_CAPACITY,
            "rcu-alloc: need low <= high <= {POOL_CAPACITY}"
        );
        self.pool_low = low;
        self.pool_high = high;
        self
    }

    /// Bytes of pending reclamation (queued objects plus their blocks) before the policy's
    /// over-budget behaviour starts.
    pub fn budget_bytes(mut self, bytes: usize) -> Self {
        self.budget_bytes = bytes;
        self
    }

    /// Empty blocks each thread keeps at hand.
    pub const fn thread_cache_limit(&self) -> usize {
        self.thread_cache_blocks
    }

    /// Entries per block.
    pub const fn block_capacity(&self) -> usize {
        crate::block::capacity_for(self.block_bytes)
    }

    /// The configured budget in bytes.
    pub const fn budget(&self) -> usize {
        self.budget_bytes
    }
}
