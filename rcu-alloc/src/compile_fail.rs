//! The compile-time spec of the allocator's API. Block ownership: every function that frees a
//! block, or stores it where it will be freed or handed out again, is `unsafe`, because only
//! the caller knows that the pointer is one of this crate's blocks and theirs to give.
//! Configuration: a `static` allocator with an invalid configuration is a compile error.
//! Each misuse is a `compile_fail` example with a compiling twin that differs only in the
//! misuse. Error codes are checked when rustdoc runs with `RUSTC_BOOTSTRAP=1` (see
//! `ci/compile-fail-codes.sh`).

/// `BlockAllocator::put` without `unsafe` does not compile. (Before, a safe `put` took any
/// pointer: `alloc.put(NonNull::from(&mut x).cast())` compiled, and dropping the allocator
/// freed a stack address.)
///
/// ```compile_fail,E0133
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// alloc.put(block);
/// ```
///
/// Twin: the caller vouches for the block.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// unsafe { alloc.put(block) };
/// ```
pub(crate) struct PutIsUnsafe;

/// `BlockAllocator::put_to_pool` without `unsafe` does not compile: the pool hands its blocks
/// out as fresh ones and frees them when shrunk or dropped.
///
/// ```compile_fail,E0133
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// let _ = alloc.put_to_pool(block);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let block = alloc.get(Policy::Reclaim, &mut ThreadCache::new()).unwrap();
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// let _ = unsafe { alloc.put_to_pool(block) };
/// ```
pub(crate) struct PutToPoolIsUnsafe;

/// `ThreadCache::push` without `unsafe` does not compile: `get` hands cached blocks out as
/// fresh ones and `put_cache` (a safe call) frees them.
///
/// ```compile_fail,E0133
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let mut cache = ThreadCache::new();
/// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
/// let _ = cache.push(block, 4);
/// alloc.put_cache(&mut cache);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let mut cache = ThreadCache::new();
/// let block = alloc.get(Policy::Reclaim, &mut cache).unwrap();
/// // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
/// let _ = unsafe { cache.push(block, 4) };
/// alloc.put_cache(&mut cache);
/// ```
pub(crate) struct ThreadCachePushIsUnsafe;

/// A pointer that is not a block at all cannot be handed over without `unsafe` either: this
/// is the misuse that used to compile and abort.
///
/// ```compile_fail,E0133
/// use core::ptr::NonNull;
/// use rcu_alloc::{AllocConfig, BlockAllocator};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let mut x = 0u64;
/// alloc.put(NonNull::from(&mut x).cast());
/// ```
///
/// Twin: the same program without the hand-over compiles (there is no sound version of it).
///
/// ```
/// use core::ptr::NonNull;
/// use rcu_alloc::{AllocConfig, BlockAllocator};
/// let alloc = BlockAllocator::new(AllocConfig::new());
/// let mut x = 0u64;
/// let _not_a_block: NonNull<rcu_alloc::Block> = NonNull::from(&mut x).cast();
/// # drop(alloc);
/// ```
pub(crate) struct ForeignPointerIsUnsafe;

/// A `static` allocator whose configuration fails `AllocConfig::validate` does not compile:
/// `BlockAllocator::new` checks it during constant evaluation.
///
/// ```compile_fail,E0080
/// use rcu_alloc::{AllocConfig, BlockAllocator};
/// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new().block_bytes(16));
/// assert_eq!(ALLOC.block_bytes(), 16);
/// ```
///
/// Twin: a block size in range.
///
/// ```
/// use rcu_alloc::{AllocConfig, BlockAllocator};
/// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new().block_bytes(4096));
/// assert_eq!(ALLOC.block_bytes(), 4096);
/// ```
pub(crate) struct InvalidStaticConfig;
