//! Deferred reclamation for one domain: where queued items go, how the token's policy picks
//! the path, and how the worker turns them into batches that run after a grace period.
//!
//! Paths for an item, in order of preference:
//! 1. the thread's current block (fast path: no atomic read-modify-write);
//! 2. a new block from the thread cache, the pool or (if the policy may allocate) the
//!    global allocator;
//! 3. the fallback: for an object with an embedded head, the domain's intrusive list (one
//!    CAS, no memory needed); for a headless object, `synchronize_rcu` then drop inline.
//!
//! The worker periodically *collects*: it steals every thread's current block, takes the
//! sealed blocks and the intrusive list, and stamps them with a grace-period cookie taken
//! after the collection, so everything in the batch was queued before that grace period
//! began. Once the grace period completes it runs the batch with an `Atomic` token.

use core::ptr::{self, NonNull};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rcu_alloc::{AllocConfig, Block, BlockAllocator, Entry, FallbackReason, Policy, ThreadCache};
use rcu_ctx::{Atomic, Context};

use crate::deferred::{self, Headed};
use crate::domain::{saturating_nanos, DomainState};
use crate::grace_period::Urgency;
use crate::head::RcuHead;
use crate::registry::Slot;
use crate::staging::{Bracket, Staging};
use rcu_sys::futex;

/// Defensive bound on one wait for the worker; see `grace_period::MAX_EVENT_WAIT`.
const MAX_DRAIN_WAIT: Duration = Duration::from_millis(100);

/// A collected batch waiting for its grace period.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) cookie: u64,
    generation: u64,
    blocks: Vec<NonNull<Block>>,
    heads: *mut RcuHead,
}

// SAFETY: a batch owns its blocks and the objects linked from `heads`; it only moves to and
// lives on the worker thread.
unsafe impl Send for Batch {}

/// The domain-wide part of reclamation.
#[derive(Debug)]
pub(crate) struct Reclaim {
    pub(crate) alloc: BlockAllocator,
    /// Blocks sealed by their owners (full, or handed over at thread exit).
    sealed: AtomicPtr<Block>,
    /// The fallback list of headed objects.
    intrusive: AtomicPtr<RcuHead>,
    /// Items queued on the intrusive list (staged items are counted per slot).
    queued_intrusive: AtomicU64,
    invoked: AtomicU64,
    panics: AtomicU64,
    /// Collections started; a batch carries the generation of its collection.
    collections: AtomicU64,
    /// Highest generation whose batch has been run.
    completed_generation: AtomicU64,
    /// Highest generation a barrier (or backpressure) is waiting for.
    wanted_generation: AtomicU64,
    /// Bumped whenever batches are run; barrier and backpressure waiters sleep on it.
    drained_event: AtomicU32,
    drain_sleepers: AtomicU32,
    /// Set while over budget: the worker collects at once and expedites grace periods.
    expedite: AtomicBool,
    /// Times a caller that never waits (`NoReclaim`, `Atomic`) found the domain over budget.
    unwaiting_over_budget: AtomicU64,
    batch_delay_ns: AtomicU64,
}

