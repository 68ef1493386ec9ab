//! A domain's deferred-reclamation queues: the sealed-block list and the intrusive list the
//! worker collects, the collection generations barriers wait for, and running a batch's
//! items. How items get here is `enqueue`; how they are collected and run after their grace
//! period is `collection`.

use core::ptr::{self, NonNull};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rcu_alloc::{AllocConfig, Block, BlockAllocator, Entry};
use rcu_ctx::Atomic;
use rcu_sys::EventCount;

use crate::queue::deferred::{self, Headed};
use crate::queue::head::RcuHead;
use crate::setting::saturating_nanos;

/// A collected batch waiting for its grace period.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) cookie: u64,
    pub(crate) generation: u64,
    pub(crate) blocks: Vec<NonNull<Block>>,
    pub(crate) heads: *mut RcuHead,
    /// Bytes the fallback items in `heads` were charged (see `Queues::intrusive_bytes`).
    pub(crate) head_bytes: usize,
}

// SAFETY: a batch owns its blocks and the objects linked from `heads`; it only moves to and
// lives on the worker thread.
unsafe impl Send for Batch {}

/// The domain-wide part of reclamation.
#[derive(Debug)]
pub(crate) struct Queues {
    pub(crate) alloc: BlockAllocator,
    /// Blocks sealed by their owners (full, or handed over at thread exit). Through
    /// `crate::raw::sync`, as `staging::push_block` takes it (std's, except under shuttle).
    pub(crate) sealed: crate::raw::sync::AtomicPtr<Block>,
    /// The fallback list of headed objects.
    pub(crate) intrusive: AtomicPtr<RcuHead>,
    /// Items queued on the intrusive list (staged items are counted per slot).
    pub(crate) queued_intrusive: AtomicU64,
    /// Bytes charged for items pushed on the intrusive list and not yet collected: a head
    /// has no room for its item's size, so a collection takes the list's total with it.
    pub(crate) intrusive_bytes: AtomicUsize,
    pub(crate) invoked: AtomicU64,
    pub(crate) panics: AtomicU64,
    /// Collections started; a batch carries the generation of its collection.
    pub(crate) collections: AtomicU64,
    /// Highest generation whose batch has been run.
    pub(crate) completed_generation: AtomicU64,
    /// Highest generation whose batches' given-back deallocations are known to be done too
    /// (published by `finish_given_back`).
    pub(crate) given_back_finished: AtomicU64,
    /// Highest generation an async barrier waits for: the worker finishes the given-back
    /// deallocations up to it (`rcu_barrier_async` never waits for them in a poll).
    pub(crate) async_barrier_wanted: AtomicU64,
    /// Highest generation a barrier (or backpressure) is waiting for.
    pub(crate) wanted_generation: AtomicU64,
    /// Bumped whenever batches are run; barrier and backpressure waiters sleep on it.
    pub(crate) drained: EventCount,
    /// Set while over budget: the worker collects at once and expedites grace periods.
    pub(crate) expedite: AtomicBool,
    /// Times a caller that never waits (`NoReclaim`, `Atomic`) found the domain over budget.
    pub(crate) unwaiting_over_budget: AtomicU64,
    pub(crate) batch_delay_ns: AtomicU64,
}

impl Queues {
    pub(crate) const fn new(config: AllocConfig, batch_delay: Duration) -> Self {
        Queues {
            alloc: BlockAllocator::new(config),
            sealed: crate::raw::sync::AtomicPtr::new(ptr::null_mut()),
            intrusive: AtomicPtr::new(ptr::null_mut()),
            queued_intrusive: AtomicU64::new(0),
            intrusive_bytes: AtomicUsize::new(0),
            invoked: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            collections: AtomicU64::new(0),
            completed_generation: AtomicU64::new(0),
            given_back_finished: AtomicU64::new(0),
            async_barrier_wanted: AtomicU64::new(0),
            wanted_generation: AtomicU64::new(0),
            drained: EventCount::new(),
            expedite: AtomicBool::new(false),
            unwaiting_over_budget: AtomicU64::new(0),
            batch_delay_ns: AtomicU64::new(saturating_nanos(batch_delay)),
        }
    }

