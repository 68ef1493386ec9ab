//! Queueing a deferred item: where it goes, and how the token's policy picks the path.
//!
//! Paths for an item, in order of preference:
//! 1. the thread's current block (fast path: no atomic read-modify-write);
//! 2. a new block from the thread cache, the pool or (if the policy may allocate) the
//!    global allocator;
//! 3. the fallback: for an object with an embedded head, the domain's intrusive list (one
//!    CAS, no memory needed); for a headless object, `synchronize_rcu` then drop inline.
//!
//! Over budget, `Sleepable` callers wait (bounded backpressure); the others fall back.

use core::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rcu_alloc::{Block, Entry, FallbackReason, OverBudget, Policy, ThreadCache};
use rcu_ctx::owed::Payment;
use rcu_ctx::{Atomic, Context};

use crate::queue::deferred::Headed;
use crate::queue::queues::{run_deallocations, RunCount};
use crate::queue::staging::{Bracket, Staging};
use crate::read::registry::Slot;
use crate::state::{DomainState, GLOBAL_STATE};

/// The longest a scope's opening waits for the grace period of its thread's parked blocks
/// when every parking slot is taken (`bounded_backpressure`): the thread asked for no wait
/// there. In rcuscale W3 (a busy reader) a grace period takes microseconds to a few
/// milliseconds.
const OPENING_BACKPRESSURE_LIMIT: Duration = Duration::from_millis(10);

/// The same for a `Sleepable` free, whose own flood fills the slots. Longer: giving up sends
/// the flood's blocks to the worker, so memory then grows up to the budget. rcuscale W3
/// `Sleepable` (`--child w3:sleepable:2`, 5 runs each) beside 2 CPU hogs peaked at 80 MiB in
/// 2 runs with a 10 ms bound, at 37 MiB in 1 run with this one, and at 4.2-4.7 MiB in all
/// runs when the wait had no bound; on an idle machine all three stay at 4.2-4.6 MiB.
const FREE_BACKPRESSURE_LIMIT: Duration = Duration::from_millis(100);

/// The longest a `Sleepable` free over budget waits for the domain to drain
/// (`wait_for_drain`): as `FREE_BACKPRESSURE_LIMIT`, for the same reasons.
const DRAIN_BACKPRESSURE_LIMIT: Duration = Duration::from_millis(100);

/// How a `Sleepable` caller's backpressure wait ended (`wait_for_drain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    /// The domain drained, or waiting can no longer help: go on.
    Done,
    /// The wait reached its bound while a grace period was held up: fall back.
    GaveUp,
}

/// What a staging attempt needs besides the entry.
struct StageRequest {
    entry: Entry,
    bytes: usize,
    /// Headed items have the intrusive fallback, so over budget they never take new blocks.
    headed: bool,
}

impl DomainState {
    /// The policy a call with a token of type `C` queues work on this domain with: the
    /// token's (`Policy::of`), except on a sleepable domain, where the token of a sleepable
    /// section (its kind kept from a `Sleepable` parent) frees as `NoReclaim`. Reclaiming may
    /// wait for this domain's grace periods, which would wait for the section if it is one of
    /// this domain's; code that does not know the domain's brand counts any sleepable
    /// section (`SrcuStruct` asks `Policy::of_within` instead). Caller: after the entry
    /// checks (`DomainRef::prepare`), with the thread's slot.
    ///
    /// # Panics
    /// With a token that may reclaim, taken inside a sleepable section of this domain (a
    /// second root): it claims a wait the thread cannot make.
    #[inline]
    #[track_caller]
    pub(crate) fn policy_for<C: Context>(&self, slot: Option<&Slot>) -> Policy {
        let policy = Policy::of::<C>();
        if policy != Policy::Reclaim || !self.readers.flavor().is_srcu() {
            return policy;
        }
        if C::IN_SLEEPABLE_SECTION {
            return Policy::NoReclaim;
        }
        self.refuse_reclaim_inside_own_section(slot, "a call that may reclaim");
        policy
    }

