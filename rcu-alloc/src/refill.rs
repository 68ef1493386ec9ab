//! The refill worker: a sleepable thread that keeps an allocator's pool above its low
//! watermark, so that `Atomic` callers (which may only take from the pool) find blocks.
//!
//! Woken (a futex wake: no lock, no allocation, async-signal-safe) whenever a request finds
//! the pool low or empty.

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::allocator::BlockAllocator;
use crate::futex;

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

/// Defensive bound on one idle sleep: a lost wake-up costs latency, not blocks forever.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// The refill worker's controls, part of the allocator.
#[derive(Debug)]
pub(crate) struct Refill {
    /// Bumped by every wake; the worker sleeps on it.
    event: AtomicU32,
    state: AtomicU8,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Refill {
    pub(crate) const fn new() -> Self {
        Refill {
            event: AtomicU32::new(0),
            state: AtomicU8::new(NOT_STARTED),
            handle: Mutex::new(None),
        }
    }

    pub(crate) fn wake(&self) {
        // SeqCst: the worker reads the event before re-checking the pool and sleeps only if
        // the event is unchanged: either it sees our bump or the futex wake reaches it.
        self.event.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&self.event);
    }

    pub(crate) fn stop(&self) {
        // SeqCst: ordered before the wake; the worker checks it after each wake-up.
        if self.state.swap(STOPPING, Ordering::SeqCst) != RUNNING {
            return;
        }
        self.wake();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // A panic in the worker was already reported by the panic hook.
            let _ = h.join();
        }
    }

    fn stopping(&self) -> bool {
        // SeqCst: see `stop`.
        self.state.load(Ordering::SeqCst) == STOPPING
    }
}

impl BlockAllocator {
    /// Starts the refill worker unless it runs. `handle` keeps the allocator alive for the
    /// thread (a `&'static` for a static allocator, or a handle to the state that owns it).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator, Policy, ThreadCache};
    /// static ALLOC: BlockAllocator = BlockAllocator::new(AllocConfig::new());
    /// BlockAllocator::start_refill(&ALLOC, "doc");
    /// assert!(ALLOC.refill_started());
    /// // Atomic callers can only take pooled blocks; the worker keeps the pool stocked.
    /// let mut cache = ThreadCache::new();
    /// while ALLOC.get(Policy::NoWait, &mut cache).map(|b| ALLOC.put(b)).is_none() {
    ///     std::thread::yield_now();
    /// }
    /// ALLOC.stop_refill();
    /// ```
    pub fn start_refill<H>(handle: H, name: &str)
    where
        H: Deref<Target = BlockAllocator> + Clone + Send + 'static,
    {
        // Relaxed: elects the one spawning thread; the spawn synchronizes with the thread.
        if handle
            .refill
            .state
            .compare_exchange(NOT_STARTED, RUNNING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let for_thread = handle.clone();
        let join = std::thread::Builder::new()
            .name(format!("rcu-refill-{name}"))
            .spawn(move || run(&for_thread))
            .expect(
                "rcu-alloc: could not spawn the refill worker, which keeps the block pool \
                 stocked (the process is at its thread limit or out of memory)",
            );
        *handle.refill.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(join);
    }

    /// True once the refill worker was started (and not forgotten after a fork).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// assert!(!alloc.refill_started()); // started on demand by the runtime
    /// ```
    pub fn refill_started(&self) -> bool {
        // Relaxed: a hint; `start_refill` re-checks with a CAS.
        self.refill.state.load(Ordering::Relaxed) != NOT_STARTED
    }

    /// In a forked child the refill thread does not exist: forget it so it restarts on
    /// demand and is never joined. Call single-threaded (from a fork child handler).
    ///
    /// ```
    /// use rcu_alloc::{AllocConfig, BlockAllocator};
    /// let alloc = BlockAllocator::new(AllocConfig::new());
    /// alloc.reset_after_fork(); // what a fork child handler calls, single-threaded
    /// assert!(!alloc.refill_started());
    /// ```
    pub fn reset_after_fork(&self) {
        if let Ok(mut h) = self.refill.handle.try_lock() {
            core::mem::forget(h.take());
        }
        // Relaxed: the child has one thread.
        self.refill.state.store(NOT_STARTED, Ordering::Relaxed);
    }
}

fn run(alloc: &BlockAllocator) {
    let refill = &alloc.refill;
    while !refill.stopping() {
        // SeqCst: see `Refill::wake`.
        let seen = refill.event.load(Ordering::SeqCst);
        alloc.refill_pool();
        if !refill.stopping() {
            futex::wait(&refill.event, seen, Some(MAX_IDLE));
        }
    }
}
