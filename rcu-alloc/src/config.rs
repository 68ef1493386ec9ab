//! The allocator's configuration, and the error that names a configuration value the
//! runtime cannot work with.
//!
//! Setters store what they are given; [`AllocConfig::validate`] checks every field at once,
//! before anything is built (`Domain::try_new` calls it, `BlockAllocator::new` insists on it).

use std::borrow::Cow;

use crate::block::{MAX_BLOCK_BYTES, MIN_BLOCK_BYTES};
use crate::pool::POOL_CAPACITY;
use crate::thread_cache::MAX_THREAD_CACHE;

/// A configuration value the runtime cannot work with, found before anything was built or
/// started. It names the field (`Type.field`), what is wrong with the value, the rule and the
/// fix; `Display` prints them as one line.
///
/// ```
/// use rcu_alloc::AllocConfig;
/// let err = AllocConfig::new().block_bytes(usize::MAX).validate().unwrap_err();
/// assert_eq!(err.field(), "AllocConfig.block_bytes");
/// let message = err.to_string();
/// assert!(message.starts_with("AllocConfig.block_bytes is 18446744073709551615"), "{message}");
/// let _: &dyn std::error::Error = &err; // usable with `?` and error-reporting crates
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    problem: String,
    rule: Cow<'static, str>,
}

impl ConfigError {
    /// An error about `field` (written `Type.field`): `problem` says what is wrong with its
    /// value, `rule` why that cannot work and what to pass instead. For configuration layers
    /// built on this crate's; the runtime's own checks make theirs with it too.
    ///
    /// ```
    /// use rcu_alloc::ConfigError;
    /// let err = ConfigError::new(
    ///     "ServerConfig.workers",
    ///     "is 0",
    ///     "nobody would serve requests. Fix: pass at least 1",
    /// );
    /// assert_eq!(err.to_string(), "ServerConfig.workers is 0: nobody would serve requests. Fix: pass at least 1");
    /// ```
    pub fn new(
        field: &'static str,
        problem: impl Into<String>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError { field, problem: problem.into(), rule: rule.into() }
    }

    /// The field, as `Type.field`.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// let err = AllocConfig::new().thread_cache_blocks(1000).validate().unwrap_err();
    /// assert_eq!(err.field(), "AllocConfig.thread_cache_blocks");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} {}: {}", self.field, self.problem, self.rule)
    }
}

impl std::error::Error for ConfigError {}

/// The first invalid field of an `AllocConfig`, found by a `const fn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Invalid {
    BlockBytes,
    ThreadCacheBlocks,
    PoolWatermarks,
}

