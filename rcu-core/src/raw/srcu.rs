//! The sleepable (SRCU) reader/grace-period protocol on plain atomics: what a sleepable
//! reader counts, what a grace period sums. No threads, no syscalls, no allocation; the loom
//! models of `tests/tests/loom_srcu.rs` run exactly this code.
//!
//! A sleepable reader may block for as long as it likes, so a grace period cannot wait for
//! "every section that began before me" by snapshot, as classic readers are waited for
//! (`protocol`): a new section could begin on the old snapshot's terms at any time. Instead,
//! as in the kernel's SRCU, a domain has a current *index* (0 or 1), and every thread's slot
//! counts, per index, the sections it began (`lock`) and ended (`unlock`). A grace period:
//!
//! 1. issues the heavy barrier (`heavy_barrier`; a fence for the plain flavour): a section
//!    whose lock is not visible after it began after it, and sees every removal made before;
//! 2. waits until the *inactive* index drains (its lock and unlock sums are equal): the
//!    stragglers, readers that read the index before the previous grace period's flip and
//!    counted themselves after that grace period's last scan;
//! 3. flips the index, so that new sections count on the other one;
//! 4. waits until the old index drains.
//!
//! Sums read every slot's unlocks first (Acquire), then every slot's locks. A section whose
//! unlock is seen has its lock seen too: the unlock is a Release increment sequenced after
//! the lock (or, for an owned guard, reached from it through whatever moved the guard). So
//! equal sums mean every section counted before the sums were read has ended. A section whose
//! lock is not counted began after the barrier of step 1, and cannot hold anything removed
//! before the grace period. The full argument is in docs/design.md §11.
//!
//! Owner counters (`lock`, `unlock`, `owned_lock`) are written only by their slot's thread,
//! each with one add instruction (`owner_add`): a signal handler that runs a whole section
//! between two instructions of the owner's cannot lose an increment. Owned guards may end
//! on any thread, so their unlocks are atomic read-modify-writes, on their own cache line.
//!
//! One reader, one grace period:
//!
//! ```
//! use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};
//!
//! let index = SrcuIndex::new();
//! let slot = SrcuCounters::new();
//! let idx = slot.lock(&index); // a section begins
//! // A grace period: barrier, the inactive index drains, flip, the old index must drain.
//! assert!(drained([&slot], 1 - idx));
//! assert_eq!(index.flip(), idx);
//! assert!(!drained([&slot], idx)); // the section is still open: wait for it
//! slot.unlock(idx);
//! assert!(drained([&slot], idx)); // now the grace period may complete
//! ```

use crate::raw::sync::{fence, AtomicU64, Ordering};

/// A domain's current index: new sections count on `value & 1`. Only a grace-period leader
/// flips it.
#[derive(Debug)]
pub struct SrcuIndex {
    value: AtomicU64,
}

impl Default for SrcuIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl SrcuIndex {
    /// Index 0.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SrcuIndex { value: AtomicU64::new(0) }
    }

    /// Index 0.
    #[cfg(loom)]
    pub fn new() -> Self {
        SrcuIndex { value: AtomicU64::new(0) }
    }

    /// The index new sections count on: 0 or 1.
    ///
    /// ```
    /// use rcu_core::raw::srcu::SrcuIndex;
    /// let index = SrcuIndex::new();
    /// assert_eq!(index.current(), 0);
    /// index.flip();
    /// assert_eq!(index.current(), 1);
    /// ```
    #[inline(always)]
    pub fn current(&self) -> usize {
        // Relaxed: the index only steers which counter a section uses; safety comes from the
        // grace period's barrier and its two scans (module docs), not from this load.
        (self.value.load(Ordering::Relaxed) & 1) as usize
    }

    /// Flips the index (the grace-period leader, between its two scans) and returns the old
    /// one, which the second scan drains.
    pub fn flip(&self) -> usize {
        // SeqCst fences: progress, not safety, given the heavy barrier at the start of the
        // grace period. The one before keeps the first scan's loads before the flip; the one
        // after makes readers that still count on the old index stop doing so soon (the
        // kernel's smp_mb() around its flip). The red team's loom models
        // (`redteam_srcu_flip_nofence`) found safety holds without them; without the heavy
        // barrier as well, they are what keeps scan 2 safe.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences; only the leader writes it.
        let old = self.value.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        (old & 1) as usize
    }
}