    pub(crate) fn batch_delay(&self) -> Duration {
        // Relaxed: a setting.
        Duration::from_nanos(self.batch_delay_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn set_batch_delay(&self, delay: Duration) {
        // Relaxed: a setting.
        self.batch_delay_ns.store(saturating_nanos(delay), Ordering::Relaxed);
    }

    pub(crate) fn invoked(&self) -> u64 {
        // Relaxed: a statistic.
        self.invoked.load(Ordering::Relaxed)
    }

    pub(crate) fn panics(&self) -> u64 {
        // Relaxed: a statistic.
        self.panics.load(Ordering::Relaxed)
    }

    pub(crate) fn queued_intrusive(&self) -> u64 {
        // Relaxed: a statistic.
        self.queued_intrusive.load(Ordering::Relaxed)
    }

    /// True while over budget (the worker hurries).
    pub(crate) fn expediting(&self) -> bool {
        // Relaxed: a hint.
        self.expedite.load(Ordering::Relaxed)
    }

    /// True if sealed blocks or fallback items wait for a collection (a backlog: the worker
    /// collects them without waiting for the batch delay).
    pub(crate) fn has_backlog(&self) -> bool {
        // Relaxed: a hint. Whoever pushes the first item wakes the worker after its push
        // (`Worker::wake_if_sleeping`), and the worker re-checks this after announcing its
        // sleep, so a backlog is never slept on.
        !self.sealed.load(Ordering::Relaxed).is_null()
            || !self.intrusive.load(Ordering::Relaxed).is_null()
    }

    /// True if a barrier or backpressure waits for a collection not yet made.
    pub(crate) fn collection_wanted(&self) -> bool {
        // SeqCst: pairs with the RMW in `request_collection`; a hint re-checked each loop.
        self.wanted_generation.load(Ordering::SeqCst) > self.collections.load(Ordering::SeqCst)
    }

    /// In a forked child (single-threaded): batches the parent's worker had collected and not
    /// finished are not in the child (they were on its stack), so their generations would
    /// never complete, and a barrier future waiting for one never would (with a long batch
    /// delay the child's worker might never collect again). Asks for a collection past them:
    /// it finishes an (at most empty) batch of a later generation, and generations complete
    /// in order. The lost batches' items are leaked in the child, never run twice.
    pub(crate) fn collect_again_after_fork(&self) {
        // Relaxed (all): the child has a single thread.
        let collected = self.collections.load(Ordering::Relaxed);
        if self.completed_generation.load(Ordering::Relaxed) < collected {
            self.wanted_generation.fetch_max(collected + 1, Ordering::Relaxed);
        }
    }

    /// Bytes a collected block keeps alive: its entries' objects and itself.
    pub(crate) fn block_charge(&self, block: NonNull<Block>) -> usize {
        // SAFETY: callers own the block.
        unsafe { block.as_ref() }.pending_bytes() + self.alloc.block_bytes()
    }

    /// Pushes a block for the worker, charging it to the budget. Its entries (if any) are
    /// the worker's to finish: it is given back to nobody.
    pub(crate) fn push_sealed(&self, mut block: NonNull<Block>) {
        // SAFETY: the caller owns the block until it is pushed.
        unsafe { block.as_mut() }.set_tag(0);
        self.alloc.budget().charge(self.block_charge(block));
        self.push_sealed_charged(block);
    }

    /// Pushes a block for the worker that was already charged to the budget.
    pub(crate) fn push_sealed_charged(&self, block: NonNull<Block>) {
        // Its Release pairs with the worker's Acquire swap in `collection::swap_lists`.
        crate::queue::staging::push_block(&self.sealed, block);
    }

    /// The fallback for headed items: one CAS onto the intrusive list. Never fails, never
    /// allocates, takes no lock; reentrant (a handler's push only makes ours retry).
    pub(crate) fn push_intrusive(&self, item: &Headed) {
        let head = item.obj.cast::<RcuHead>();
        self.alloc.budget().charge(item.bytes);
        // Relaxed: a statistic.
        self.queued_intrusive.fetch_add(1, Ordering::Relaxed);
        // Release: a collection whose Acquire swap of the total reads this addition also
        // sees the charge above, so it never releases the bytes before they were charged
        // (even when it takes them before the item itself). A collection whose Acquire swap
        // of the list takes the item sees this addition anyway: it is sequenced before the
        // Release CAS below.
        self.intrusive_bytes.fetch_add(item.bytes, Ordering::Release);
        // SAFETY: we own the object (and so its head) until the CAS publishes it.
        unsafe { *(*head).run.get() = Some(item.run) };
        // Relaxed: the CAS publishes.
        let mut top = self.intrusive.load(Ordering::Relaxed);
        loop {
            // SAFETY: as above.
            unsafe { *(*head).next.get() = top };
            // Release: publishes the head's fields (and the object) to the worker's swap.
            match self.intrusive.compare_exchange_weak(
                top,
                head,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => top = actual,
            }
        }
    }
}

impl Drop for Queues {
    /// The domain state is going away: no thread is registered any more (registrations keep
    /// it alive) and its worker drained everything it could see, so what remains (blocks
    /// handed over by threads that exited afterwards) can run now: no reader is left.
    fn drop(&mut self) {
        // SAFETY: (1) dropped before this function returns; (2) no scope opened meanwhile.
        let ctx = unsafe { Atomic::assume() };
        let mut sealed = *self.sealed.get_mut();
        let mut blocks = Vec::new();
        while let Some(block) = NonNull::new(sealed) {
            // SAFETY: exclusive access: the list is ours.
            sealed = unsafe { block.as_ref() }.next();
            blocks.push(block);
        }
        let heads = *self.intrusive.get_mut();
        let head_bytes = *self.intrusive_bytes.get_mut();
        let mut run = RunCount::default();
        for block in blocks {
            run.block(self, block, &ctx);
            // SAFETY: (1) every block this domain handles came from its allocator; (2) taken
            // off the sealed list, so ours; (3) `run.block` drained it.
            unsafe { self.alloc.put(block) };
        }
        run.heads(self, heads, head_bytes, &ctx);
    }
}

/// Runs a given-back block's entries, the deallocation parts of frees whose drop parts ran
/// (and were counted) already, leaving it empty. No budget: it was released with the drops.
/// Caller: owns the block, in a context that may call the allocator.
pub(crate) fn run_deallocations(mut block: NonNull<Block>, ctx: &Atomic<'_>) {
    // SAFETY: the caller owns the block.
    let _ = unsafe { block.as_mut() }.filter_entries(|entry| {
        // SAFETY: a deallocation part, given back once and run once, here.
        unsafe { deferred::run(entry, ctx) };
        None
    });
}

/// Items run and panics caught while running a batch.
#[derive(Debug, Default)]
pub(crate) struct RunCount {
    invoked: u64,
    panics: u64,
}

impl RunCount {
    fn count(&mut self, ok: bool) {
        self.invoked += 1;
        self.panics += u64::from(!ok);
    }

    /// Runs a block's entries, leaving it empty (the caller reuses or returns it).
    pub(crate) fn block(&mut self, r: &Queues, mut block: NonNull<Block>, ctx: &Atomic<'_>) {
        // SAFETY: the caller owns the block.
        let (entries, bytes) = unsafe { block.as_mut() }.drain();
        for entry in entries {
            // SAFETY: each entry was queued once and is run once, here. (Blocks of kept
            // deallocations are never run here: `run_deallocations` runs them uncounted.)
            self.count(unsafe { deferred::run(entry, ctx) });
        }
        r.alloc.budget().release(bytes + r.alloc.block_bytes());
    }

    /// Runs a block's entries but leaves the deallocation of each deferred free in it, for
    /// the thread that queued them (`deferred::run_keeping_dealloc`). Returns true if the
    /// block kept entries (then only deallocations); otherwise it is empty. The budget is
    /// released in full: what is left is only memory waiting for its owner's next free.
    pub(crate) fn block_keeping_deallocs(
        &mut self,
        r: &Queues,
        mut block: NonNull<Block>,
        ctx: &Atomic<'_>,
    ) -> bool {
        // SAFETY: the caller owns the block.
        let b = unsafe { block.as_mut() };
        let bytes = b.filter_entries(|entry| {
            // SAFETY: the entry was queued once and runs once, here; what it keeps is its
            // deallocation, run once later (even if the drop panicked, as a `Box` frees its
            // memory when its value's drop unwinds).
            let (ok, kept) = unsafe { deferred::run_keeping_dealloc(entry, ctx) };
            self.count(ok);
            kept
        });
        r.alloc.budget().release(bytes + r.alloc.block_bytes());
        !b.is_empty()
    }

    /// Runs an intrusive list whose items were charged `bytes` in all.
    pub(crate) fn heads(
        &mut self,
        r: &Queues,
        mut head: *mut RcuHead,
        bytes: usize,
        ctx: &Atomic<'_>,
    ) {
        while !head.is_null() {
            // SAFETY: the caller owns the listed objects; read the head before running, as
            // running frees the object.
            let (next, run) = unsafe { (*(*head).next.get(), *(*head).run.get()) };
            let run = run.expect("rcu-core internal error: intrusive item without a trampoline");
            // SAFETY: as above: queued once, run once.
            self.count(unsafe { deferred::run(Entry { obj: head.cast(), run }, ctx) });
            head = next;
        }
        r.alloc.budget().release(bytes);
    }

    /// Adds the counts to the domain's statistics and reports panics.
    pub(crate) fn publish(self, r: &Queues, domain: &str) {
        // Relaxed: statistics.
        r.invoked.fetch_add(self.invoked, Ordering::Relaxed);
        if self.panics != 0 {
            // Relaxed: a statistic.
            r.panics.fetch_add(self.panics, Ordering::Relaxed);
            rcu_sys::stderr::report_line(&format!(
                "rcu-core: {} RCU callback(s) of domain '{domain}' panicked (see the panic \
                 messages above); the rest of their batch ran and the objects they owned were \
                 dropped while unwinding. Rule: callbacks must not panic, there is no caller to \
                 handle it. Fix: handle failures inside the callback (log or count them) \
                 instead of unwrap/expect/assert.",
                self.panics
            ));
        }
    }
}

/// A queue of batches owned by the worker thread: a local, so that a forked child (whose
/// worker thread is gone) leaks what the parent's worker held instead of running it twice.
pub(crate) type Batches = VecDeque<Batch>;