/// How blocks are sized and cached, and how much pending memory a domain may hold.
///
/// The setters accept any value; [`AllocConfig::validate`] says which ones the runtime cannot
/// work with, and `Domain::try_new` (or `BlockAllocator::new`) rejects them.
///
/// ```
/// use rcu_alloc::AllocConfig;
/// let config = AllocConfig::new().budget_bytes(8 << 20).thread_cache_blocks(2);
/// assert!(config.validate().is_ok());
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

    /// Bytes per block, `MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES` (checked by
    /// [`AllocConfig::validate`]). A block holds a header and as many entries as fit.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().block_bytes(8192).block_capacity(), 509);
    /// assert!(AllocConfig::new().block_bytes(usize::MAX).validate().is_err());
    /// ```
    pub const fn block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes;
        self
    }

    /// Empty blocks each thread keeps at hand, at most `MAX_THREAD_CACHE` (checked by
    /// [`AllocConfig::validate`]); 0 disables the cache.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().thread_cache_blocks(8).thread_cache_limit(), 8);
    /// ```
    pub const fn thread_cache_blocks(mut self, blocks: usize) -> Self {
        self.thread_cache_blocks = blocks;
        self
    }

    /// The refill worker tops the pool up to `high` blocks whenever it falls below `low`;
    /// `low <= high <= POOL_CAPACITY` (checked by [`AllocConfig::validate`]). `(0, 0)` keeps
    /// no pool: `Atomic` callers then find blocks only in their thread's cache.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new().pool_watermarks(4, 16));
    /// alloc.refill_pool();
    /// assert_eq!(alloc.stats().blocks_pooled, 16);
    /// ```
    pub const fn pool_watermarks(mut self, low: usize, high: usize) -> Self {
        self.pool_low = low;
        self.pool_high = high;
        self
    }

    /// Bytes of pending reclamation (queued objects plus their blocks) before the policy's
    /// over-budget behaviour starts. Any value is valid: 0 (or less than a block) means
    /// always over budget (every `Sleepable` caller waits for the queue to drain, the other
    /// tokens fall back), `usize::MAX` means no budget.
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert_eq!(AllocConfig::new().budget_bytes(1 << 20).budget(), 1 << 20);
    /// ```
    pub const fn budget_bytes(mut self, bytes: usize) -> Self {
        self.budget_bytes = bytes;
        self
    }

    /// Checks every field, so that a bad value is reported by name before anything is built
    /// rather than failing later inside a worker or at the first block:
    ///
    /// | field | valid | why |
    /// |---|---|---|
    /// | `block_bytes` | `MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES` (80 bytes to 1 MiB) | a block holds its header and at least two entries; larger blocks batch no better and make every cached or pooled block that large |
    /// | `thread_cache_blocks` | `0..=MAX_THREAD_CACHE` (16) | the cache is a fixed array |
    /// | `pool_watermarks(low, high)` | `low <= high <= POOL_CAPACITY` (128) | the pool is a fixed array; the worker refills from below `low` up to `high` |
    /// | `budget_bytes` | any | see [`AllocConfig::budget_bytes`] |
    ///
    /// ```
    /// use rcu_alloc::AllocConfig;
    /// assert!(AllocConfig::new().validate().is_ok());
    /// let err = AllocConfig::new().pool_watermarks(9, 8).validate().unwrap_err();
    /// assert_eq!(err.field(), "AllocConfig.pool_watermarks");
    /// println!("{err}"); // names the values, the rule and the fix
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(invalid) = self.first_invalid() else { return Ok(()) };
        Err(match invalid {
            Invalid::BlockBytes => ConfigError::new(
                "AllocConfig.block_bytes",
                format!("is {}, out of range", self.block_bytes),
                format!(
                    "a block holds its header and at least two entries (MIN_BLOCK_BYTES = \
                     {MIN_BLOCK_BYTES}), and at most MAX_BLOCK_BYTES = {MAX_BLOCK_BYTES} (larger \
                     blocks batch no better, and every cached, pooled or parked block would be \
                     that large). Fix: pass a size in {MIN_BLOCK_BYTES}..={MAX_BLOCK_BYTES} (the \
                     default is 4096)"
                ),
            ),
            Invalid::ThreadCacheBlocks => ConfigError::new(
                "AllocConfig.thread_cache_blocks",
                format!("is {}, too large", self.thread_cache_blocks),
                format!(
                    "a thread caches at most MAX_THREAD_CACHE = {MAX_THREAD_CACHE} blocks. Fix: \
                     pass 0..={MAX_THREAD_CACHE} (the default is 4)"
                ),
            ),
            Invalid::PoolWatermarks => ConfigError::new(
                "AllocConfig.pool_watermarks",
                format!("are (low {}, high {}), out of range", self.pool_low, self.pool_high),
                format!(
                    "the refill worker tops the pool up from below `low` to `high`, and the pool \
                     holds at most POOL_CAPACITY = {POOL_CAPACITY} blocks. Fix: pass low <= high \
                     <= {POOL_CAPACITY} (the defaults are 8 and 32)"
                ),
            ),
        })
    }

    /// The first field `validate` rejects, if any (a `const fn`, for `BlockAllocator::new`).
    const fn first_invalid(&self) -> Option<Invalid> {
        if self.block_bytes < MIN_BLOCK_BYTES || self.block_bytes > MAX_BLOCK_BYTES {
            Some(Invalid::BlockBytes)
        } else if self.thread_cache_blocks > MAX_THREAD_CACHE {
            Some(Invalid::ThreadCacheBlocks)
        } else if self.pool_low > self.pool_high || self.pool_high > POOL_CAPACITY {
            Some(Invalid::PoolWatermarks)
        } else {
            None
        }
    }

    /// Panics unless `validate` would pass. `const`: in a `static`, a compile error.
    #[track_caller]
    pub(crate) const fn assert_valid(&self) {
        match self.first_invalid() {
            None => {}
            Some(Invalid::BlockBytes) => panic!(
                "rcu-alloc: AllocConfig.block_bytes out of range: a block holds its header and \
                 two entries at least (MIN_BLOCK_BYTES) and MAX_BLOCK_BYTES (1 MiB) at most. \
                 Fix: check configurations with AllocConfig::validate(), which gives the values"
            ),
            Some(Invalid::ThreadCacheBlocks) => panic!(
                "rcu-alloc: AllocConfig.thread_cache_blocks too large: a thread caches at most \
                 MAX_THREAD_CACHE (16) blocks. Fix: check configurations with \
                 AllocConfig::validate(), which gives the values"
            ),
            Some(Invalid::PoolWatermarks) => panic!(
                "rcu-alloc: AllocConfig.pool_watermarks out of range: low <= high <= \
                 POOL_CAPACITY (128) is required. Fix: check configurations with \
                 AllocConfig::validate(), which gives the values"
            ),
        }
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
