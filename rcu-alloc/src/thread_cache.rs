//! A thread's private stash of empty blocks, so most block requests touch no shared state.
//!
//! Owned by one thread and used only by it (the runtime guards it against its own signal
//! handlers), so it is a plain array with no synchronization.

use core::ptr::NonNull;

use crate::block::Block;

/// Most blocks a thread cache can hold; the configured size is at most this.
///
/// ```
/// use rcu_alloc::{AllocConfig, MAX_THREAD_CACHE};
/// let config = AllocConfig::new().thread_cache_blocks(MAX_THREAD_CACHE);
/// assert_eq!(config.thread_cache_limit(), 16);
/// ```
pub const MAX_THREAD_CACHE: usize = 16;

/// A small LIFO of empty blocks.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let mut cache = ThreadCache::new();
/// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
/// cache.push(block, 4).unwrap();
/// assert_eq!(cache.len(), 1);
/// let again = alloc.get(Policy::NoWait, &mut cache); // served from the cache
/// assert!(again.is_some() && cache.is_empty());
/// alloc.put(again.unwrap());
/// ```
#[derive(Debug)]
pub struct ThreadCache {
    blocks: [Option<NonNull<Block>>; MAX_THREAD_CACHE],
    len: usize,
}

impl Default for ThreadCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadCache {
    /// An empty cache.
    ///
    /// ```
    /// let cache = rcu_alloc::ThreadCache::new();
    /// assert!(cache.is_empty());
    /// ```
    pub const fn new() -> Self {
        ThreadCache { blocks: [None; MAX_THREAD_CACHE], len: 0 }
    }

    /// Blocks held.
    ///
    /// ```
    /// assert_eq!(rcu_alloc::ThreadCache::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds no block.
    ///
    /// ```
    /// assert!(rcu_alloc::ThreadCache::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes a block, if any.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// assert!(cache.pop().is_none());
    /// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// cache.push(block, 1).unwrap();
    /// alloc.put(cache.pop().unwrap());
    /// ```
    pub fn pop(&mut self) -> Option<NonNull<Block>> {
        self.len = self.len.checked_sub(1)?;
        self.blocks[self.len].take()
    }

    /// Stores a block unless `limit` (at most `MAX_THREAD_CACHE`) are held already.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// // A limit of 0 keeps nothing: the block comes back.
    /// let block = cache.push(block, 0).unwrap_err();
    /// alloc.put(block);
    /// ```
    pub fn push(&mut self, block: NonNull<Block>, limit: usize) -> Result<(), NonNull<Block>> {
        if self.len >= limit.min(MAX_THREAD_CACHE) {
            return Err(block);
        }
        self.blocks[self.len] = Some(block);
        self.len += 1;
        Ok(())
    }
}
