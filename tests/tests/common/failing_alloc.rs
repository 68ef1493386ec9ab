//! A global allocator that fails, on request and only on the requesting thread, allocations
//! of one distinctive block layout: how a test reaches the shrinkers, which run only after a
//! *real* allocation failure under the `Reclaim` policy (fault injection fails a request
//! before the allocator is tried). The same as `reclaim_policy.rs`'s, for the test files that
//! include it with `#[path = "common/failing_alloc.rs"] mod failing_alloc;` (it installs the
//! binary's `#[global_allocator]`, so only those files may include it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rcu_core::AllocConfig;

/// Block size of the domains whose allocations fail on request: nothing else in the process
/// allocates this size with 64-byte alignment.
pub(crate) const FAILING_BLOCK_BYTES: usize = 3008;

thread_local! {
    static FAIL_BLOCKS: Cell<bool> = const { Cell::new(false) };
}

/// Forwards to `System`, except for the blocks [`FailBlocks`] makes fail.
pub(crate) struct FailingAlloc;

fn should_fail(layout: Layout) -> bool {
    layout.size() == FAILING_BLOCK_BYTES
        && layout.align() == 64
        && FAIL_BLOCKS.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to `System` unchanged, except that it may return null from `alloc`, which
// `GlobalAlloc` permits (allocation failure).
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if should_fail(layout) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: FailingAlloc = FailingAlloc;

/// Makes this thread's block allocations (of [`FAILING_BLOCK_BYTES`]) fail while it lives.
pub(crate) struct FailBlocks;

impl FailBlocks {
    pub(crate) fn on() -> Self {
        FAIL_BLOCKS.with(|f| f.set(true));
        FailBlocks
    }
}

impl Drop for FailBlocks {
    fn drop(&mut self) {
        FAIL_BLOCKS.with(|f| f.set(false));
    }
}

/// A domain allocator whose every block request reaches the global allocator: no thread
/// cache, no pool, blocks of [`FAILING_BLOCK_BYTES`]. Under [`FailBlocks`] a `Sleepable`
/// call that needs a block fails for real, so the shrinkers run.
pub(crate) fn failing_blocks() -> AllocConfig {
    AllocConfig::new().block_bytes(FAILING_BLOCK_BYTES).thread_cache_blocks(0).pool_watermarks(0, 0)
}
