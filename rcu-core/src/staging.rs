//! A thread's staging area in one domain: the block it is filling and its cache of empty
//! blocks. Queueing an item is, on the fast path, a few plain loads and stores.
//!
//! Two parties touch it. The owner thread pushes entries; the domain's worker *steals* the
//! block being filled so that items queued by an idle thread still reach their grace period
//! (and `rcu_barrier` sees them). They coordinate like a reader and a grace period:
//!
//! - The owner brackets every access with `seq`: odd while it works, even otherwise (plain
//!   stores; the Release on the closing store publishes the entries written inside), with
//!   `reader_barrier()` after opening so the opening store is ordered before the load of
//!   `current`.
//! - The worker swaps `current` to null, runs `heavy_barrier()`, then waits until `seq` is
//!   even or has moved on. After the barrier, an owner either had its odd `seq` visible to
//!   the worker (which then waits for it to close, seeing its entries by Acquire), or
//!   begins after the barrier and so loads the null, never touching the stolen block.
//!
//! `seq` also makes the owner's accesses safe against its own signal handlers: a handler
//! that interrupts an open bracket finds `seq` odd and takes the embedded-head path
//! instead of touching the block or the cache.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crossbeam_utils::Backoff;
use rcu_alloc::{Block, Entry, ThreadCache};

use crate::raw::barrier::reader_barrier;

/// Outcome of the owner's fast-path push.
pub(crate) enum Push {
    /// Queued.
    Done,
    /// The owner's bracket is already open: we are a signal handler that interrupted it.
    Reentrant,
    /// No block, or the block is full (given back to seal); a new block is needed.
    NeedBlock(Option<NonNull<Block>>),
}

/// The staging area.
#[derive(Debug)]
pub(crate) struct Staging {
    seq: AtomicU64,
    current: AtomicPtr<Block>,
    cache: UnsafeCell<ThreadCache>,
    /// Items this slot's owners queued (owner-written, plain load and store).
    queued: AtomicU64,
}

// SAFETY: `cache` is touched only by the owner thread inside an open `seq` bracket (so never
// by two parties at once, handlers included); everything else is atomic.
unsafe impl Sync for Staging {}

impl Staging {
    pub(crate) const fn new() -> Self {
        Staging {
            seq: AtomicU64::new(0),
            current: AtomicPtr::new(ptr::null_mut()),
            cache: UnsafeCell::new(ThreadCache::new()),
            queued: AtomicU64::new(0),
        }
    }

    /// Opens the owner's bracket; `None` if it is already open (reentrant call).
    #[inline(always)]
    fn open(&self) -> Option<u64> {
        // Relaxed: only the owner (and its handlers, which restore it) writes `seq`.
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0 {
            return None;
        }
        // Release: like the reader word's (raw::protocol), so that a worker that reads this
        // opening store also sees the previous bracket's writes. Ordering it before the
        // `current` load is reader_barrier's job, paired with the worker's heavy_barrier.
        self.seq.store(s + 1, Ordering::Release);
        reader_barrier();
        Some(s)
    }

    #[inline(always)]
    fn close(&self, s: u64) {
        // Release: the entries written inside the bracket happen-before the worker's
        // Acquire load that sees the bracket closed.
        self.seq.store(s + 2, Ordering::Release);
    }

    /// Owner: pushes into the current block if it has room.
    #[inline]
    pub(crate) fn try_push(&self, entry: Entry, bytes: usize) -> Push {
        let Some(s) = self.open() else { return Push::Reentrant };
        // Relaxed: the owner's own store or the worker's swap; the bracket orders it.
        let block = NonNull::new(self.current.load(Ordering::Relaxed));
        let outcome = match block {
            // SAFETY: `current` is ours while the bracket is open: the worker only takes it
            // by swapping it out, and then waits for this bracket to close.
            Some(mut b) if !unsafe { b.as_ref() }.is_full() => {
                // SAFETY: as above.
                unsafe { b.as_mut() }.push(entry, bytes);
                self.count_queued();
                Push::Done
            }
            full => Push::NeedBlock(full),
        };
        self.close(s);
        outcome
    }

