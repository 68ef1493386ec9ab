//! A thread's staging area in one domain: the block it is filling, the blocks it sealed and
//! parked to run itself, the blocks the worker gave back with frees for it to finish, and
//! its cache of empty blocks. Queueing an item is, on the fast
//! path, a few plain loads and stores.
//!
//! Two parties touch it. The owner thread does everything inside a *bracket*; the domain's
//! worker *steals* blocks (so that items queued by an idle thread still reach their grace
//! period, and `rcu_barrier` sees them). They coordinate like a reader and a grace period:
//!
//! - A bracket makes `seq` odd (a Release store, like the reader word's), runs
//!   `reader_barrier()`, and on close makes `seq` even with a Release store that publishes
//!   what was written inside.
//! - The worker swaps blocks out (`current` and the parked slots) with atomic swaps, runs
//!   `heavy_barrier()`, then waits until each slot's `seq` is even or has moved on. After the
//!   barrier, an owner either had its odd `seq` visible (the worker waits for the bracket to
//!   close, acquiring its writes), or opened its bracket after the barrier's point and so sees
//!   the worker's swaps and never touches a stolen block.
//!
//! Brackets never block, allocate or take a lock; whatever may (the allocator, waiting for
//! memory) happens between brackets. A bracket also makes the owner's state safe against its
//! own signal handlers: a handler that interrupts an open bracket finds `seq` odd and takes
//! the embedded-head path instead of touching the blocks or the cache.
//!
//! Its atomics, fences and spin-waits come through `crate::raw::sync`, so under `cfg(loom)` or
//! `cfg(shuttle)` this module is built on the model checker's and exported (hidden) for the
//! models in `tests/tests/loom.rs` and `tests/tests/shuttle.rs`; that is why its items are
//! `pub` (in the normal build the module is private, so they are crate-private there).
#![cfg_attr(not(any(loom, shuttle)), allow(unreachable_pub))]

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use rcu_alloc::{Block, Entry, ThreadCache};

use crate::raw::barrier::{heavy_barrier, reader_barrier};
use crate::raw::sync::{wait_while, AtomicPtr, AtomicU64, Ordering};

/// Blocks a thread can park to run itself after their grace period (`Reclaim` policy): the
/// items a `Sleepable` flood keeps in flight. Eight (about 2000 items at 4 KiB blocks): in
/// rcuscale's W5 (5 M frees, process peak RSS, one run each) 4 slots ran 8.5-10.9 Mops/s at
/// 3.7 MiB, 8 slots 16.8-21.7 Mops/s at 3.9-4.2 MiB, 16 slots no faster at 4.3-4.9 MiB. Two
/// under loom and shuttle: enough for a slot to be taken while another is not, few enough
/// that a model's owner fills them all (and hands blocks to the worker), and each slot is an
/// atomic that every sweep touches.
const PARKED: usize = if cfg!(any(loom, shuttle)) { 2 } else { 8 };

/// Pushes `block`, which the caller owns, on a list of blocks linked through their headers
/// (a lock-free stack whose consumers take the whole list with a swap, so no ABA). Its CAS
/// is a Release: whoever swaps the list out with an Acquire sees the block's contents.
pub fn push_block(list: &AtomicPtr<Block>, mut block: NonNull<Block>) {
    // Relaxed: the CAS publishes.
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the block until the CAS publishes it.
        unsafe { block.as_mut() }.set_next(head);
        // Release: publishes the block (see above).
        match list.compare_exchange_weak(head, block.as_ptr(), Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(actual) => head = actual,
        }
    }
}

/// The staging area.
#[derive(Debug)]
pub struct Staging {
    seq: AtomicU64,
    current: AtomicPtr<Block>,
    /// Sealed blocks waiting for the grace period in `parked_cookie`, to be run by the owner.
    parked: [AtomicPtr<Block>; PARKED],
    /// The cookie each parked block waits for: atomics, so that the owner never reads the
    /// header of a block the worker may have stolen meanwhile.
    parked_cookie: [AtomicU64; PARKED],
    /// Blocks the worker ran and gave back (`give_back`), holding the deallocations it left
    /// to the owner: a list linked through the blocks' headers. The worker pushes; the owner
    /// takes the whole list inside a bracket; another thread (the worker for an idle owner, a
    /// barrier's caller) only under `strangers`.
    returned: AtomicPtr<Block>,
    /// 1 while a thread other than the owner holds the right to take and finish `returned`
    /// (`finish_returned_as_stranger`), 0 otherwise.
    strangers: AtomicU64,
    cache: UnsafeCell<ThreadCache>,
    /// Items this slot's owners queued (owner-written, plain load and store).
    queued: AtomicU64,
    /// The grace period the owner last gave up waiting for as backpressure (see
    /// `DomainState::bounded_backpressure`), 0 for none (owner-only, plain load and store).
    gave_up_on: AtomicU64,
}

