//! Collecting what threads queued into batches, running a batch after its grace period, and
//! the barrier and drain waits built on the collections' generations.
//!
//! The worker periodically *collects*: it steals every thread's current block, takes the
//! sealed blocks and the intrusive list, and stamps them with a grace-period cookie taken
//! after the collection, so everything in the batch was queued before that grace period
//! began. Once the grace period completes it runs the batch with an `Atomic` token.

use core::ptr::{self, NonNull};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rcu_alloc::{Block, ThreadCache};
use rcu_ctx::Atomic;

use crate::gp::stall::{StallCause, StallClock, StallReport};
use crate::queue::head::RcuHead;
use crate::queue::queues::{run_deallocations, Batch, RunCount};
use crate::queue::staging::Staging;
use crate::read::registry::Slot;
use crate::state::DomainState;
use crate::stats::Counters;

/// Defensive bound on one wait for the worker; see `grace_period::MAX_EVENT_WAIT`.
const MAX_DRAIN_WAIT: Duration = Duration::from_millis(100);

impl DomainState {
    /// Asks the worker for a collection that starts after this call; returns its generation.
    pub(crate) fn request_collection(&self) -> u64 {
        // AcqRel RMW (of zero): the worker's collection RMW that makes generation `g + 1`
        // reads from ours, so everything we did before (queueing items) happens-before that
        // collection's steals and swaps, which therefore see it.
        let g = self.queues.collections.fetch_add(0, Ordering::AcqRel) + 1;
        // SeqCst: read by `collection_wanted` on the worker.
        self.queues.wanted_generation.fetch_max(g, Ordering::SeqCst);
        self.wake_worker();
        g
    }

    /// Sleeps until a batch runs after `key` was read (`queues.drained.key()`, taken before
    /// checking the condition), at most `MAX_DRAIN_WAIT`.
    pub(crate) fn sleep_until_drained(&self, key: u32) {
        self.queues.drained.wait(key, Some(MAX_DRAIN_WAIT));
    }

    pub(crate) fn signal_drained(&self) {
        self.queues.drained.notify_all();
    }

    /// `rcu_barrier`: returns once every item queued before the call, on any thread, has
    /// run. Caller: a thread that may sleep.
    pub(crate) fn barrier(&self) {
        let generation = self.request_collection();
        loop {
            // The key before the condition (see `rcu_sys::EventCount`).
            let seen = self.queues.drained.key();
            // Acquire: pairs with the Release store in `run_batch`: the batch's effects are
            // visible to the barrier's caller.
            if self.queues.completed_generation.load(Ordering::Acquire) >= generation {
                break;
            }
            self.sleep_until_drained(seen);
        }
        self.finish_given_back();
    }

    /// The end of a barrier, once its generation has run: every item queued before the
    /// barrier was dropped by a batch up to that generation, but its deallocation may have
    /// been given back to the thread that queued it (`run_batch`). Takes every slot's
    /// given-back list and runs those deallocations here (the caller may reclaim), waiting
    /// for whoever took a list first to finish it.
    ///
    /// Nothing is missed. The batches up to the barrier's generation gave their blocks back
    /// before that generation was published (Release in `finish_generation`), which the
    /// barrier acquired, so each of those pushes precedes this thread's swap of the list in
    /// its modification order. A block pushed there is then, at our swap, either still on the
    /// list (ours), or was taken by an earlier swap:
    /// - the owner's, inside a bracket (finishing it at a block boundary or a scope's
    ///   opening, or handing over at exit): our AcqRel swap reads that swap or a later push
    ///   (an RMW, which continues its release sequence), so the owner's opening of the
    ///   bracket happens-before our `wait_quiescent`, which waits for it to close;
    /// - another stranger's (the worker finishing an idle owner's list, another barrier):
    ///   strangers swap only while holding the slot's strangers' right, so that one held it
    ///   before us and gave it back only after finishing, with a Release that our Acquire
    ///   of the right reads.
    ///
    /// Callers: a barrier's caller, which may reclaim, outside any bracket of its own thread
    /// (`Domain::rcu_barrier` refuses a call from a signal handler that interrupted one).
    ///
    /// Publishes, in `given_back_finished`, the generation that had run when it began: its
    /// batches' deallocations are all done once it returns (async barriers wait for that).
    pub(crate) fn finish_given_back(&self) {
        // Acquire: pairs with the Release in `finish_generation` (see above).
        let upto = self.queues.completed_generation.load(Ordering::Acquire);
        // SAFETY: (1) dropped before this function returns; (2) no scope is opened meanwhile
        // on this thread (the entries only deallocate). It also makes a signal handler that
        // interrupts us here unable to wait for a barrier (whose strangers' right we hold).
        let ctx = unsafe { Atomic::assume() };
        let mut watch = BracketWatch::new(self);
        for slot in self.readers.iter() {
            let staging = &*slot.staging;
            staging.finish_returned_for_barrier(
                |block| self.finish_deallocations(block, &ctx),
                |elapsed| watch.waited(staging, elapsed),
            );
        }
        drop(ctx);
        // Release: pairs with the Acquire in `given_back_finished`: the deallocations done
        // above (and those we waited for) happen-before a reader of this value's return.
        self.queues.given_back_finished.fetch_max(upto, Ordering::Release);
    }