    /// Panics if the calling thread (whose slot is `slot`) is inside a sleepable section of
    /// this domain: `call` may wait for the domain's grace periods.
    #[track_caller]
    pub(crate) fn refuse_reclaim_inside_own_section(&self, slot: Option<&Slot>, call: &str) {
        if slot.is_some_and(|slot| slot.srcu.open_borrowed() != 0) {
            panic!(
                "rcu-core: {call} on sleepable domain '{}' inside one of its read sections, \
                 with a token that does not show the section (a second root taken inside it): \
                 it may wait for the \
                 domain's grace periods, which wait for the section (rule: nothing waits for a \
                 grace period of an SRCU domain inside a read section of the same domain). \
                 Fix: use the section's token (guard.ctx()), which frees without waiting, or \
                 end the section first",
                self.name()
            );
        }
    }

    /// Queues a headed item under `policy` (`policy_for` the caller's token). Never fails;
    /// under `NoWait` never allocates, blocks or takes a lock.
    #[inline]
    pub(crate) fn defer_headed_as(&self, policy: Policy, slot: Option<&Slot>, item: Headed) {
        let request = StageRequest { entry: item.entry(), bytes: item.bytes, headed: true };
        if let Err(reason) = self.stage(policy, slot, request) {
            self.queues.alloc.note_fallback(policy, reason);
            self.queues.push_intrusive(&item);
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
        self.defer_headless_as(Policy::of::<C>(), slot, entry, bytes)
    }

    /// As `defer_headless`, under `policy` (see `defer_headed_as`).
    pub(crate) fn defer_headless_as(
        &self,
        policy: Policy,
        slot: Option<&Slot>,
        entry: Entry,
        bytes: usize,
    ) -> Result<(), Entry> {
        match self.stage(policy, slot, StageRequest { entry, bytes, headed: false }) {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.queues.alloc.note_fallback(policy, reason);
                Err(entry)
            }
        }
    }

    #[inline]
    fn stage(
        &self,
        policy: Policy,
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
        self.stage_slow(policy, slot, request)
    }

