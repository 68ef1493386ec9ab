//! Allocation policy for deferred reclamation, decided from the context token's type.
//!
//! [`Policy::of`] maps a token type to the policy its calls run under, as a `const`: the
//! compiler picks the code path, nothing inspects the thread at run time. The rest of the
//! crate is the machinery the policies choose between:
//!
//! - [`Block`]s batch deferred frees and callbacks (4 KiB, 253 entries by default);
//! - a per-thread [`ThreadCache`], a lock-free global pool inside each [`BlockAllocator`]
//!   that `Atomic` callers may take from, and a refill worker that keeps the pool stocked;
//! - a [`Budget`] for pending reclamation;
//! - [`AllocConfig`], whose [`AllocConfig::validate`] names a bad field ([`ConfigError`])
//!   before anything is built;
//! - [`Shrinker`]s, run only under the `Reclaim` policy;
//! - fault injection ([`FaultConfig`]) so every fallback path runs in tests;
//! - [`AllocStats`], with fallbacks counted by policy and [`FallbackReason`].
//!
//! Only policy lives here: the refill worker's thread is an `rcu_sys::ServiceThread` and the
//! shrinker registry an `rcu_sys::ForkLock` (`rcu-sys` holds the OS and threading primitives).
//!
//! Users reach all of this through `rcu-core` (`Domain::alloc_stats`, `DomainConfig::alloc`,
//! `Domain::inject_faults`, `register_shrinker`); the types are public so the runtime and its
//! tests can drive them directly:
//!
//! ```
//! use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
//!
//! let alloc = BlockAllocator::new(AllocConfig::new());
//! let mut cache = ThreadCache::new();
//! // An `Atomic` caller never calls the global allocator: with an empty pool, no block.
//! assert!(alloc.get(Policy::NoWait, &mut cache).is_none());
//! // A caller that may allocate gets one, and hands it back when done.
//! let block = alloc.get(Policy::NoReclaim, &mut cache).expect("may allocate");
//! // SAFETY: (1) `block` came from `get`; (2) ours, not used afterwards; (3) empty.
//! unsafe { alloc.put(block) };
//! assert_eq!(alloc.stats().blocks_allocated, 1);
//! ```

mod allocator;
mod block;
mod budget;
#[cfg(doctest)]
mod compile_fail;
mod config;
mod fault;
mod policy;
mod pool;
mod refill;
mod shrinker;
mod stats;
mod thread_cache;

pub use allocator::BlockAllocator;
pub use block::{capacity_for, Block, Drain, Entry, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES};
pub use budget::Budget;
pub use config::{AllocConfig, ConfigError};
pub use fault::FaultConfig;
pub use policy::{BlockSource, NoBlock, OverBudget, Policy, Rules, POLICY_TABLE};
pub use pool::POOL_CAPACITY;
pub use shrinker::{
    hold_registry_for_fork, register_shrinker, release_registry_after_fork, Shrinker,
    ShrinkerHandle,
};
pub use stats::{AllocStats, FallbackReason};
pub use thread_cache::{ThreadCache, MAX_THREAD_CACHE};
