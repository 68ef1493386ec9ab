//! The reader registry: one slot per thread that has read in a domain.
//!
//! A lock-free, append-only list. A thread claims a free slot (or appends a new one) the
//! first time it reads in the domain and releases it at thread exit; slots are reused, never
//! freed before the domain itself. Grace periods walk the list without a lock, so a reader
//! registering never waits for a grace period, and a child after `fork()` finds no lock held
//! by a thread that no longer exists.

use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use crossbeam_utils::CachePadded;

use crate::queue::staging::Staging;
use crate::raw::protocol::ReaderWord;
use crate::raw::srcu::SrcuCounters;
use crate::read::executor::ExecutorState;
use crate::read::flavor::ReaderFlavor;

/// A registered reader: its word, and who it is for stall reports.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) word: CachePadded<ReaderWord>,
    /// The owner's sleepable-section counts: used in sleepable (SRCU) domains only, zero
    /// in classic ones. Never reset, also across reuse (`raw::srcu`: a scan must not see
    /// counts go backwards).
    pub(crate) srcu: SrcuCounters,
    /// The owner's deferred-work staging area in this domain.
    pub(crate) staging: CachePadded<Staging>,
    /// The owner's QSBR executor state (QSBR domains only; `api::qsbr_thread`).
    pub(crate) executor: ExecutorState,
    in_use: AtomicBool,
    /// Set when the owner exited inside a section that may still be reached (a leaked guard
    /// and root): the slot is never reused and its section never ends.
    abandoned: AtomicBool,
    /// The owner thread's identity (`current_owner_mark`): never reused by another thread,
    /// and unchanged in a child after `fork()`, which is how the child recognises its own
    /// slots.
    owner_mark: AtomicU64,
    tid: AtomicI32,
    /// The owner's thread name (as the kernel knows it, at most 15 bytes), NUL-padded.
    /// Bytewise atomics so that a report racing with slot reuse reads a garbled name at
    /// worst, never freed memory; and no lock that a forked child could find held.
    name: [AtomicU8; NAME_LEN],
    next: AtomicPtr<Slot>,
}

const NAME_LEN: usize = 16;

thread_local! {
    /// This thread's identity, taken from `NEXT_OWNER_MARK` on first use (0: none yet).
    static OWNER_MARK: AtomicU64 = const { AtomicU64::new(0) };
}

/// The next thread identity to hand out. Counted, never an address: a thread-local's
/// address is reused by a thread spawned after another exits, so it names no one thread
/// over the process's life (red team, round 2).
static NEXT_OWNER_MARK: AtomicU64 = AtomicU64::new(1);

/// This thread's identity as stored in `Slot::owner_mark`: unique
/// over the process's life (a u64 counter does not wrap), the same in a fork child.
/// Lock-free and allocation-free: callable from a signal handler.
pub(crate) fn current_owner_mark() -> u64 {
    OWNER_MARK.with(|mark| {
        // Relaxed (all): the thread's own cell; the counter only needs to be unique.
        let current = mark.load(Ordering::Relaxed);
        if current != 0 {
            return current;
        }
        let fresh = NEXT_OWNER_MARK.fetch_add(1, Ordering::Relaxed);
        // A signal handler that interrupted this first use may have set one meanwhile: the
        // first set stays, so the thread has one identity.
        match mark.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => fresh,
            Err(set) => set,
        }
    })
}

impl Slot {
    /// The owner's kernel thread id (for reports).
    pub(crate) fn tid(&self) -> i32 {
        // Relaxed: informational.
        self.tid.load(Ordering::Relaxed)
    }

    /// True if the owner exited inside a section that may still be reached (see
    /// `registration`): it holds up every later grace period for ever.
    pub(crate) fn is_abandoned(&self) -> bool {
        // Relaxed: informational (stall reports).
        self.abandoned.load(Ordering::Relaxed)
    }