    /// True once generation `g` has run and its batches' given-back deallocations are done.
    pub(crate) fn given_back_finished(&self, g: u64) -> bool {
        // Acquire: pairs with the Release in `finish_given_back`.
        self.queues.given_back_finished.load(Ordering::Acquire) >= g
    }

    /// `rcu_barrier_async`: asks for a collection, as `rcu_barrier` does, and for the worker
    /// to finish the given-back deallocations once it has run. Lock-free, allocation-free.
    pub(crate) fn request_async_barrier(&self) -> u64 {
        let g = self.request_collection();
        // SeqCst: read by `async_barrier_needs_finishing` in the worker's loop and in its
        // idle re-check; the wake below (its SeqCst fence, `Worker::wake_if`) makes that
        // re-check see it, or wakes the worker.
        self.queues.async_barrier_wanted.fetch_max(g, Ordering::SeqCst);
        self.wake_worker();
        g
    }

    /// Worker: true if an async barrier waits for a generation that has run but whose
    /// given-back deallocations are not known to be done (the worker then finishes them).
    pub(crate) fn async_barrier_needs_finishing(&self) -> bool {
        let q = &self.queues;
        // SeqCst: see `request_async_barrier`. Acquire (both): as in `given_back_finished`
        // and `barrier`; a stale value only delays the finishing to the next loop.
        let wanted = q.async_barrier_wanted.load(Ordering::SeqCst);
        let finished = q.given_back_finished.load(Ordering::Acquire);
        wanted > finished && q.completed_generation.load(Ordering::Acquire) > finished
    }

    /// Worker, at each full collection: finishes the given-back lists their owners left
    /// (an idle thread's would otherwise keep its memory until it frees again). Skips a list
    /// another stranger (a barrier's caller) is finishing.
    fn finish_idle_given_back(&self) {
        // SAFETY: (1) dropped before this function returns; (2) no scope is opened meanwhile
        // (the entries only deallocate).
        let ctx = unsafe { Atomic::assume() };
        for slot in self.readers.iter() {
            slot.staging.finish_returned_as_stranger(
                false,
                |_| {},
                |block| self.finish_deallocations(block, &ctx),
            );
        }
    }

    /// Runs a given-back block's deallocations and returns the block. Caller: owns the
    /// block, in a context that may call the allocator.
    fn finish_deallocations(&self, block: NonNull<Block>, ctx: &Atomic<'_>) {
        run_deallocations(block, ctx);
        // SAFETY: (1) every block this domain handles came from its allocator; (2) the
        // caller's, handed over; (3) emptied above.
        unsafe { self.queues.alloc.put(block) };
    }

    /// Worker: collects everything queued so far into a batch. A collection that found
    /// nothing still yields an (empty) batch: generations must complete in order, so a
    /// barrier waiting for it is released only after every earlier batch has run.
    ///
    /// Takes every thread's current and parked blocks the way `Staging::collect` describes
    /// (steal, one heavy barrier, wait for the owner brackets open at its point, sweep the
    /// parked slots again, and wait for brackets that took a parked block to run it inline),
    /// then swaps the lists: what the brackets waited for sealed or handed over is on them.
    pub(crate) fn collect(&self) -> Batch {
        let r = &self.queues;
        // AcqRel: see `request_collection`.
        let generation = r.collections.fetch_add(1, Ordering::AcqRel) + 1;
        // Relaxed: the hint is cleared before collecting; a racing `hurry` sets it again.
        r.expedite.store(false, Ordering::Relaxed);
        let mut blocks = Vec::new();
        let mut watch = BracketWatch::new(self);
        Staging::collect(
            || self.readers.iter().map(|slot| &*slot.staging),
            &mut blocks,
            // Stolen while being filled: charged now (sealed and parked blocks already were),
            // and finished by the worker.
            |mut stolen| {
                // SAFETY: the collection owns it.
                unsafe { stolen.as_mut() }.set_tag(0);
                r.alloc.budget().charge(r.block_charge(stolen));
            },
            |staging, elapsed| watch.waited(staging, elapsed),
        );
        self.finish_idle_given_back();
        let (heads, head_bytes) = self.swap_lists(&mut blocks);
        // Taken after the collection: the grace period it names begins after every item
        // in the batch was queued. An empty batch needs no grace period at all.
        let cookie = if blocks.is_empty() && heads.is_null() { 0 } else { self.gp.seq.cookie() };
        Batch { cookie, generation, blocks, heads, head_bytes }
    }

