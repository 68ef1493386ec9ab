//! A thread's QSBR executor state in one domain, kept in its slot beside the reader word
//! (`api::qsbr_thread` gives it meaning). Written by the owner thread only; grace periods
//! read the online flag (`is_online`) after a SeqCst fence. Setting it is paired by that
//! fence with the one the owner issues after it (`QsbrDomain::read`); clearing it is a
//! Release store, so a grace period that reads it clear (Acquire) also sees the owner's
//! sections before it over. Reset when a slot gets a new owner.

use core::sync::atomic::{AtomicU32, Ordering};

/// Flags and the count of `read` closures running.
#[derive(Debug)]
pub(crate) struct ExecutorState {
    /// `EXECUTOR | PARKS | ONLINE`, and the closures running above `READ_SHIFT`.
    bits: AtomicU32,
}

/// The executor started this thread (`executor_thread_start`).
const EXECUTOR: u32 = 1;
/// The executor parked it at least once: its parks end online periods.
const PARKS: u32 = 2;
/// Online: its sections enter without a fence, and grace periods issue membarrier.
const ONLINE: u32 = 4;
const READ_SHIFT: u32 = 8;

impl ExecutorState {
    pub(crate) const fn new() -> Self {
        ExecutorState { bits: AtomicU32::new(0) }
    }

    #[inline]
    fn get(&self) -> u32 {
        // Acquire: pairs with `set`'s Release for grace periods reading the online flag
        // (module comment); the owner reads its own stores. A plain load on x86-64.
        self.bits.load(Ordering::Acquire)
    }

    #[inline]
    fn set(&self, bits: u32) {
        // Release: the owner's sections before it happen before a grace period that reads
        // it (module comment). A plain store on x86-64.
        self.bits.store(bits, Ordering::Release);
    }

    pub(crate) fn reset(&self) {
        self.set(0);
    }

    pub(crate) fn is_executor(&self) -> bool {
        self.get() & EXECUTOR != 0
    }

    pub(crate) fn mark_executor(&self) {
        self.set(self.get() | EXECUTOR);
    }

    /// No longer the executor's (it gave its core away, or it is a fork child's copy): its
    /// reads fence until the executor starts and parks it again. Returns whether it was. The
    /// online flag is the caller's (`Slot::end_executor_online`): a `read` closure running
    /// keeps it.
    pub(crate) fn leave_executor(&self) -> bool {
        let bits = self.get();
        self.set(bits & !(EXECUTOR | PARKS));
        bits & EXECUTOR != 0
    }

    /// True if the executor started the thread and has parked it since.
    #[inline]
    pub(crate) fn parks(&self) -> bool {
        self.get() & (EXECUTOR | PARKS) == EXECUTOR | PARKS
    }

    pub(crate) fn mark_parked(&self) {
        if self.is_executor() {
            self.set(self.get() | PARKS);
        }
    }

    #[inline]
    pub(crate) fn is_online(&self) -> bool {
        self.get() & ONLINE != 0
    }

    #[inline]
    pub(crate) fn set_online(&self, online: bool) {
        let bits = self.get();
        self.set(if online { bits | ONLINE } else { bits & !ONLINE });
    }

    /// `read` closures running on the thread.
    #[inline]
    pub(crate) fn reads(&self) -> u32 {
        self.get() >> READ_SHIFT
    }

    /// One more closure running. Panics past 2^24 nested closures rather than wrap.
    #[inline]
    pub(crate) fn begin_read(&self) {
        let bits = self.get();
        assert!(
            bits >> READ_SHIFT < u32::MAX >> READ_SHIFT,
            "rcu-core: QsbrDomain::read nested 16777215 deep"
        );
        self.set(bits + (1 << READ_SHIFT));
    }

    #[inline]
    pub(crate) fn end_read(&self) {
        self.set(self.get() - (1 << READ_SHIFT));
    }
}