impl Reclaim {
    pub(crate) const fn new(config: AllocConfig, batch_delay: Duration) -> Self {
        Reclaim {
            alloc: BlockAllocator::new(config),
            sealed: AtomicPtr::new(ptr::null_mut()),
            intrusive: AtomicPtr::new(ptr::null_mut()),
            queued_intrusive: AtomicU64::new(0),
            invoked: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            collections: AtomicU64::new(0),
            completed_generation: AtomicU64::new(0),
            wanted_generation: AtomicU64::new(0),
            drained_event: AtomicU32::new(0),
            drain_sleepers: AtomicU32::new(0),
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

    /// True if a barrier or backpressure waits for a collection not yet made.
    pub(crate) fn collection_wanted(&self) -> bool {
        // SeqCst: pairs with the RMW in `request_collection`; a hint re-checked each loop.
        self.wanted_generation.load(Ordering::SeqCst) > self.collections.load(Ordering::SeqCst)
    }

    /// Bytes a collected block keeps alive: its entries' objects and itself.
    fn block_charge(&self, block: NonNull<Block>) -> usize {
        // SAFETY: callers own the block.
        unsafe { block.as_ref() }.pending_bytes() + self.alloc.block_bytes()
    }

    /// Pushes a block for the worker, charging it to the budget.
    fn push_sealed(&self, block: NonNull<Block>) {
        self.alloc.budget().charge(self.block_charge(block));
        self.push_sealed_charged(block);
    }

    /// Pushes a block for the worker that was already charged to the budget.
    fn push_sealed_charged(&self, mut block: NonNull<Block>) {
        // Relaxed: the CAS publishes.
        let mut head = self.sealed.load(Ordering::Relaxed);
        loop {
            // SAFETY: as above.
            unsafe { block.as_mut() }.set_next(head);
            // Release: publishes the block's entries to the worker's Acquire swap.
            match self.sealed.compare_exchange_weak(
                head,
                block.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// The fallback for headed items: one CAS onto the intrusive list. Never fails, never
    /// allocates, takes no lock; reentrant (a handler's push only makes ours retry).
    fn push_intrusive(&self, item: &Headed) {
        let head = item.obj.cast::<RcuHead>();
        self.alloc.budget().charge(item.bytes);
        // Relaxed: a statistic.
        self.queued_intrusive.fetch_add(1, Ordering::Relaxed);
        // SAFETY: we own the object (and so its head) until the CAS publishes it.
        unsafe {
            *(*head).run.get() = Some(item.run);
            *(*head).bytes.get() = item.bytes;
        }
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

impl Drop for Reclaim {
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
        let mut run = RunCount::default();
        for block in blocks {
            run.block(self, block, &ctx);
            // SAFETY: (1) every block this domain handles came from its allocator; (2) taken
            // off the sealed list, so ours; (3) `run.block` drained it.
            unsafe { self.alloc.put(block) };
        }
        run.heads(self, heads, &ctx);
    }
}

/// Items run and panics caught while running a batch.
#[derive(Debug, Default)]
struct RunCount {
    invoked: u64,
    panics: u64,
}

impl RunCount {
    fn count(&mut self, ok: bool) {
        self.invoked += 1;
        self.panics += u64::from(!ok);
    }

    /// Runs a block's entries, leaving it empty (the caller reuses or returns it).
    fn block(&mut self, r: &Reclaim, mut block: NonNull<Block>, ctx: &Atomic<'_>) {
        // SAFETY: the caller owns the block.
        let (entries, bytes) = unsafe { block.as_mut() }.drain();
        for entry in entries {
            // SAFETY: each entry was queued once and is run once, here.
            self.count(unsafe { deferred::run(entry, ctx) });
        }
        r.alloc.budget().release(bytes + r.alloc.block_bytes());
    }

    /// Runs an intrusive list.
    fn heads(&mut self, r: &Reclaim, mut head: *mut RcuHead, ctx: &Atomic<'_>) {
        while !head.is_null() {
            // SAFETY: the caller owns the listed objects; read the head before running, as
            // running frees the object.
            let (next, run, bytes) =
                unsafe { (*(*head).next.get(), *(*head).run.get(), *(*head).bytes.get()) };
            let run = run.expect("rcu-core internal error: intrusive item without a trampoline");
            // SAFETY: as above: queued once, run once.
            self.count(unsafe { deferred::run(Entry { obj: head.cast(), run }, ctx) });
            r.alloc.budget().release(bytes);
            head = next;
        }
    }

    /// Adds the counts to the domain's statistics and reports panics.
    fn publish(self, r: &Reclaim, domain: &str) {
        // Relaxed: statistics.
        r.invoked.fetch_add(self.invoked, Ordering::Relaxed);
        if self.panics != 0 {
            // Relaxed: a statistic.
            r.panics.fetch_add(self.panics, Ordering::Relaxed);
            crate::stderr::report_line(&format!(
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

/// What a staging attempt needs besides the entry.
struct StageRequest {
    entry: Entry,
    bytes: usize,
    /// Headed items have the intrusive fallback, so over budget they never take new blocks.
    headed: bool,
}

impl DomainState {
    /// Queues a headed item under the policy of `C`. Never fails; under `Atomic` never
    /// allocates, blocks or takes a lock.
    #[inline]
    pub(crate) fn defer_headed<C: Context>(&self, slot: Option<&Slot>, item: Headed) {
        let request = StageRequest { entry: item.entry(), bytes: item.bytes, headed: true };
        if let Err(reason) = self.stage::<C>(slot, request) {
            self.reclaim.alloc.note_fallback(Policy::of::<C>(), reason);
            self.reclaim.push_intrusive(&item);
            self.wake_worker();
        }
    }

    /// Queues a headless item; `Err` gives it back when no block could be had (the caller
    /// then waits for a grace period and drops it inline).
    pub(crate) fn defer_headless<C: Context>(
        &self,
        slot: Option<&Slot>,
        entry: Entry,
        bytes: usize,
    ) -> Result<(), Entry> {
        match self.stage::<C>(slot, StageRequest { entry, bytes, headed: false }) {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.reclaim.alloc.note_fallback(Policy::of::<C>(), reason);
                Err(entry)
            }
        }
    }

    #[inline]
    fn stage<C: Context>(
        &self,
        slot: Option<&Slot>,
        request: StageRequest,
    ) -> Result<(), FallbackReason> {
        // Callers whose policy may allocate registered the thread beforehand.
        let Some(slot) = slot else {
            return Err(FallbackReason::Unregistered);
        };
        let Some(bracket) = slot.staging.open() else {
            return Err(FallbackReason::Reentrant);
        };
        if bracket.try_push(request.entry, request.bytes) {
            return Ok(());
        }
        drop(bracket);
        self.stage_slow::<C>(slot, request)
    }

    /// The current block is full or missing: seal it, reclaim what this thread may run
    /// itself, get a new block (waiting or falling back as the policy says), push.
    #[cold]
    fn stage_slow<C: Context>(
        &self,
        slot: &Slot,
        request: StageRequest,
    ) -> Result<(), FallbackReason> {
        let policy = Policy::of::<C>();
        let staging = &slot.staging;
        loop {
            if policy.may_reclaim() {
                if let Some(oldest) = staging.parked_full() {
                    // Every parking slot holds a block waiting for its grace period: wait
                    // for the oldest (backpressure, a reclaim action) rather than hand new
                    // blocks to the worker, whose frees on another thread cost the caller
                    // its allocator's warm memory.
                    if !self.gp.seq.is_completed(oldest) {
                        self.reclaim.alloc.note_backpressure();
                        self.wait_for(oldest, Urgency::Normal);
                    }
                }
            }
            // Seal and reclaim inside one bracket: a block in transit between `current`
            // and its next place is never invisible to a collection (see `collect`).
            let ready = {
                let Some(bracket) = staging.open() else {
                    return Err(FallbackReason::Reentrant);
                };
                if bracket.try_push(request.entry, request.bytes) {
                    return Ok(());
                }
                if let Some(full) = bracket.detach_full() {
                    self.seal(&bracket, full, policy);
                }
                if policy.may_reclaim() {
                    self.reclaim_parked(&bracket)
                } else {
                    None
                }
            };
            if self.reclaim.alloc.budget().is_over(request.bytes) {
                if policy.may_reclaim() {
                    self.wait_for_drain(request.bytes);
                } else {
                    // Relaxed: a count compared by waiting `Sleepable` callers (see
                    // `wait_for_drain`); no data is published through it.
                    self.reclaim.unwaiting_over_budget.fetch_add(1, Ordering::Relaxed);
                    self.hurry();
                    if request.headed {
                        if let Some(block) = ready {
                            self.return_block(staging, block, policy);
                        }
                        return Err(FallbackReason::OverBudget);
                    }
                    // Headless items have no list to fall back to; a block (which this
                    // policy may allocate) is better than waiting, which it may not.
                    self.reclaim.alloc.note_fallback(policy, FallbackReason::OverBudget);
                }
            }
            let block = match ready {
                Some(block) => block,
                None => self.take_block(staging, policy)?,
            };
            let Some(bracket) = staging.open() else {
                self.return_block(staging, block, policy);
                return Err(FallbackReason::Reentrant);
            };
            match bracket.install_and_push(block, request.entry, request.bytes) {
                Ok(spare) => {
                    drop(bracket);
                    if let Some(spare) = spare {
                        self.return_block(staging, spare, policy);
                    }
                    // A fresh block is the first sign of work for an idle worker.
                    self.wake_worker();
                    return Ok(());
                }
                Err(block) => {
                    // A signal handler installed a block meanwhile and filled it: go again.
                    drop(bracket);
                    self.return_block(staging, block, policy);
                }
            }
        }
    }

    /// Seals a full block detached inside `bracket`. Under `Reclaim` it is parked with its
    /// cookie, for this thread to run once the grace period has passed (running ready
    /// callbacks inline is a reclaim action: it may run code the caller does not own, which
    /// is what `NoReclaim` rules out). Otherwise, or with no parking slot free, it goes to
    /// the worker.
    fn seal(&self, bracket: &Bracket<'_>, block: NonNull<Block>, policy: Policy) {
        self.reclaim.alloc.budget().charge(self.reclaim.block_charge(block));
        if policy.may_reclaim() {
            let cookie = self.gp.seq.cookie();
            match bracket.park(block, cookie) {
                Ok(()) => {
                    // The worker drives grace periods that are asked for.
                    self.worker.request(cookie);
                    return;
                }
                Err(block) => self.reclaim.push_sealed_charged(block),
            }
        } else {
            self.reclaim.push_sealed_charged(block);
        }
        self.wake_worker();
    }

    /// Runs, on this thread, every parked block whose grace period has completed, inside
    /// `bracket` (a collection waits for it). Returns one drained block to reuse.
    fn reclaim_parked(&self, bracket: &Bracket<'_>) -> Option<NonNull<Block>> {
        let mut reuse = None;
        while let Some(block) = bracket.take_ready(|cookie| self.gp.seq.is_completed(cookie)) {
            // SAFETY: (1) dropped before this function returns; (2) no scope is opened
            // meanwhile on this thread (entries run in it; their own scopes nest inside).
            let ctx = unsafe { Atomic::assume() };
            let mut run = RunCount::default();
            run.block(&self.reclaim, block, &ctx);
            run.publish(&self.reclaim, self.name());
            if let Some(extra) = reuse.replace(block) {
                // SAFETY: (1) every block this domain handles came from its allocator;
                // (2) taken from our parking slot, so ours (a full pool hands it back);
                // (3) `run.block` drained it.
                unsafe { self.reclaim.alloc.put_to_pool(extra) }
                    .unwrap_or_else(|b| self.reclaim.push_sealed(b));
            }
        }
        reuse
    }

    /// A new block: thread cache first (inside a bracket), then the allocator.
    fn take_block(
        &self,
        staging: &Staging,
        policy: Policy,
    ) -> Result<NonNull<Block>, FallbackReason> {
        {
            let Some(mut bracket) = staging.open() else {
                return Err(FallbackReason::Reentrant);
            };
            if let Some(block) = bracket.cache().pop() {
                return Ok(block);
            }
        }
        let mut extra = ThreadCache::new();
        let block = self.reclaim.alloc.get(policy, &mut extra).ok_or(FallbackReason::NoBlock)?;
        if !extra.is_empty() {
            let limit = self.reclaim.alloc.config().thread_cache_limit();
            if let Some(mut bracket) = staging.open() {
                let cache = bracket.cache();
                while let Some(b) = extra.pop() {
                    // SAFETY: (1) `get` filled `extra` from this domain's pool; (2) popped, so
                    // ours (handed back if the cache is full); (3) pooled blocks are empty.
                    if let Err(b) = unsafe { cache.push(b, limit) } {
                        // SAFETY: as above; it goes back where it came from.
                        let _ = unsafe { extra.push(b, usize::MAX) };
                        break;
                    }
                }
            }
            self.reclaim.alloc.put_cache(&mut extra);
        }
        Ok(block)
    }

    /// Gives back a block this call did not need: the caller owns it and it is empty (never
    /// installed, or drained by `reclaim_parked`).
    fn return_block(&self, staging: &Staging, block: NonNull<Block>, policy: Policy) {
        let limit = self.reclaim.alloc.config().thread_cache_limit();
        if let Some(mut bracket) = staging.open() {
            // SAFETY: (1) every block this domain handles came from its allocator; (2) the
            // caller hands it over (a full cache hands it back); (3) empty, as above.
            if unsafe { bracket.cache().push(block, limit) }.is_ok() {
                return;
            }
        }
        // SAFETY: as above.
        let Err(block) = (unsafe { self.reclaim.alloc.put_to_pool(block) }) else { return };
        if policy.may_alloc() {
            // SAFETY: as above; the pool handed it back.
            unsafe { self.reclaim.alloc.put(block) };
        } else {
            // `put` may free to the global allocator, which this policy may not call: park
            // it as an empty sealed block; the worker returns it.
            self.reclaim.push_sealed(block);
        }
    }

    /// Over budget under a policy that may not wait: collect and expedite.
    fn hurry(&self) {
        // Relaxed: a hint the worker re-reads each loop; the wake below delivers it.
        self.reclaim.expedite.store(true, Ordering::Relaxed);
        self.wake_worker();
    }

    /// Backpressure (`Reclaim` policy only): over budget, ask the worker to collect and
    /// hurry, then wait until the pending memory, plus `bytes`, fits the budget again, or
    /// until everything pending when the caller arrived has run (the collection it asked
    /// for), whichever comes first: a `Sleepable` flood is throttled to what the worker
    /// frees, so it never runs far over the budget.
    ///
    /// Callers that never wait (`NoReclaim`, `Atomic`) may keep the domain over budget, and
    /// queue faster than the worker frees, so that neither condition comes. Once one of them
    /// has met the budget since this caller arrived, the wait ends after the one grace period
    /// every wait includes: waiting longer would only starve `Sleepable` writers (which used
    /// to make 50 calls per second against millions), not free memory sooner.
    #[track_caller]
    fn wait_for_drain(&self, bytes: usize) {
        let r = &self.reclaim;
        let budget = r.alloc.budget();
        // Once nothing is pending, waiting cannot help (an item larger than the budget).
        if !budget.is_over(bytes) || budget.pending() == 0 {
            return;
        }
        r.alloc.note_backpressure();
        // Relaxed: see where it is counted.
        let unwaiting = r.unwaiting_over_budget.load(Ordering::Relaxed);
        let generation = self.request_collection();
        self.hurry();
        // One grace period that began after the arrival, led by this caller if nobody else
        // leads one (the worker may be busy running a backlog): the least any wait includes.
        self.wait_for(self.gp.seq.cookie(), Urgency::Expedited);
        loop {
            // SeqCst: as in `barrier`'s wait.
            let seen = r.drained_event.load(Ordering::SeqCst);
            // Acquire: as in `barrier`.
            let drained = r.completed_generation.load(Ordering::Acquire) >= generation;
            if drained || !budget.is_over(bytes) || budget.pending() == 0 {
                return;
            }
            // Relaxed: as above.
            if r.unwaiting_over_budget.load(Ordering::Relaxed) != unwaiting {
                return;
            }
            // Woken by every batch the worker runs (it is hurrying); at most MAX_DRAIN_WAIT.
            self.sleep_until_drained(seen);
        }
    }

    /// Asks the worker for a collection that starts after this call; returns its generation.
    fn request_collection(&self) -> u64 {
        // AcqRel RMW (of zero): the worker's collection RMW that makes generation `g + 1`
        // reads from ours, so everything we did before (queueing items) happens-before that
        // collection's steals and swaps, which therefore see it.
        let g = self.reclaim.collections.fetch_add(0, Ordering::AcqRel) + 1;
        // SeqCst: read by `collection_wanted` on the worker.
        self.reclaim.wanted_generation.fetch_max(g, Ordering::SeqCst);
        self.wake_worker();
        g
    }

    fn sleep_until_drained(&self, seen: u32) {
        // SeqCst: store-buffering pair with `signal_drained` (see grace_period.rs).
        self.reclaim.drain_sleepers.fetch_add(1, Ordering::SeqCst);
        futex::wait(&self.reclaim.drained_event, seen, Some(MAX_DRAIN_WAIT));
        // SeqCst: as above.
        self.reclaim.drain_sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    fn signal_drained(&self) {
        // SeqCst: see `sleep_until_drained`.
        self.reclaim.drained_event.fetch_add(1, Ordering::SeqCst);
        if self.reclaim.drain_sleepers.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.reclaim.drained_event);
        }
    }

    /// `rcu_barrier`: returns once every item queued before the call, on any thread, has
    /// run. Caller: a thread that may sleep.
    pub(crate) fn barrier(&self) {
        let generation = self.request_collection();
        loop {
            // SeqCst: read the event before the condition, as in `wait_for_event`.
            let seen = self.reclaim.drained_event.load(Ordering::SeqCst);
            // Acquire: pairs with the Release store in `run_batch`: the batch's effects are
            // visible to the barrier's caller.
            if self.reclaim.completed_generation.load(Ordering::Acquire) >= generation {
                return;
            }
            self.sleep_until_drained(seen);
        }
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
        let r = &self.reclaim;
        // AcqRel: see `request_collection`.
        let generation = r.collections.fetch_add(1, Ordering::AcqRel) + 1;
        // Relaxed: the hint is cleared before collecting; a racing `hurry` sets it again.
        r.expedite.store(false, Ordering::Relaxed);
        let mut blocks = Vec::new();
        Staging::collect(
            || self.readers.iter().map(|slot| &*slot.staging),
            &mut blocks,
            // Stolen while being filled: charged now; sealed and parked blocks already were.
            |stolen| r.alloc.budget().charge(r.block_charge(stolen)),
        );
        // Acquire: pairs with the Release CAS in `push_sealed`.
        let mut sealed = r.sealed.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(block) = NonNull::new(sealed) {
            // SAFETY: taken from the list: ours.
            sealed = unsafe { block.as_ref() }.next();
            blocks.push(block);
        }
        // Acquire: pairs with the Release CAS in `push_intrusive`.
        let heads = r.intrusive.swap(ptr::null_mut(), Ordering::Acquire);
        // Taken after the collection: the grace period it names begins after every item
        // in the batch was queued. An empty batch needs no grace period at all.
        let cookie = if blocks.is_empty() && heads.is_null() { 0 } else { self.gp.seq.cookie() };
        Batch { cookie, generation, blocks, heads }
    }

    fn finish_generation(&self, generation: u64) {
        // Release: pairs with the Acquire in `barrier`. Monotonic: batches run in order.
        self.reclaim.completed_generation.fetch_max(generation, Ordering::Release);
        self.signal_drained();
    }

    /// Worker: runs a batch whose grace period has completed, with `ctx`.
    pub(crate) fn run_batch(&self, batch: Batch, ctx: &Atomic<'_>) {
        let r = &self.reclaim;
        let mut run = RunCount::default();
        for block in batch.blocks {
            run.block(r, block, ctx);
            // SAFETY: (1) every block this domain handles came from its allocator; (2) the
            // batch owned it and is consumed here; (3) `run.block` drained it.
            unsafe { r.alloc.put(block) };
        }
        run.heads(r, batch.heads, ctx);
        run.publish(r, self.name());
        self.finish_generation(batch.generation);
    }

    /// True if any thread has a block being filled, or a list holds items.
    pub(crate) fn anything_staged(&self) -> bool {
        // Relaxed: a hint for the worker's sleep; enqueuers that create the first work wake it.
        !self.reclaim.sealed.load(Ordering::Relaxed).is_null()
            || !self.reclaim.intrusive.load(Ordering::Relaxed).is_null()
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
        slot.staging.hand_over(
            |current| self.reclaim.push_sealed(current),
            |parked| self.reclaim.push_sealed_charged(parked),
        );
        let mut cache = ThreadCache::new();
        slot.staging.take_cache(&mut cache);
        while let Some(block) = cache.pop() {
            self.reclaim.push_sealed(block);
        }
        self.wake_worker();
    }

    /// In a forked child: the budget still counts batches the parent's worker held, which do
    /// not exist here. Recount it from what is really queued: sealed blocks, the intrusive
    /// list and parked blocks (each charged when it got there; blocks being filled are
    /// charged when sealed or stolen). Call single-threaded, after dead threads' slots were
    /// adopted.
    pub(crate) fn recount_budget_after_fork(&self) {
        let r = &self.reclaim;
        let mut pending = 0;
        // Relaxed (all): the child has a single thread.
        let mut block = r.sealed.load(Ordering::Relaxed);
        while let Some(b) = NonNull::new(block) {
            pending += r.block_charge(b);
            // SAFETY: a listed block stays valid while listed; single-threaded.
            block = unsafe { b.as_ref() }.next();
        }
        let mut head = r.intrusive.load(Ordering::Relaxed);
        while !head.is_null() {
            // SAFETY: a listed object stays valid while listed; single-threaded.
            unsafe {
                pending += *(*head).bytes.get();
                head = *(*head).next.get();
            }
        }
        for slot in self.readers.iter() {
            pending += slot.staging.parked_blocks().map(|b| r.block_charge(b)).sum::<usize>();
        }
        r.alloc.budget().reset_pending(pending);
    }

    /// Pending items: queued and not yet run.
    pub(crate) fn callbacks_pending(&self) -> u64 {
        let queued = self.callbacks_queued();
        queued.saturating_sub(self.reclaim.invoked())
    }

    /// Items queued so far.
    pub(crate) fn callbacks_queued(&self) -> u64 {
        self.readers.iter().map(|s| s.staging.queued()).sum::<u64>()
            + self.reclaim.queued_intrusive()
    }
}

/// A queue of batches owned by the worker thread: a local, so that a forked child (whose
/// worker thread is gone) leaks what the parent's worker held instead of running it twice.
pub(crate) type Batches = VecDeque<Batch>;