// SAFETY: `cache` is touched only inside an open bracket, so by one party at a time (the
// owner, never its signal handlers); everything else is atomic.
unsafe impl Sync for Staging {}

/// The owner's exclusive access, from `open` to drop (unwinding included).
#[derive(Debug)]
pub struct Bracket<'a> {
    staging: &'a Staging,
    seq: u64,
}

impl Staging {
    /// An empty staging area, no bracket open.
    #[cfg(not(loom))]
    // Public only under shuttle (for its models), where no `Default` is wanted either.
    #[cfg_attr(shuttle, allow(clippy::new_without_default))]
    pub const fn new() -> Self {
        Staging {
            seq: AtomicU64::new(0),
            current: AtomicPtr::new(ptr::null_mut()),
            parked: [const { AtomicPtr::new(ptr::null_mut()) }; PARKED],
            parked_cookie: [const { AtomicU64::new(0) }; PARKED],
            returned: AtomicPtr::new(ptr::null_mut()),
            strangers: AtomicU64::new(0),
            cache: UnsafeCell::new(ThreadCache::new()),
            queued: AtomicU64::new(0),
            gave_up_on: AtomicU64::new(0),
        }
    }

    /// An empty staging area, no bracket open (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Staging {
            seq: AtomicU64::new(0),
            current: AtomicPtr::new(ptr::null_mut()),
            parked: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            parked_cookie: core::array::from_fn(|_| AtomicU64::new(0)),
            returned: AtomicPtr::new(ptr::null_mut()),
            strangers: AtomicU64::new(0),
            cache: UnsafeCell::new(ThreadCache::new()),
            queued: AtomicU64::new(0),
            gave_up_on: AtomicU64::new(0),
        }
    }

    /// Opens the owner's bracket; `None` if it is already open (a reentrant call from a
    /// signal handler that interrupted it).
    #[inline(always)]
    pub fn open(&self) -> Option<Bracket<'_>> {
        // Relaxed: only the owner (and its handlers, which restore it) writes `seq`.
        let seq = self.seq.load(Ordering::Relaxed);
        if seq & 1 != 0 {
            return None;
        }
        // Release: so that a worker that reads this opening store also sees the previous
        // bracket's writes (as the reader word's, raw::protocol). Ordering it before the
        // loads below is reader_barrier's job, paired with the worker's heavy_barrier.
        self.seq.store(seq + 1, Ordering::Release);
        reader_barrier();
        Some(Bracket { staging: self, seq })
    }

    /// True while an owner bracket is open. Read by the owner thread itself, it says that
    /// this code runs in a signal handler that interrupted the bracket: a wait for anything
    /// that waits for brackets (`rcu_barrier`) could never end there.
    pub fn is_open(&self) -> bool {
        // Relaxed: the owner's own store (or a handler's on its thread, which restores it).
        self.seq.load(Ordering::Relaxed) & 1 != 0
    }

    /// Items queued through this slot.
    pub fn queued(&self) -> u64 {
        // Relaxed: a statistic.
        self.queued.load(Ordering::Relaxed)
    }

    /// True if a block is being filled, parked or given back (a hint for the worker's
    /// sleep).
    pub fn has_blocks(&self) -> bool {
        // Relaxed: a hint.
        !self.current.load(Ordering::Relaxed).is_null()
            || !self.returned.load(Ordering::Relaxed).is_null()
            || self.parked.iter().any(|p| !p.load(Ordering::Relaxed).is_null())
    }

    /// Worker: gives a run block back to this slot's owner, with the entries it left for the
    /// owner (deallocations). Never blocks; the owner takes it in its next slow path, or a
    /// stranger finishes it (`finish_returned_as_stranger`).
    pub fn give_back(&self, block: NonNull<Block>) {
        // Its Release pairs with the AcqRel swap in `take_returned`.
        push_block(&self.returned, block);
    }

    /// A thread other than the owner (the worker, for an idle owner; a barrier's caller)
    /// takes the given-back list and hands each block to `finish`, which deallocates what it
    /// holds, all while holding this slot's strangers' right (`strangers`). So a stranger
    /// whose swap finds the list emptied by another stranger's earlier swap waits, when it
    /// takes the right, until that one has finished: what it took is deallocated before the
    /// later stranger goes on (`DomainState::finish_given_back` relies on it). With `wait`
    /// false it gives up at once if another stranger holds the right (the worker: that one
    /// finishes the list anyway); `waited` is called while waiting (see `sync::wait_while`).
    /// Returns whether it took the list.
    pub fn finish_returned_as_stranger(
        &self,
        wait: bool,
        waited: impl FnMut(core::time::Duration),
        finish: impl FnMut(NonNull<Block>),
    ) -> bool {
        // Acquire (success): pairs with the Release store that gave the right back, so the
        // previous stranger's finishing happens-before ours (and our caller's return).
        let take =
            || self.strangers.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if !take() {
            if !wait {
                return false;
            }
            wait_while(|| !take(), waited);
        }
        /// Gives the right back also when `finish` unwinds (a stranger must never keep it).
        struct Release<'a>(&'a AtomicU64);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                // Release: pairs with the Acquire CAS above of the next stranger.
                self.0.store(0, Ordering::Release);
            }
        }
        let _release = Release(&self.strangers);
        self.take_returned(finish);
        true
    }

    /// A barrier's part for this slot, after its generation has run
    /// (`DomainState::finish_given_back` argues it): takes the given-back list as a stranger,
    /// waiting for another stranger that holds the right, hands each block to `finish`, then
    /// waits for an owner bracket that took the list first (`wait_quiescent`). When it
    /// returns, every block given back to this slot before the call began has been finished.
    /// `waited` is called during long waits (see `sync::wait_while`).
    pub fn finish_returned_for_barrier(
        &self,
        finish: impl FnMut(NonNull<Block>),
        mut waited: impl FnMut(core::time::Duration),
    ) {
        self.finish_returned_as_stranger(true, &mut waited, finish);
        self.wait_quiescent(waited);
    }

    /// Swaps the given-back list out, handing each block to `f`.
    fn take_returned(&self, mut f: impl FnMut(NonNull<Block>)) {
        // AcqRel: Acquire pairs with the Release CAS in `give_back`; both halves settle the
        // race between the owner and a stranger (whoever swaps first owns the list), and a
        // stranger's swap that reads the owner's swap (or a later push, which continues its
        // release sequence) synchronizes with it: the owner's bracket opening then
        // happens-before the stranger's `wait_quiescent` (see `finish_given_back`).
        let mut next = self.returned.swap(ptr::null_mut(), Ordering::AcqRel);
        while let Some(block) = NonNull::new(next) {
            // SAFETY: the list is ours since the swap.
            next = unsafe { block.as_ref() }.next();
            f(block);
        }
    }

    /// Owner: the oldest cookie among the parked blocks, if every parking slot is taken.
    pub fn parked_full(&self) -> Option<u64> {
        let mut oldest = u64::MAX;
        for (slot, c) in self.parked.iter().zip(&self.parked_cookie) {
            // Relaxed: the owner's own stores (the worker only ever empties slots).
            if slot.load(Ordering::Relaxed).is_null() {
                return None;
            }
            // Relaxed: as above.
            oldest = oldest.min(c.load(Ordering::Relaxed));
        }
        Some(oldest)
    }

    /// Owner: the grace period it last gave up waiting for, 0 for none.
    pub fn gave_up_on(&self) -> u64 {
        // Relaxed: owner-only.
        self.gave_up_on.load(Ordering::Relaxed)
    }

    /// Owner: records the grace period it gave up waiting for.
    pub fn give_up_on(&self, cookie: u64) {
        // Relaxed: owner-only.
        self.gave_up_on.store(cookie, Ordering::Relaxed);
    }

    /// Worker: takes the current block and every parked block. The worker must then
    /// `heavy_barrier()` and `wait_quiescent()` before reading `current`'s (as `collect`
    /// does).
    pub fn steal(&self, current: &mut Option<NonNull<Block>>, parked: &mut Vec<NonNull<Block>>) {
        *current = self.take_current();
        self.steal_parked(parked);
    }

    /// Worker: takes the parked blocks only (they were complete when parked).
    pub fn steal_parked(&self, parked: &mut Vec<NonNull<Block>>) {
        self.take_parked(|b| parked.push(b));
    }

    /// Swaps `current` out.
    fn take_current(&self) -> Option<NonNull<Block>> {
        // AcqRel: settles any race with the owner's CAS in `detach_full` (whoever wins owns
        // the block); Release also makes a steal by the owner itself (`hand_over`) visible to
        // a collection's swap that reads it.
        NonNull::new(self.current.swap(ptr::null_mut(), Ordering::AcqRel))
    }

    /// Swaps every parking slot out, handing each block found to `f`.
    fn take_parked(&self, mut f: impl FnMut(NonNull<Block>)) {
        for slot in &self.parked {
            // AcqRel: Acquire pairs with the Release store in `park`; both halves settle the
            // race with the owner's swap in `take_ready` (whoever wins owns the block), and
            // a collection's swap that reads the owner's null synchronizes with it (see
            // `collect`).
            if let Some(b) = NonNull::new(slot.swap(ptr::null_mut(), Ordering::AcqRel)) {
                f(b);
            }
        }
    }

    /// In a forked child (single-threaded): a stranger that held the right to finish the
    /// given-back list at the fork does not exist here; give the right back. What it had
    /// taken is not in the child's lists, so it is leaked there, never finished twice.
    #[cfg(not(loom))]
    pub(crate) fn reset_strangers_after_fork(&self) {
        // Relaxed: the child has a single thread.
        self.strangers.store(0, Ordering::Relaxed);
    }

    /// The parked blocks, for a single-threaded recount (a fork child's budget).
    #[cfg(not(loom))]
    pub(crate) fn parked_blocks(&self) -> impl Iterator<Item = NonNull<Block>> + '_ {
        // Relaxed: single-threaded use.
        self.parked.iter().filter_map(|p| NonNull::new(p.load(Ordering::Relaxed)))
    }

    /// Worker: the staging half of a collection, over every slot `slots()` yields (it is
    /// called once per pass). Every block taken goes to `blocks`; each current block (not
    /// yet charged to the budget) is first shown to `on_stolen` (the caller charges it),
    /// once its owner's bracket has closed. `waited` is called while a wait for a bracket
    /// is long (see `wait_quiescent`). The caller swaps the domain's lists (sealed blocks,
    /// headed items) afterwards. Given-back blocks are not taken: they need no grace period
    /// (`finish_returned_as_stranger`).
    ///
    /// Steals every slot's current and parked blocks, issues one heavy barrier, and waits
    /// for every owner bracket open at the barrier's point to close (a bracket may be
    /// sealing a block or running parked ones); it then sweeps each slot's parked blocks
    /// again: what those brackets parked is caught by this second sweep, and what they
    /// pushed to the lists is visible to the caller's swaps. What brackets opened after the
    /// barrier's point touch was queued after the collection began.
    ///
    /// After a slot's second sweep it waits once more. An owner bracket that took a parked
    /// block before that sweep (to run it inline, its grace period having passed) may still
    /// be running it; without this wait, the block would be neither in this collection nor
    /// run when its generation completes, and an `rcu_barrier` waiting for it would return
    /// early. The owner opened that bracket before its take, and our swap, later in the
    /// slot's modification order, reads the owner's swap (or a later store of the owner's),
    /// so the wait sees the bracket open (loom:
    /// `e_collection_waits_for_a_parked_block_run_inline`).
    pub fn collect<'a, I>(
        slots: impl Fn() -> I,
        blocks: &mut Vec<NonNull<Block>>,
        mut on_stolen: impl FnMut(NonNull<Block>),
        mut waited: impl FnMut(&Staging, core::time::Duration),
    ) where
        I: Iterator<Item = &'a Staging>,
    {
        let mut stolen = Vec::new();
        for staging in slots() {
            let mut current = None;
            staging.steal(&mut current, blocks);
            stolen.extend(current);
        }
        heavy_barrier();
        for staging in slots() {
            staging.wait_quiescent(|elapsed| waited(staging, elapsed));
        }
        for block in stolen {
            on_stolen(block);
            blocks.push(block);
        }
        for staging in slots() {
            staging.steal_parked(blocks);
            staging.wait_quiescent(|elapsed| waited(staging, elapsed));
        }
    }

    /// Exiting owner: takes its own current, parked and given-back blocks and hands them to
    /// `current` (uncharged blocks) and `parked` (sealed blocks), which push them on the
    /// domain's sealed list, and to `returned` (deallocations, which the exiting owner
    /// finishes itself), all inside its own bracket. A block in transit from the slot to the
    /// list is then never invisible to a concurrent collection: one whose swaps find the slot
    /// already empty read ours, so it waits for this bracket (see `collect`) and its sweep of
    /// the list sees the pushes (loom: `e_exit_hand_over_is_never_missed`); and a barrier
    /// whose swap of `returned` finds it empty waits for this bracket the same way (see
    /// `DomainState::finish_given_back`).
    ///
    /// If the bracket cannot be opened (a dead owner's stuck open, in a fork child, or a
    /// dropped state), nobody collects concurrently and the hand-over needs none. Takes no
    /// lock itself.
    pub fn hand_over(
        &self,
        mut current: impl FnMut(NonNull<Block>),
        parked: impl FnMut(NonNull<Block>),
        returned: impl FnMut(NonNull<Block>),
    ) {
        let _bracket = self.open();
        if let Some(block) = self.take_current() {
            current(block);
        }
        self.take_returned(returned);
        self.take_parked(parked);
    }

    /// After a heavy barrier (a collection), or a swap that read an owner's (a barrier):
    /// waits until the owner bracket open at that point, if any, has closed. Brackets never
    /// block, so this ends quickly unless the owner was preempted inside one, or a signal
    /// handler that interrupted it blocks: it then sleeps (`sync::wait_while`) and calls
    /// `waited(elapsed)` after each nap, so the caller can report the stall.
    pub fn wait_quiescent(&self, waited: impl FnMut(core::time::Duration)) {
        // Acquire: pairs with the Release in `Bracket::drop`.
        let s = self.seq.load(Ordering::Acquire);
        if s & 1 == 0 {
            return;
        }
        // Acquire: as above.
        wait_while(|| self.seq.load(Ordering::Acquire) == s, waited);
    }

    /// Exiting owner (or a fork child, for a thread that did not come along): forces the
    /// bracket shut (its owner will never close it) and takes the cached blocks.
    pub fn take_cache(&self, into: &mut ThreadCache) {
        // Relaxed: single-party access from here on (the owner is exiting or gone).
        let s = self.seq.load(Ordering::Relaxed) | 1;
        // Release: as in `Bracket::drop`.
        self.seq.store(s + 1, Ordering::Release);
        // SAFETY: no owner bracket can be open any more (see above).
        let cache = unsafe { &mut *self.cache.get() };
        while let Some(b) = cache.pop() {
            // SAFETY: (1)-(3) were promised when the block entered this cache (a block of the
            // domain's allocator, given up, empty); popped, so ours until pushed on.
            if let Err(b) = unsafe { into.push(b, usize::MAX) } {
                // SAFETY: as above; it goes back where it came from.
                let _ = unsafe { cache.push(b, usize::MAX) };
                break;
            }
        }
    }
}