/// One thread's counts of its sections of one sleepable domain, per index.
#[derive(Debug)]
#[repr(C)]
pub struct SrcuCounters {
    /// Sections begun and ended through borrowed guards, and owned guards begun: written by
    /// the owner thread only (`owner_add`).
    lock: [AtomicU64; 2],
    unlock: [AtomicU64; 2],
    owned_lock: [AtomicU64; 2],
    /// The process's barrier mode, or `true` for the plain flavour (always a fence): copied
    /// at registration, as `ReaderWord` does, so that the read path tests a flag in the
    /// cache line it already touches.
    #[cfg(not(loom))]
    fence_mode: core::sync::atomic::AtomicBool,
    /// Owned guards ended, on any thread: on their own cache line, so that other threads'
    /// unlocks do not take the owner's line away.
    owned_unlock: OwnLine,
}

/// Owned guards' unlocks, alone on a cache line.
#[derive(Debug)]
#[repr(align(64))]
struct OwnLine([AtomicU64; 2]);

impl Default for SrcuCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl SrcuCounters {
    /// No section counted. Until `set_fence_mode`, the lock path uses a fence, which is
    /// always correct.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        SrcuCounters {
            lock: [AtomicU64::new(0), AtomicU64::new(0)],
            unlock: [AtomicU64::new(0), AtomicU64::new(0)],
            owned_lock: [AtomicU64::new(0), AtomicU64::new(0)],
            fence_mode: core::sync::atomic::AtomicBool::new(true),
            owned_unlock: OwnLine([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }

    /// No section counted.
    #[cfg(loom)]
    pub fn new() -> Self {
        SrcuCounters {
            lock: [AtomicU64::new(0), AtomicU64::new(0)],
            unlock: [AtomicU64::new(0), AtomicU64::new(0)],
            owned_lock: [AtomicU64::new(0), AtomicU64::new(0)],
            owned_unlock: OwnLine([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }

    /// Sets the lock path's barrier: `true` for a fence (the plain flavour, or a process
    /// without membarrier), `false` for a compiler barrier, the CPU side then being the
    /// grace period's `heavy_barrier`. The owner, before its first section.
    #[cfg(not(loom))]
    pub fn set_fence_mode(&self, fence: bool) {
        // Relaxed: the owner sets it before its first section, on its own thread.
        self.fence_mode.store(fence, Ordering::Relaxed);
    }

    /// The reader's half of the barrier pair, after a lock increment: a SeqCst fence in
    /// fence mode, whatever the process's mode (the plain flavour's grace periods pair with
    /// it by a fence, not by membarrier); else a compiler barrier, the CPU side being the
    /// grace period's membarrier. Not `reader_barrier`, which follows the process's mode
    /// (red team of issue 25: `redteam_srcu_fence_mode`).
    #[inline(always)]
    fn barrier(&self) {
        #[cfg(not(loom))]
        // Relaxed: a per-slot constant, set by the owner at registration.
        if !self.fence_mode.load(Ordering::Relaxed) {
            // Compiler-only: the CPU side is covered by the grace period's heavy barrier.
            crate::raw::sync::compiler_fence(Ordering::SeqCst);
            return;
        }
        // SeqCst fence: pairs with the grace period's barrier (store-buffering).
        fence(Ordering::SeqCst);
    }

    /// Begins a section through a borrowed guard (owner thread only); returns the index its
    /// end must be counted on.
    #[inline(always)]
    pub fn lock(&self, index: &SrcuIndex) -> usize {
        let idx = index.current();
        self.lock_on(idx);
        idx
    }

    /// `lock`'s second half: counts a section on `idx`, which the caller read from the
    /// domain's index earlier (`lock` is `lock_on(index.current())`). Public for the models of
    /// a reader delayed between the two, whatever happens meanwhile (a straggler).
    #[inline(always)]
    pub fn lock_on(&self, idx: usize) {
        owner_add(&self.lock[idx]);
        self.barrier();
    }

    /// Ends a section begun with `lock` on this slot, which returned `idx` (owner thread
    /// only). Every load of the section is ordered before it.
    #[inline(always)]
    pub fn unlock(&self, idx: usize) {
        owner_add(&self.unlock[idx]);
    }

    /// Begins a section through an owned guard (owner thread only): its end may be counted
    /// on any thread, with `unlock_owned`.
    #[inline(always)]
    pub fn lock_owned(&self, index: &SrcuIndex) -> usize {
        let idx = index.current();
        owner_add(&self.owned_lock[idx]);
        self.barrier();
        idx
    }

    /// Ends a section begun with `lock_owned` on this slot, on any thread. The caller holds
    /// the guard, so whatever moved it here ordered its beginning before this.
    #[inline]
    pub fn unlock_owned(&self, idx: usize) {
        // Release: the section's loads happen before the scan that reads this (its Acquire
        // load in `unlocks`); an atomic add, as several threads may end owned guards of this
        // slot at once.
        self.owned_unlock.0[idx].fetch_add(1, Ordering::Release);
    }

    /// Owned guards begun on this slot and not yet ended, as far as one look can tell: never
    /// fewer than there are (ends only grow, and are read after the beginnings, which only
    /// the owner adds). Any thread.
    ///
    /// ```
    /// use rcu_core::raw::srcu::{SrcuCounters, SrcuIndex};
    /// let (index, slot) = (SrcuIndex::new(), SrcuCounters::new());
    /// let i = slot.lock_owned(&index);
    /// assert_eq!(slot.open_owned(), 1);
    /// slot.unlock_owned(i);
    /// assert_eq!(slot.open_owned(), 0);
    /// ```
    pub fn open_owned(&self) -> u64 {
        (0..2).fold(0u64, |open, i| {
            // Relaxed: a beginning counted later belongs to a guard made after this look.
            let begun = self.owned_lock[i].load(Ordering::Relaxed);
            // Relaxed: a stale end only overcounts.
            let ended = self.owned_unlock.0[i].load(Ordering::Relaxed);
            open.wrapping_add(begun.wrapping_sub(ended))
        })
    }

    /// Sections begun through borrowed guards and not yet ended (owner thread, or a
    /// single-threaded caller: a fork child, the slot's release at thread exit).
    pub fn open_borrowed(&self) -> u64 {
        // Relaxed (all): the owner's own stores.
        (0..2).fold(0u64, |open, i| {
            open.wrapping_add(
                self.lock[i]
                    .load(Ordering::Relaxed)
                    .wrapping_sub(self.unlock[i].load(Ordering::Relaxed)),
            )
        })
    }

    /// Ends every section begun through a borrowed guard and still open: a thread that
    /// exits with guards forgotten, or, in a fork child, the threads that do not exist
    /// there. The owner thread (after the sections' last loads), or a single-threaded
    /// caller. Owned guards' counts are left alone: they may be alive elsewhere.
    ///
    /// A compare-and-swap that reads `unlock` before `lock`: a signal handler that runs a
    /// whole section on this slot in between changes `unlock`, so the swap fails and is
    /// retried. A plain load and store would overwrite the handler's unlock, leaving its
    /// section open for ever (red team of issue 25: `redteam_srcu_force_end_signal`).
    pub fn force_end_borrowed(&self) {
        for i in 0..2 {
            loop {
                // Relaxed (both): the owner's own values; a handler on this thread is
                // sequenced with us.
                let ended = self.unlock[i].load(Ordering::Relaxed);
                let begun = self.lock[i].load(Ordering::Relaxed);
                // Release: as `unlock`'s, for the sections' loads.
                if self.unlock[i]
                    .compare_exchange(ended, begun, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            }
        }
    }

    /// Sections of index `i` ended: the owner's and the owned guards' (what `drained` sums
    /// first).
    pub fn unlocks(&self, i: usize) -> u64 {
        // Acquire (both): pairs with the Release of `unlock` (owner_add) and of
        // `unlock_owned`; a section whose end is seen has its loads done, and its lock,
        // sequenced or moved before its end, is seen by the loads of `locks` that follow.
        let borrowed = self.unlock[i].load(Ordering::Acquire);
        borrowed.wrapping_add(self.owned_unlock.0[i].load(Ordering::Acquire))
    }

    /// Sections of index `i` begun (what `drained` sums second).
    pub fn locks(&self, i: usize) -> u64 {
        // Relaxed (both): ordered after the unlock sum by its Acquire loads; a lock too late
        // for these loads began after the grace period's barrier (module docs).
        let borrowed = self.lock[i].load(Ordering::Relaxed);
        borrowed.wrapping_add(self.owned_lock[i].load(Ordering::Relaxed))
    }
}

/// True if no section counted on index `i` in `slots` is open, as far as one pass can tell:
/// every slot's unlocks are summed first, then every slot's locks, and the sums compared.
/// `slots` is walked twice, so it must yield the same slots both times (slots added in
/// between only add locks: the answer stays conservative).
///
/// ```
/// use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};
/// let index = SrcuIndex::new();
/// let (a, b) = (SrcuCounters::new(), SrcuCounters::new());
/// let ia = a.lock_owned(&index); // an owned guard, begun on `a`'s thread
/// let ib = b.lock(&index);
/// assert!(!drained([&a, &b], ia));
/// a.unlock_owned(ia); // ended on any thread, counted on the slot it began on
/// assert!(!drained([&a, &b], ia)); // `b`'s section is still open
/// b.unlock(ib);
/// assert!(drained([&a, &b], ia));
/// ```
pub fn drained<'a, S>(slots: S, i: usize) -> bool
where
    S: IntoIterator<Item = &'a SrcuCounters>,
    S::IntoIter: Clone,
{
    let slots = slots.into_iter();
    let unlocks = slots.clone().fold(0u64, |sum, s| sum.wrapping_add(s.unlocks(i)));
    let locks = slots.fold(0u64, |sum, s| sum.wrapping_add(s.locks(i)));
    locks == unlocks
}

/// `*count += 1` by its owner thread, in one instruction that a signal handler on the thread
/// sees done or not done, with Release semantics: the kernel's `this_cpu_inc`. On x86-64 a
/// plain `add` to memory (its store is ordered after every earlier access, and the `asm!`
/// is a compiler barrier); elsewhere, and under loom, shuttle and ThreadSanitizer (which
/// cannot see inside `asm!`), an atomic `fetch_add(Release)`.
#[inline(always)]
fn owner_add(count: &AtomicU64) {
    #[cfg(all(target_arch = "x86_64", not(any(loom, shuttle, rcu_sanitizer = "thread"))))]
    // SAFETY: `count` is a live, aligned u64 that only this thread writes (other threads
    // only load it). The asm reads and writes only it; it may write flags and does not touch
    // the stack.
    unsafe {
        core::arch::asm!("add qword ptr [{count}], 1", count = in(reg) count.as_ptr(), options(nostack));
    }
    #[cfg(not(all(target_arch = "x86_64", not(any(loom, shuttle, rcu_sanitizer = "thread")))))]
    // Release: as the x86-64 store's; the unlock counters need it (see `unlocks`).
    count.fetch_add(1, Ordering::Release);
}