    /// The owner's thread name, if it had one.
    pub(crate) fn name(&self) -> Option<String> {
        // Relaxed: informational.
        let bytes: Vec<u8> =
            self.name.iter().map(|b| b.load(Ordering::Relaxed)).take_while(|&b| b != 0).collect();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Read sections of this slot's owner still open: classic depth, or sleepable sections
    /// begun through borrowed guards (owned guards are not the owner's: they may have moved).
    /// The owner thread, or a single-threaded caller.
    pub(crate) fn open_sections(&self) -> u64 {
        self.word.depth() + self.srcu.open_borrowed()
    }

    /// Ends the QSBR executor's online period of the owner (`api::qsbr_thread`), unless a
    /// `QsbrDomain::read` closure runs: its section entered without a fence. The owner.
    pub(crate) fn end_executor_online(&self) {
        if self.executor.is_online() && self.executor.reads() == 0 {
            self.executor.set_online(false);
        }
    }

    /// Ends every section `open_sections` counts: the owner after their last loads (a
    /// forgotten guard), or a fork child for threads that do not exist in it.
    pub(crate) fn force_end_sections(&self) {
        self.word.force_exit();
        self.srcu.force_end_borrowed();
    }

    fn set_owner(&self, flavor: ReaderFlavor) {
        self.executor.reset();
        // The plain SRCU and QSBR flavours' grace periods pair with readers by a fence, not a
        // heavy barrier: their classic sections (going online; `Domain::read_lock` inside
        // cells and collections) fence too.
        self.word.set_fence_mode(
            flavor.grace_periods_fence() || !crate::raw::barrier::uses_membarrier(),
        );
        if flavor.is_srcu() {
            self.srcu.set_fence_mode(flavor.srcu_fence_mode());
        }
        // Relaxed: informational; the slot was claimed with an Acquire CAS already.
        self.tid.store(rcu_sys::thread_id(), Ordering::Relaxed);
        // Relaxed: read only by this thread, or by the single thread of a forked child.
        self.owner_mark.store(current_owner_mark(), Ordering::Relaxed);
        let mut buf = [0u8; NAME_LEN];
        // Zeroed (no name) where the OS cannot tell, which is all we need.
        rcu_sys::thread_name(&mut buf);
        for (dst, src) in self.name.iter().zip(buf) {
            // Relaxed: informational.
            dst.store(src, Ordering::Relaxed);
        }
    }
}

/// The list of slots of one domain.
#[derive(Debug)]
pub(crate) struct Registry {
    head: AtomicPtr<Slot>,
    registered: AtomicUsize,
    flavor: ReaderFlavor,
}

impl Registry {
    pub(crate) const fn new(flavor: ReaderFlavor) -> Self {
        Registry { head: AtomicPtr::new(ptr::null_mut()), registered: AtomicUsize::new(0), flavor }
    }

    /// The protocol this registry's readers follow.
    pub(crate) fn flavor(&self) -> ReaderFlavor {
        self.flavor
    }

    /// Number of threads currently registered.
    pub(crate) fn registered(&self) -> usize {
        // Relaxed: a statistic.
        self.registered.load(Ordering::Relaxed)
    }