    fn count_queued(&self) {
        // Relaxed load and store, no RMW: only the owner bracket writes it.
        self.queued.store(self.queued.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Items queued through this slot.
    pub(crate) fn queued(&self) -> u64 {
        // Relaxed: a statistic.
        self.queued.load(Ordering::Relaxed)
    }

    /// Owner: takes `full` out of `current` so it can be sealed; false if the worker stole
    /// it meanwhile (it is then the worker's).
    pub(crate) fn detach(&self, full: NonNull<Block>) -> bool {
        // AcqRel: settles the race with the worker's swap; whoever wins owns the block.
        self.current
            .compare_exchange(full.as_ptr(), ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Owner: runs `f` on the thread cache inside a bracket; `None` if reentrant.
    pub(crate) fn with_cache<R>(&self, f: impl FnOnce(&mut ThreadCache) -> R) -> Option<R> {
        let s = self.open()?;
        // SAFETY: the bracket is open, so no other party touches the cache (see `Sync`).
        let r = f(unsafe { &mut *self.cache.get() });
        self.close(s);
        Some(r)
    }

    /// Owner: installs `block` as current (if none is) and pushes `entry` into whichever
    /// block is current. Returns the block back if it was not needed. `Err` if reentrant.
    pub(crate) fn install_and_push(
        &self,
        mut block: NonNull<Block>,
        entry: Entry,
        bytes: usize,
    ) -> Result<Option<NonNull<Block>>, NonNull<Block>> {
        let Some(s) = self.open() else { return Err(block) };
        // Relaxed: as in `try_push`.
        let spare = match NonNull::new(self.current.load(Ordering::Relaxed)) {
            // SAFETY: ours inside the bracket (see `try_push`).
            Some(mut cur) if !unsafe { cur.as_ref() }.is_full() => {
                // A handler installed a block while we were out fetching ours: use it.
                // SAFETY: as above.
                unsafe { cur.as_mut() }.push(entry, bytes);
                Some(block)
            }
            Some(_) => {
                // Full again already (a handler filled it): seal it through the caller.
                self.close(s);
                return Err(block);
            }
            None => {
                // SAFETY: the caller owns `block`; it becomes current below.
                unsafe { block.as_mut() }.push(entry, bytes);
                // Relaxed: the bracket's closing Release (and the worker's swap) order it.
                self.current.store(block.as_ptr(), Ordering::Relaxed);
                None
            }
        };
        self.count_queued();
        self.close(s);
        Ok(spare)
    }

    /// True if a block is being filled (a hint for the worker's sleep).
    pub(crate) fn has_block(&self) -> bool {
        // Relaxed: a hint.
        !self.current.load(Ordering::Relaxed).is_null()
    }

    /// Worker (or an exiting owner): takes the current block, if any. The caller must then
    /// `heavy_barrier()` and `wait_quiescent(seq_seen)` before reading it.
    pub(crate) fn steal(&self) -> Option<NonNull<Block>> {
        // AcqRel: see `detach`.
        NonNull::new(self.current.swap(ptr::null_mut(), Ordering::AcqRel))
    }

    /// Worker: after a steal and a heavy barrier, waits until any owner bracket that could
    /// have seen the stolen block has closed.
    pub(crate) fn wait_quiescent(&self) {
        // Acquire: pairs with the Release in `close`.
        let s = self.seq.load(Ordering::Acquire);
        if s & 1 == 0 {
            return;
        }
        let backoff = Backoff::new();
        // Acquire: as above. A bracket never blocks, so this ends quickly unless the owner
        // was preempted inside it.
        while self.seq.load(Ordering::Acquire) == s {
            backoff.snooze();
        }
    }

    /// Exiting owner (or fork child): takes the cached blocks.
    pub(crate) fn take_cache(&self, into: &mut ThreadCache) {
        // The owner is exiting (no bracket can be open on its thread) or, in a fork child,
        // does not exist (its bracket will never close): force the bracket shut.
        // Relaxed: single-party access from here on.
        let s = self.seq.load(Ordering::Relaxed) | 1;
        self.seq.store(s + 1, Ordering::Release);
        // SAFETY: no owner bracket is open (see above), so we are the only party.
        let cache = unsafe { &mut *self.cache.get() };
        while let Some(b) = cache.pop() {
            if let Err(b) = into.push(b, usize::MAX) {
                // `into` is full: put it back for the next owner rather than lose it.
                let _ = cache.push(b, usize::MAX);
                break;
            }
        }
    }
}