    /// Worker: a light collection, of the lists only (sealed blocks and fallback items), for
    /// a backlog between full collections. It steals no block being filled, so it needs no
    /// heavy barrier and must not open a generation: a barrier waits for a full collection.
    /// It carries the generation of the last full collection, which has been or will be
    /// finished before it (batches run in order), so finishing it again changes nothing.
    pub(crate) fn collect_lists(&self) -> Batch {
        let r = &self.queues;
        // Acquire: pairs with the AcqRel RMW of the full collection that made it.
        let generation = r.collections.load(Ordering::Acquire);
        let mut blocks = Vec::new();
        let (heads, head_bytes) = self.swap_lists(&mut blocks);
        // As in `collect`: taken after the swaps.
        let cookie = if blocks.is_empty() && heads.is_null() { 0 } else { self.gp.seq.cookie() };
        Batch { cookie, generation, blocks, heads, head_bytes }
    }

    /// Takes the sealed-block list (into `blocks`) and the fallback list with the bytes its
    /// items were charged (returned).
    fn swap_lists(&self, blocks: &mut Vec<NonNull<Block>>) -> (*mut RcuHead, usize) {
        let r = &self.queues;
        // Acquire: pairs with the Release CAS in `push_sealed`.
        let mut sealed = r.sealed.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(block) = NonNull::new(sealed) {
            // SAFETY: taken from the list: ours.
            sealed = unsafe { block.as_ref() }.next();
            blocks.push(block);
        }
        // Acquire: pairs with the Release CAS in `push_intrusive`.
        let heads = r.intrusive.swap(ptr::null_mut(), Ordering::Acquire);
        // Acquire: pairs with the Release addition in `push_intrusive` (its charge is then
        // visible before the batch releases it). After the Acquire swap above, which makes
        // every taken item's addition visible here. It may also take the bytes of an item
        // whose push is still under way: released one batch early, never twice, so the
        // budget undercounts by at most the pushes in flight.
        let bytes = r.intrusive_bytes.swap(0, Ordering::Acquire);
        (heads, bytes)
    }

    fn finish_generation(&self, generation: u64) {
        // Release: pairs with the Acquire in `barrier`. Monotonic: batches run in order.
        self.queues.completed_generation.fetch_max(generation, Ordering::Release);
        self.signal_drained();
    }

    /// Worker: runs a batch whose grace period has completed, with `ctx`.
    ///
    /// A block sealed by a thread whose policy may call the allocator carries that thread's
    /// staging area in its tag: its deferred frees are dropped here and given back to it to
    /// deallocate (`deferred::run_keeping_dealloc`), so freed memory returns to the
    /// allocator's cache of the thread that allocates, not the worker's. A barrier finishes what was given back and
    /// not yet finished (`finish_given_back`).
    pub(crate) fn run_batch(&self, batch: Batch, ctx: &Atomic<'_>) {
        let r = &self.queues;
        let mut run = RunCount::default();
        for block in batch.blocks {
            // SAFETY: the batch owns the block.
            let tag = unsafe { block.as_ref() }.tag();
            let owner = tag as *const Staging;
            if !owner.is_null() {
                if run.block_keeping_deallocs(r, block, ctx) {
                    // SAFETY: a non-zero tag is the address of the staging area of the slot
                    // that sealed the block (`enqueue::seal`); slots live as long as the
                    // domain state, which the worker holds.
                    unsafe { &*owner }.give_back(block);
                    continue;
                }
            } else {
                run.block(r, block, ctx);
            }
            // SAFETY: (1) every block this domain handles came from its allocator; (2) the
            // batch owned it and is consumed here; (3) drained above.
            unsafe { r.alloc.put(block) };
        }
        run.heads(r, batch.heads, batch.head_bytes, ctx);
        run.publish(r, self.name());
        self.finish_generation(batch.generation);
    }

    /// True if any thread has a block being filled, or a list holds items.
    pub(crate) fn anything_staged(&self) -> bool {
        // Relaxed: a hint for the worker's sleep; enqueuers that create the first work wake it.
        !self.queues.sealed.load(Ordering::Relaxed).is_null()
            || !self.queues.intrusive.load(Ordering::Relaxed).is_null()
            || self.readers.iter().any(|s| s.staging.has_blocks())
    }

