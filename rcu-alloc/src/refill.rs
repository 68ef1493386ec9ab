//! The refill worker: a sleepable thread that keeps an allocator's pool above its low
//! watermark, so that `Atomic` callers (which may only take from the pool) find blocks.
//!
//! Woken (a futex wake: no lock, no allocation, async-signal-safe) whenever a request finds
//! the pool low or empty.

use std::ops::Deref;
use std::time::Duration;

use crate::allocator::BlockAllocator;

/// Defensive bound on one idle sleep: a lost wake-up costs latency, not blocks forever.
const MAX_IDLE: Duration = Duration::from_millis(500);

impl BlockAllocator {
    /// Starts the refill worker unless it runs. `handle` keeps the allocator alive for the
    /// thread (a `&'static` for a static allocator, or a handle to the state that owns it).
    ///
    /// # Panics
    /// If `name` contains a NUL byte (it becomes part of the thread's name), or if the system
    /// refuses a thread.
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    ///
    /// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new());
    /// BlockAllocator::start_refill(&ALLOC, "example");
    /// assert!(ALLOC.refill_started());
    /// ALLOC.stop_refill();
    /// ```
    #[track_caller]
    pub fn start_refill<H>(handle: H, name: &str)
    where
        H: Deref<Target = BlockAllocator> + Clone + Send + 'static,
    {
        if !handle.refill.is_started() {
            let for_thread = handle.clone();
            handle.refill.start(format!("rcu-refill-{name}"), move || run(&for_thread));
        }
    }

    /// True once the refill worker was started (and not forgotten after a fork).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// assert!(!alloc.refill_started()); // started on demand by its owner
    /// ```
    pub fn refill_started(&self) -> bool {
        self.refill.is_started()
    }

    /// In a forked child the refill thread does not exist: forget it so it restarts on
    /// demand and is never joined. Call single-threaded (from a fork child handler).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.reset_after_fork(); // harmless when nothing was started
    /// assert!(!alloc.refill_started());
    /// ```
    pub fn reset_after_fork(&self) {
        self.refill.forget_after_fork();
    }
}

fn run(alloc: &BlockAllocator) {
    let refill = &alloc.refill;
    while !refill.stopping() {
        let seen = refill.event();
        alloc.refill_pool();
        if !refill.stopping() {
            refill.sleep(seen, MAX_IDLE);
        }
    }
}