    /// Claims a slot for the calling thread. The slot stays valid as long as the registry.
    pub(crate) fn claim(&self) -> &Slot {
        // Relaxed: a statistic.
        self.registered.fetch_add(1, Ordering::Relaxed);
        for slot in self.iter() {
            // A slot whose owner left owned guards open keeps its name until they end: stall
            // reports name the thread that made them, not the slot's next owner.
            if slot.srcu.open_owned() != 0 {
                continue;
            }
            // Acquire: pairs with the Release store in `release`: the previous owner's last
            // section end is visible before we reuse the word.
            if slot
                .in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                slot.set_owner(self.flavor);
                return slot;
            }
        }
        let slot = Box::into_raw(Box::new(Slot {
            word: CachePadded::new(ReaderWord::new()),
            srcu: SrcuCounters::new(),
            staging: CachePadded::new(Staging::new()),
            executor: ExecutorState::new(),
            in_use: AtomicBool::new(true),
            abandoned: AtomicBool::new(false),
            owner_mark: AtomicU64::new(0),
            tid: AtomicI32::new(0),
            name: Default::default(),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        // SAFETY: just allocated, not yet shared.
        let slot_ref = unsafe { &*slot };
        slot_ref.set_owner(self.flavor);
        // Relaxed: the CAS below publishes; this only seeds the first attempt.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            slot_ref.next.store(head, Ordering::Relaxed);
            // Release: publishes the slot's initialisation to walkers (Acquire in `iter`).
            match self.head.compare_exchange_weak(head, slot, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return slot_ref,
                Err(actual) => head = actual,
            }
        }
    }

    /// Returns a slot whose owner is outside any section to the pool.
    pub(crate) fn release(&self, slot: &Slot) {
        debug_assert_eq!(
            slot.open_sections(),
            0,
            "rcu-core internal error: released inside a section"
        );
        // Release: pairs with the Acquire CAS in `claim`.
        slot.in_use.store(false, Ordering::Release);
        // Relaxed: a statistic.
        self.registered.fetch_sub(1, Ordering::Relaxed);
    }

    /// Gives up a slot whose owner exited inside a section that may still be reached: the
    /// slot stays claimed (never reused) and its section open, so grace periods keep waiting
    /// for it; it no longer counts as a registered thread.
    pub(crate) fn abandon(&self, slot: &Slot) {
        // Relaxed: informational; the slot itself stays as it is.
        slot.abandoned.store(true, Ordering::Relaxed);
        // Relaxed: a statistic.
        self.registered.fetch_sub(1, Ordering::Relaxed);
    }

    /// True if a slot claimed by the calling thread is inside a read section: a wait for a
    /// grace period of this domain would then wait for itself for ever. One pass over the
    /// slots (a grace period makes the same pass), by owner identity, so it needs neither
    /// the thread's registration lists nor its context state: the last check before a wait,
    /// whatever was smuggled past the others. Abandoned slots are skipped (their owner
    /// exited).
    pub(crate) fn caller_in_section(&self) -> bool {
        let me = current_owner_mark();
        self.iter().any(|slot| {
            // Relaxed (all): `in_use` and `owner_mark` were set by this thread if they name
            // it (a slot is claimed by the thread it names); the depth is this thread's own.
            slot.in_use.load(Ordering::Relaxed)
                && !slot.is_abandoned()
                && slot.owner_mark.load(Ordering::Relaxed) == me
                && slot.open_sections() != 0
        })
    }

    /// Every slot, in use or not.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Slot> {
        // Acquire: pairs with the Release CAS in `claim` that published the node.
        let mut cur = self.head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: nodes are only freed in `Drop`, which has `&mut self`, so none while
            // `&self` (and this iterator) lives.
            let slot = unsafe { cur.as_ref()? };
            // Acquire: as above, for the next node.
            cur = slot.next.load(Ordering::Acquire);
            Some(slot)
        })
    }

    /// In a forked child: every slot not owned by the calling (only) thread belonged to a
    /// thread that does not exist here. Hand it to `on_dead` (to adopt its staged work), end
    /// its section and free it. Abandoned slots stay as they are: their sections may be
    /// reached for ever, in the child as in the parent.
    pub(crate) fn reset_after_fork(&self, on_dead: impl Fn(&Slot)) {
        let me = current_owner_mark();
        let mut live = 0;
        for slot in self.iter() {
            slot.staging.reset_strangers_after_fork();
            if slot.is_abandoned() {
                continue;
            }
            // Relaxed: the child has a single thread.
            if slot.in_use.load(Ordering::Relaxed) && slot.owner_mark.load(Ordering::Relaxed) == me
            {
                // The forking thread has a new thread id in the child: stall reports name it.
                // Relaxed: informational; single thread.
                slot.tid.store(rcu_sys::thread_id(), Ordering::Relaxed);
                // No executor runs in the child: its reads fence, and grace periods stop
                // paying for it once no `read` closure runs.
                slot.end_executor_online();
                slot.executor.leave_executor();
                live += 1;
                continue;
            }
            // Relaxed: single thread.
            if slot.in_use.load(Ordering::Relaxed) {
                on_dead(slot);
            }
            slot.force_end_sections();
            // A dead thread is no QSBR executor worker: grace periods stop paying for it.
            slot.executor.reset();
            // Relaxed: single thread.
            slot.in_use.store(false, Ordering::Relaxed);
        }
        // Relaxed: single thread.
        self.registered.store(live, Ordering::Relaxed);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let mut cur = *self.head.get_mut();
        while !cur.is_null() {
            // SAFETY: every node was created by Box::into_raw in `claim` and is owned by the
            // list; `&mut self` means no walker or owner is left (owners hold the domain alive).
            let node = unsafe { Box::from_raw(cur) };
            // Relaxed: exclusive access (`&mut self`).
            cur = node.next.load(Ordering::Relaxed);
        }
    }
}