    /// Hands a slot's staged work to the worker and its cached blocks to the pool: at
    /// thread exit (the owner itself, with no read section of the domain open), in a fork
    /// child for the threads that did not come along, and when the state is dropped.
    ///
    /// The owner hands over inside its own bracket: a block in transit from the slot to the
    /// sealed list is then never invisible to a concurrent collection, which waits for the
    /// bracket (see `collect`), so an `rcu_barrier` cannot miss it. In a fork child or a
    /// dropped state nobody collects concurrently, and a dead owner's bracket may be stuck
    /// open (`open` gives `None`): the hand-over then needs none.
    pub(crate) fn adopt(&self, slot: &Slot) {
        // SAFETY: (1) dropped before this function returns; (2) no scope is opened meanwhile
        // (the entries only deallocate).
        let ctx = unsafe { Atomic::assume() };
        slot.staging.hand_over(
            |current| self.queues.push_sealed(current),
            |parked| self.queues.push_sealed_charged(parked),
            |returned| self.finish_deallocations(returned, &ctx),
        );
        let mut cache = ThreadCache::new();
        slot.staging.take_cache(&mut cache);
        while let Some(block) = cache.pop() {
            self.queues.push_sealed(block);
        }
        self.wake_worker();
    }

    /// In a forked child: the budget still counts batches the parent's worker held, which do
    /// not exist here. Recount it from what is really queued: sealed blocks, the intrusive
    /// list and parked blocks (each charged when it got there; blocks being filled are
    /// charged when sealed or stolen). Call single-threaded, after dead threads' slots were
    /// adopted.
    pub(crate) fn recount_budget_after_fork(&self) {
        let r = &self.queues;
        let mut pending = 0;
        // Relaxed (all): the child has a single thread.
        let mut block = r.sealed.load(Ordering::Relaxed);
        while let Some(b) = NonNull::new(block) {
            pending += r.block_charge(b);
            // SAFETY: a listed block stays valid while listed; single-threaded.
            block = unsafe { b.as_ref() }.next();
        }
        pending += r.intrusive_bytes.load(Ordering::Relaxed);
        for slot in self.readers.iter() {
            pending += slot.staging.parked_blocks().map(|b| r.block_charge(b)).sum::<usize>();
        }
        r.alloc.budget().reset_pending(pending);
    }
}

/// The state's end belongs with the hand-over it does (`adopt`).
impl Drop for DomainState {
    /// The last reference is gone: no `Domain`, cell or guard is left, so no reader and no
    /// caller. What threads still have staged goes to the final run (`Queues::drop`).
    fn drop(&mut self) {
        // First, while every field is intact: a fork from now on must not see this state.
        crate::state::tracking::untrack(self as *const DomainState as *const ());
        for slot in self.readers.iter() {
            self.adopt(slot);
        }
    }
}

/// Reports a wait for a staging bracket that passes the domain's stall timeout, naming the
/// thread (DESIGN §5.1: no wait spins without bound, and a long one is reported). A bracket
/// never blocks, so such a wait means a signal handler that interrupted the thread there is
/// blocking, or the thread is stopped.
struct BracketWatch<'a> {
    domain: &'a DomainState,
    clock: StallClock,
    /// The elapsed time last reported to `waited`: a smaller one starts a new wait.
    last: Duration,
}

impl<'a> BracketWatch<'a> {
    fn new(domain: &'a DomainState) -> Self {
        BracketWatch {
            domain,
            clock: StallClock::new(domain.stall_timeout()),
            last: Duration::ZERO,
        }
    }

    /// Called after each nap of a wait for `staging`'s bracket (see `sync::wait_while`).
    fn waited(&mut self, staging: &Staging, elapsed: Duration) {
        if elapsed < self.last {
            self.clock = StallClock::new(self.domain.stall_timeout());
        }
        self.last = elapsed;
        if !self.clock.due(elapsed) {
            return;
        }
        let d = self.domain;
        let Some(slot) = d.readers.iter().find(|s| core::ptr::eq(&*s.staging, staging)) else {
            return;
        };
        Counters::bump(&d.counters.stalls);
        let panicked = d.stall_sink.report(&StallReport {
            domain: d.name().to_owned(),
            thread_name: slot.name(),
            tid: slot.tid(),
            blocked_for: elapsed,
            gp_seq: d.gp.seq.started(),
            pending_callbacks: d.callbacks_pending(),
            leaked_guard: false,
            cause: StallCause::StagingBracket,
        });
        if panicked {
            Counters::bump(&d.counters.contained_panics);
        }
    }
}
