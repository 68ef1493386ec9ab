//! The global block pool: a bounded, lock-free stack of free blocks that every policy,
//! `Atomic` included, can pop from without blocking, allocating or taking a lock.
//!
//! Nodes live in an inline array (so the pool, and with it the global domain's allocator,
//! can be a `static`) and move between two Treiber stacks of node indices: `full` (holding a
//! block) and `empty`. Each stack head packs a 32-bit index with a 32-bit tag that changes on
//! every successful update, which defeats ABA: a pop that read a stale `next` fails its CAS.
//! Every operation is one CAS loop, so a signal handler that interrupts one and uses the pool
//! itself only makes the interrupted CAS retry: reentrant, as `Atomic` paths must be.

use core::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::block::Block;

/// Most blocks the pool holds (512 KiB of 4 KiB blocks).
///
/// ```
/// use rcu_alloc::{AllocConfig, POOL_CAPACITY};
/// let config = AllocConfig::new().pool_watermarks(8, POOL_CAPACITY); // the largest pool
/// assert_eq!(config.block_capacity(), 253);
/// ```
pub const POOL_CAPACITY: usize = 128;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node {
    block: AtomicPtr<Block>,
    next: AtomicU32,
}

/// A tagged Treiber stack of node indices.
#[derive(Debug)]
struct IndexStack {
    head: AtomicU64,
}

const fn pack(tag: u64, index: u32) -> u64 {
    (tag << 32) | index as u64
}

impl IndexStack {
    fn pop(&self, nodes: &[Node]) -> Option<usize> {
        // Acquire: pairs with the Release CAS in `push`, making the node's fields visible.
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let index = head as u32;
            if index == NIL {
                return None;
            }
            // Relaxed: may be stale if the node moved meanwhile; the tag then fails the CAS.
            let next = nodes[index as usize].next.load(Ordering::Relaxed);
            // AcqRel: Acquire as above; Release keeps the tag sequence ordered for others.
            match self.head.compare_exchange_weak(
                head,
                pack((head >> 32).wrapping_add(1), next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index as usize),
                Err(actual) => head = actual,
            }
        }
    }

    fn push(&self, nodes: &[Node], index: usize) {
        // Relaxed: the CAS below publishes.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS.
            nodes[index].next.store(head as u32, Ordering::Relaxed);
            // Release: publishes the node (and its block pointer) to `pop`'s Acquire.
            match self.head.compare_exchange_weak(
                head,
                pack((head >> 32).wrapping_add(1), index as u32),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }
}

/// The pool.
#[derive(Debug)]
pub(crate) struct Pool {
    nodes: [Node; POOL_CAPACITY],
    full: IndexStack,
    empty: IndexStack,
    len: AtomicUsize,
}

impl Pool {
    pub(crate) const fn new() -> Self {
        // Every node starts on the empty stack: node i links to i + 1.
        let mut nodes =
            [const { Node { block: AtomicPtr::new(ptr::null_mut()), next: AtomicU32::new(NIL) } };
                POOL_CAPACITY];
        let mut i = 0;
        while i + 1 < POOL_CAPACITY {
            nodes[i] =
                Node { block: AtomicPtr::new(ptr::null_mut()), next: AtomicU32::new(i as u32 + 1) };
            i += 1;
        }
        Pool {
            nodes,
            full: IndexStack { head: AtomicU64::new(pack(0, NIL)) },
            empty: IndexStack { head: AtomicU64::new(pack(0, 0)) },
            len: AtomicUsize::new(0),
        }
    }

    /// Blocks currently pooled.
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a level for watermarks and stats.
        self.len.load(Ordering::Relaxed)
    }

    /// Takes a block, if any.
    pub(crate) fn pop(&self) -> Option<NonNull<Block>> {
        let index = self.full.pop(&self.nodes)?;
        // Relaxed: ordered by the Acquire in `IndexStack::pop` (Release in `push`).
        let block = self.nodes[index].block.swap(ptr::null_mut(), Ordering::Relaxed);
        self.empty.push(&self.nodes, index);
        // Relaxed: a level.
        self.len.fetch_sub(1, Ordering::Relaxed);
        NonNull::new(block)
    }

    /// Stores a block; gives it back if the pool is full (the caller still owns it then).
    ///
    /// # Safety
    /// As for `BlockAllocator::put`, whose pool this is (whoever pops a block frees it or
    /// hands it out as a fresh one):
    /// 1. `block` is a block of this crate.
    /// 2. The caller owns it and gives it up (unless it is handed back).
    /// 3. It holds no entries.
    pub(crate) unsafe fn push(&self, block: NonNull<Block>) -> Result<(), NonNull<Block>> {
        let Some(index) = self.empty.pop(&self.nodes) else {
            return Err(block);
        };
        // Relaxed: published by the Release CAS in `IndexStack::push`.
        self.nodes[index].block.store(block.as_ptr(), Ordering::Relaxed);
        self.full.push(&self.nodes, index);
        // Relaxed: a level.
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
