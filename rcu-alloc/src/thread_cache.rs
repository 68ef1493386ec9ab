//! A thread's private stash of empty blocks, so most block requests touch no shared state.
//!
//! Owned by one thread and used only by it (the runtime guards it against its own signal
//! handlers), so it is a plain array with no synchronization.

use core::ptr::NonNull;

use crate::block::Block;

/// Most blocks a thread cache can hold; the configured size is at most this.
pub const MAX_THREAD_CACHE: usize = 16;

/// A small LIFO of empty blocks.
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
    pub const fn new() -> Self {
        ThreadCache { blocks: [None; MAX_THREAD_CACHE], len: 0 }
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds no block.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes a block, if any.
    pub fn pop(&mut self) -> Option<NonNull<Block>> {
        self.len = self.len.checked_sub(1)?;
        self.blocks[self.len].take()
    }

    /// Stores a block unless `limit` (at most `MAX_THREAD_CACHE`) are held already.
    pub fn push(&mut self, block: NonNull<Block>, limit: usize) -> Result<(), NonNull<Block>> {
        if self.len >= limit.min(MAX_THREAD_CACHE) {
            return Err(block);
        }
        self.blocks[self.len] = Some(block);
        self.len += 1;
        Ok(())
    }
}