    /// The current block is full or missing: seal it, reclaim what this thread may run
    /// itself, get a new block (waiting or falling back as the policy says), push.
    #[cold]
    fn stage_slow(
        &self,
        policy: Policy,
        slot: &Slot,
        request: StageRequest,
    ) -> Result<(), FallbackReason> {
        let staging = &slot.staging;
        loop {
            if policy.may_reclaim() {
                if let Some(oldest) = staging.parked_full() {
                    // Every parking slot holds a block waiting for its grace period: wait
                    // for the oldest (backpressure, a reclaim action) rather than hand new
                    // blocks to the worker, whose frees on another thread cost the caller
                    // its allocator's warm memory. Bounded: under budget a free must not
                    // wait for a reader for ever (the budget's own wait bounds a flood).
                    self.bounded_backpressure(staging, oldest, FREE_BACKPRESSURE_LIMIT);
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
                let full = bracket.detach_full();
                // Ready parked blocks first: the block sealed next takes the parking slot
                // they free instead of going to the worker.
                let parked =
                    if policy.may_reclaim() { self.run_ready_parked(&bracket) } else { None };
                if let Some(full) = full {
                    self.seal(&bracket, full, policy);
                }
                if policy.may_alloc() && keeps_work() {
                    self.finish_returned(&bracket, parked)
                } else {
                    parked
                }
            };
            if self.queues.alloc.budget().is_over(request.bytes) {
                let waited = policy.rules().over_budget == OverBudget::Backpressure
                    && self.wait_for_drain(request.bytes) == Drain::Done;
                if !waited {
                    if policy.rules().over_budget != OverBudget::Backpressure {
                        // Relaxed: a count compared by waiting `Sleepable` callers (see
                        // `wait_for_drain`); no data is published through it.
                        self.queues.unwaiting_over_budget.fetch_add(1, Ordering::Relaxed);
                    }
                    // A policy that may not wait, or a `Sleepable` wait that gave up at its
                    // bound: falls back as `NoReclaim` does, so that a new block (a whole
                    // block's worth of items) is not added over budget per bound.
                    self.hurry();
                    if request.headed {
                        if let Some(block) = ready {
                            self.return_block(staging, block, policy);
                        }
                        return Err(FallbackReason::OverBudget);
                    }
                    // Headless items have no list to fall back to; a block (which this
                    // policy may allocate) is better than waiting, which it may not.
                    self.queues.alloc.note_fallback(policy, FallbackReason::OverBudget);
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
                    // A fresh block is the first sign of work for a worker in a deep sleep
                    // (a timed one ends by the batch delay, in time to collect it).
                    self.worker.wake_if_deep();
                    if !policy.may_reclaim() {
                        self.help_grace_period();
                    }
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

    /// Seals a full block detached inside `bracket`. It is parked with its cookie, for this
    /// thread to run once the grace period has passed, under `Reclaim` (running ready
    /// callbacks inline is a reclaim action: it may run code the caller does not own, which
    /// is what `NoReclaim` rules out) and, on the global domain, under any policy: a thread
    /// that may not reclaim now runs it when it next opens a scope from a `Sleepable` token
    /// (`rcu_ctx::owed`, `crate::reclaim::owed`). Otherwise, or with no parking slot free, it goes to
    /// the worker.
    ///
    /// A block sealed under a policy that may call the allocator, or on the global domain,
    /// is tagged with this thread's staging area: if the worker runs it, it gives it back
    /// with the deallocations of its frees left for this thread (`collection::run_batch`,
    /// `finish_returned`). Neither parking nor tagging happens under a `NoReclaimRoot`.
    fn seal(&self, bracket: &Bracket<'_>, mut block: NonNull<Block>, policy: Policy) {
        let keeps_work = keeps_work();
        // Work may be left owed only where this runtime's payer pays it.
        let global = keeps_work
            && core::ptr::eq(self, &GLOBAL_STATE)
            && crate::reclaim::owed::owns_the_payer();
        let owner =
            if keeps_work && (policy.may_alloc() || global) { bracket.owner_tag() } else { 0 };
        if global {
            // What the worker gives back comes back to this thread: paid by its next block
            // boundary under a policy that may allocate, or its next scope opened from a
            // token that may (`crate::reclaim::owed`), whichever comes first.
            rcu_ctx::owed::owe();
        }
        // SAFETY: detached inside `bracket`: ours.
        unsafe { block.as_mut() }.set_tag(owner);
        self.queues.alloc.budget().charge(self.queues.block_charge(block));
        if !policy.may_reclaim() && global {
            // Its next scope opened from a `Sleepable` token runs what is ready, or waits
            // for the oldest parked block if every slot is taken (`pay_owed`).
            rcu_ctx::owed::owe_reclaim();
        }
        if policy.may_reclaim() || global {
            let cookie = self.gp.seq.cookie();
            match bracket.park(block, cookie) {
                // Nobody is asked for that grace period: a `Sleepable` thread leads one
                // itself when its parking slots are full (`stage_slow`, which waits anyway),
                // any other grace period may complete it, and the worker's next collection
                // (within the batch delay) takes what an idle thread leaves parked. Asking
                // the worker cost a flood a futex wake and a membarrier interrupting this
                // thread per block (rcuscale W5 `Sleepable`: 25.5 Mops/s asking, 28 not).
                Ok(()) => {
                    if !policy.may_reclaim() {
                        // It may not wait for the grace period, so it moves it forward
                        // (without waiting) once half its slots are taken: by the time they
                        // are all taken, the oldest are usually ready to run.
                        if let Some(oldest) = bracket.parked_half_full() {
                            self.advance_grace_period(oldest);
                        }
                    }
                    return;
                }
                Err(block) => self.queues.push_sealed_charged(block),
            }
        } else {
            self.queues.push_sealed_charged(block);
        }
        self.wake_worker();
    }

    /// Runs, on this thread, every parked block whose grace period has completed, inside
    /// `bracket` (a collection waits for it). Returns one drained block to reuse.
    fn run_ready_parked(&self, bracket: &Bracket<'_>) -> Option<NonNull<Block>> {
        let mut reuse = None;
        while let Some(block) = bracket.take_ready(|cookie| self.gp.seq.is_completed(cookie)) {
            // SAFETY: (1) dropped before this function returns; (2) no scope is opened
            // meanwhile on this thread (entries run in it; their own scopes nest inside).
            let ctx = unsafe { Atomic::assume() };
            let mut run = RunCount::default();
            run.block(&self.queues, block, &ctx);
            run.publish(&self.queues, self.name());
            if let Some(extra) = reuse.replace(block) {
                // SAFETY: (1) every block this domain handles came from its allocator;
                // (2) taken from our parking slot, so ours (a full pool hands it back);
                // (3) `run.block` drained it.
                unsafe { self.queues.alloc.put_to_pool(extra) }
                    .unwrap_or_else(|b| self.queues.push_sealed(b));
            }
        }
        reuse
    }

    /// Finishes, inside `bracket`, the blocks the worker gave back: their entries are the
    /// deallocations of frees whose values it dropped (plain calls to the allocator, which
    /// `policy` allows; no code the caller does not own runs). Returns one emptied block to
    /// reuse, after `reuse`'s turn: the others go to the pool (or back to the worker).
    fn finish_returned(
        &self,
        bracket: &Bracket<'_>,
        mut reuse: Option<NonNull<Block>>,
    ) -> Option<NonNull<Block>> {
        if !bracket.has_returned() {
            return reuse;
        }
        // SAFETY: (1) dropped before this function returns; (2) no scope is opened
        // meanwhile on this thread (the entries only deallocate).
        let ctx = unsafe { Atomic::assume() };
        bracket.take_returned(|block| {
            // Taken from our given-back list: ours; `policy` may call the allocator.
            run_deallocations(block, &ctx);
            if let Some(extra) = reuse.replace(block) {
                // SAFETY: (1) every block this domain handles came from its allocator;
                // (2) ours, as above; (3) emptied above.
                unsafe { self.queues.alloc.put_to_pool(extra) }
                    .unwrap_or_else(|b| self.queues.push_sealed(b));
            }
        });
        reuse
    }

    /// Pays what this thread owes in `staging` (see `crate::reclaim::owed`), as far as `payment`
    /// allows: the blocks the worker gave back (deallocations) and, with `Reclaim`, the
    /// parked blocks whose grace period has passed, after waiting for the oldest if every
    /// parking slot is taken. Keeps one emptied block in the thread cache. Caller: a context
    /// that may do what `payment` says, outside any bracket of `staging`.
    pub(crate) fn pay_owed(&self, staging: &Staging, payment: Payment) {
        if !keeps_work() {
            // What an earlier `Sleepable` use left to deallocate: the worker's next full
            // collection finishes it (`finish_idle_given_back`), as an idle thread's.
            return;
        }
        if payment == Payment::Reclaim {
            if let Some(oldest) = staging.parked_full() {
                self.bounded_backpressure(staging, oldest, OPENING_BACKPRESSURE_LIMIT);
            }
        }
        let spare = {
            let Some(bracket) = staging.open() else {
                // A signal handler interrupted this thread's bracket: pay next time.
                rcu_ctx::owed::owe();
                if payment == Payment::Reclaim {
                    rcu_ctx::owed::owe_reclaim();
                }
                return;
            };
            let parked =
                if payment == Payment::Reclaim { self.run_ready_parked(&bracket) } else { None };
            self.finish_returned(&bracket, parked)
        };
        if let Some(block) = spare {
            self.return_block(staging, block, Policy::NoReclaim);
        }
    }

    /// Every parking slot of `staging` is taken, the oldest waiting for grace period
    /// `oldest`, so what the thread seals from now on would go to the worker: waits for that
    /// grace period instead (backpressure), in a `Sleepable` free (`stage_slow`) or in a
    /// scope's opening from a `Sleepable` token, which pays for the scopes that could not
    /// wait (`pay_owed`). Bounded: under budget nothing obliges a free to wait, and a grace
    /// period held for ever (a leaked guard, DESIGN §5.1, or a reader that waits for this
    /// thread) must not stop the thread. It waits up to `limit`, moving the grace period
    /// forward itself; if that grace period still runs, it gives up (the block sealed next
    /// goes to the worker) and waits no more until that grace period has completed.
    fn bounded_backpressure(&self, staging: &Staging, oldest: u64, limit: Duration) {
        let seq = &self.gp.seq;
        let gave_up_on = staging.gave_up_on();
        if seq.is_completed(oldest) || (gave_up_on != 0 && !seq.is_completed(gave_up_on)) {
            return;
        }
        self.queues.alloc.note_backpressure();
        let start = Instant::now();
        let mut nap = Duration::from_micros(1);
        while !self.advance_grace_period(oldest) {
            if start.elapsed() >= limit {
                staging.give_up_on(oldest);
                return;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_micros(100));
        }
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
        let block = self.queues.alloc.get(policy, &mut extra).ok_or(FallbackReason::NoBlock)?;
        if !extra.is_empty() {
            let limit = self.queues.alloc.config().thread_cache_limit();
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
            self.queues.alloc.put_cache(&mut extra);
        }
        Ok(block)
    }

    /// Gives back a block this call did not need: the caller owns it and it is empty (never
    /// installed, or drained by `run_ready_parked`).
    fn return_block(&self, staging: &Staging, block: NonNull<Block>, policy: Policy) {
        let limit = self.queues.alloc.config().thread_cache_limit();
        if let Some(mut bracket) = staging.open() {
            // SAFETY: (1) every block this domain handles came from its allocator; (2) the
            // caller hands it over (a full cache hands it back); (3) empty, as above.
            if unsafe { bracket.cache().push(block, limit) }.is_ok() {
                return;
            }
        }
        // SAFETY: as above.
        let Err(block) = (unsafe { self.queues.alloc.put_to_pool(block) }) else { return };
        if policy.may_alloc() {
            // SAFETY: as above; the pool handed it back.
            unsafe { self.queues.alloc.put(block) };
        } else {
            // `put` may free to the global allocator, which this policy may not call: park
            // it as an empty sealed block; the worker returns it.
            self.queues.push_sealed(block);
        }
    }

    /// A caller that may not wait for its frees (`NoReclaim`, `Atomic`) moves the grace
    /// period the worker waits for, without waiting (`GracePeriods::try_advance`, as `poll`
    /// does; no lock, no allocation, async-signal-safe): it is running, while the worker may
    /// be waiting for a CPU, and while that grace period waits its backlog grows. Once per
    /// block.
    fn help_grace_period(&self) {
        // SeqCst: as every load of `requested` (see `Worker::request`).
        let wanted = self.worker.requested.load(Ordering::SeqCst);
        self.advance_grace_period(wanted);
    }

    /// True once grace period `seq` has completed; otherwise moves it forward as far as it
    /// can without waiting (`GracePeriods::try_advance`): `poll` and producers that may not
    /// wait. Before `process::init` nothing has registered or run a grace period, and the
    /// heavy barrier's mode is not decided: it only looks.
    pub(crate) fn advance_grace_period(&self, seq: u64) -> bool {
        if self.gp.seq.is_completed(seq) || !crate::state::ready::is_ready() {
            return self.gp.seq.is_completed(seq);
        }
        self.gp.try_advance(self, seq)
    }

    /// Over budget under a policy that may not wait: collect and expedite.
    fn hurry(&self) {
        // Relaxed: a hint the worker re-reads each loop; the wake below delivers it.
        self.queues.expedite.store(true, Ordering::Relaxed);
        self.wake_worker();
    }

    /// Backpressure (`Reclaim` policy only): over budget, ask the worker to collect and
    /// hurry, then wait until the pending memory, plus `bytes`, fits the budget again, or
    /// until everything pending when the caller arrived has run (the collection it asked
    /// for), whichever comes first: a `Sleepable` flood is throttled to what the worker
    /// frees, so it never runs far over the budget.
    ///
    /// Bounded by `DRAIN_BACKPRESSURE_LIMIT` per call: the wait includes a grace period, and
    /// a reader that waits for this thread (or a leaked guard) would hold it for ever. It
    /// then returns `GaveUp`, and the caller falls back without taking a new block (headed
    /// items: the intrusive list), so a flood behind such a reader goes on at one call per
    /// bound, and memory grows by one item per bound while the reader holds the grace
    /// period (a headless item, which has no list, by a block).
    ///
    /// Callers that never wait (`NoReclaim`, `Atomic`) may keep the domain over budget, and
    /// queue faster than the worker frees, so that neither condition comes. Once one of them
    /// has met the budget since this caller arrived, the wait ends after the one grace period
    /// every wait includes: waiting longer would only starve `Sleepable` writers (which used
    /// to make 50 calls per second against millions), not free memory sooner.
    #[track_caller]
    fn wait_for_drain(&self, bytes: usize) -> Drain {
        let r = &self.queues;
        let budget = r.alloc.budget();
        // Once nothing is pending, waiting cannot help (an item larger than the budget).
        if !budget.is_over(bytes) || budget.pending() == 0 {
            return Drain::Done;
        }
        self.assert_caller_outside_sections();
        r.alloc.note_backpressure();
        let deadline = Instant::now() + DRAIN_BACKPRESSURE_LIMIT;
        // Relaxed: see where it is counted.
        let unwaiting = r.unwaiting_over_budget.load(Ordering::Relaxed);
        let generation = self.request_collection();
        self.hurry();
        // One grace period that began after the arrival, moved forward by this caller when
        // nobody else leads one (the worker may be busy running a backlog): the least any
        // wait includes.
        let cookie = self.gp.seq.cookie();
        // Counted as waiting for a grace period while it does (`DomainStats::gp_waiters`).
        let counted = self.counters.waiting();
        let mut nap = Duration::from_micros(1);
        while !self.advance_grace_period(cookie) {
            if Instant::now() >= deadline {
                return Drain::GaveUp;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_micros(100));
        }
        drop(counted);
        loop {
            // The key before the conditions (see `rcu_sys::EventCount`).
            let seen = r.drained.key();
            // Acquire: as in `barrier`.
            let drained = r.completed_generation.load(Ordering::Acquire) >= generation;
            if drained || !budget.is_over(bytes) || budget.pending() == 0 {
                return Drain::Done;
            }
            // Relaxed: as above.
            if r.unwaiting_over_budget.load(Ordering::Relaxed) != unwaiting {
                return Drain::Done;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Drain::GaveUp;
            }
            // Woken by every batch the worker runs (it is hurrying).
            r.drained.wait(seen, Some(left));
        }
    }
}

/// False while the calling thread has a `NoReclaimRoot` alive (an executor's thread): it is
/// then left no work at all. What it would pay at a scope's opening or a block boundary
/// (parked blocks to run, given-back deallocations to finish) is the worker's: blocks it
/// seals are neither parked nor tagged (`seal`), and what an earlier `Sleepable` use left it
/// is finished by the worker's full collections (`finish_idle_given_back`). So neither an
/// opening nor a free under the root runs a batch of frees or waits for reclaim.
fn keeps_work() -> bool {
    rcu_ctx::thread_state::no_reclaim_roots() == 0
}