impl Bracket<'_> {
    /// The current block, if any. Ours while the bracket is open: the worker only takes it
    /// by swapping it out, and then waits for this bracket to close.
    #[inline(always)]
    fn current(&self) -> Option<NonNull<Block>> {
        // Relaxed: the owner's own store or the worker's swap; the bracket orders it.
        NonNull::new(self.staging.current.load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn count_queued(&self) {
        let q = &self.staging.queued;
        // Relaxed load and store, no RMW: only the owner's bracket writes it.
        q.store(q.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Pushes into the current block if it has room.
    #[inline(always)]
    pub fn try_push(&self, entry: Entry, bytes: usize) -> bool {
        match self.current() {
            // SAFETY: see `current`.
            Some(mut b) if !unsafe { b.as_ref() }.is_full() => {
                // SAFETY: as above.
                unsafe { b.as_mut() }.push(entry, bytes);
                self.count_queued();
                true
            }
            _ => false,
        }
    }

    /// Takes the current block out if it is full (to be sealed by the caller, still inside
    /// this bracket, so that a collection never misses it in transit). `None` if there is no
    /// full current block or the worker stole it.
    pub fn detach_full(&self) -> Option<NonNull<Block>> {
        let b = self.current()?;
        // SAFETY: see `current`.
        if !unsafe { b.as_ref() }.is_full() {
            return None;
        }
        // AcqRel: settles the race with the worker's swap; whoever wins owns the block.
        self.staging
            .current
            .compare_exchange(b.as_ptr(), ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .and_then(NonNull::new)
    }

    /// Installs `block` (owned by the caller) as current unless one is, and pushes `entry`
    /// into the current block. Returns the block if it was not needed; `Err` if the current
    /// block (installed by a signal handler meanwhile) is full.
    pub fn install_and_push(
        &self,
        mut block: NonNull<Block>,
        entry: Entry,
        bytes: usize,
    ) -> Result<Option<NonNull<Block>>, NonNull<Block>> {
        if self.try_push(entry, bytes) {
            return Ok(Some(block));
        }
        if self.current().is_some() {
            return Err(block);
        }
        // SAFETY: the caller owns `block`; it becomes current below.
        unsafe { block.as_mut() }.push(entry, bytes);
        // Relaxed: published by the bracket's closing Release (and the worker's swap).
        self.staging.current.store(block.as_ptr(), Ordering::Relaxed);
        self.count_queued();
        Ok(None)
    }

    /// Parks a sealed block to run after grace period `cookie`; gives it back if every
    /// parking slot is taken.
    pub fn park(&self, block: NonNull<Block>, cookie: u64) -> Result<(), NonNull<Block>> {
        for (slot, c) in self.staging.parked.iter().zip(&self.staging.parked_cookie) {
            // Relaxed: only the owner stores non-null here, inside brackets.
            if slot.load(Ordering::Relaxed).is_null() {
                // Relaxed: published by the Release store below.
                c.store(cookie, Ordering::Relaxed);
                // Release: publishes the block and its cookie to the worker's swap.
                slot.store(block.as_ptr(), Ordering::Release);
                return Ok(());
            }
        }
        Err(block)
    }

    /// The oldest cookie among the parked blocks, if at least half the parking slots are
    /// taken.
    pub fn parked_half_full(&self) -> Option<u64> {
        let mut taken = 0;
        let mut oldest = u64::MAX;
        for (slot, c) in self.staging.parked.iter().zip(&self.staging.parked_cookie) {
            // Relaxed: the owner's own stores (the worker only ever empties slots).
            if !slot.load(Ordering::Relaxed).is_null() {
                taken += 1;
                // Relaxed: as above.
                oldest = oldest.min(c.load(Ordering::Relaxed));
            }
        }
        (taken * 2 >= PARKED).then_some(oldest)
    }

    /// Takes a parked block whose cookie `is_ready`, if any (the worker may steal them).
    pub fn take_ready(&self, is_ready: impl Fn(u64) -> bool) -> Option<NonNull<Block>> {
        for (slot, c) in self.staging.parked.iter().zip(&self.staging.parked_cookie) {
            // Relaxed: the owner's own stores.
            if slot.load(Ordering::Relaxed).is_null() || !is_ready(c.load(Ordering::Relaxed)) {
                continue;
            }
            // AcqRel: settles the race with the worker's swap.
            if let Some(b) = NonNull::new(slot.swap(ptr::null_mut(), Ordering::AcqRel)) {
                return Some(b);
            }
        }
        None
    }

    /// Takes the blocks the worker gave back, handing each to `f` (the owner finishes their
    /// entries inside this bracket, so that a collection waits for it; see `collect`).
    pub fn take_returned(&self, f: impl FnMut(NonNull<Block>)) {
        self.staging.take_returned(f);
    }

    /// True if the worker gave blocks back (a hint: `take_returned` decides).
    pub fn has_returned(&self) -> bool {
        // Relaxed: a hint.
        !self.staging.returned.load(Ordering::Relaxed).is_null()
    }

    /// This staging area's address, which the worker uses to give blocks back
    /// (`Block::set_tag` at sealing).
    pub fn owner_tag(&self) -> u64 {
        self.staging as *const Staging as u64
    }

    /// The thread cache.
    pub fn cache(&mut self) -> &mut ThreadCache {
        // SAFETY: the bracket is open and `&mut self` makes this the only borrow.
        unsafe { &mut *self.staging.cache.get() }
    }
}

impl Drop for Bracket<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: what was written inside the bracket happens-before the worker's Acquire
        // load that sees it closed.
        self.staging.seq.store(self.seq + 2, Ordering::Release);
    }
}
