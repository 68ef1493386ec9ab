//! A thread's private stash of empty blocks, so most block requests touch no shared state.
//!
//! Owned by one thread and used only by it (the runtime guards it against its own signal
//! handlers), so it is a plain array with no synchronization. What goes in is freed later
//! (`BlockAllocator::put_cache`), so `push` is `unsafe`: the caller vouches for the block.

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
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { cache.push(block, 4) }.unwrap();
/// assert_eq!(cache.len(), 1);
/// let again = alloc.get(Policy::NoWait, &mut cache).unwrap(); // served from the cache
/// assert!(cache.is_empty());
/// // SAFETY: (1) `again` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { alloc.put(again) };
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
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { cache.push(block, 1) }.unwrap();
    /// let block = cache.pop().unwrap(); // ours again
    /// // SAFETY: (1) from `pop`; (2) ours, not used afterwards; (3) empty.
    /// unsafe { alloc.put(block) };
    /// ```
    pub fn pop(&mut self) -> Option<NonNull<Block>> {
        self.len = self.len.checked_sub(1)?;
        self.blocks[self.len].take()
    }

    /// Stores a block unless `limit` (at most `MAX_THREAD_CACHE`) are held already; gives
    /// it back otherwise (the caller still owns it then).
    ///
    /// # Safety
    /// As for `BlockAllocator::put`, since the cache hands its blocks out as fresh ones and
    /// `BlockAllocator::put_cache` frees them:
    /// 1. `block` is a block of this crate: `BlockAllocator::get` or `ThreadCache::pop`
    ///    returned it.
    /// 2. The caller owns it and gives it up (unless it is handed back): it is in no list,
    ///    cache or pool, and nobody uses it afterwards.
    /// 3. It holds no entries.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// let mut cache = ThreadCache::new();
    /// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
    /// // A limit of 0 keeps nothing: the block comes back.
    /// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
    /// let block = unsafe { cache.push(block, 0) }.unwrap_err();
    /// // SAFETY: as above: `push` handed it back.
    /// unsafe { alloc.put(block) };
    /// ```
    pub unsafe fn push(
        &mut self,
        block: NonNull<Block>,
        limit: usize,
    ) -> Result<(), NonNull<Block>> {
        if self.len >= limit.min(MAX_THREAD_CACHE) {
            return Err(block);
        }
        self.blocks[self.len] = Some(block);
        self.len += 1;
        Ok(())
    }
}
