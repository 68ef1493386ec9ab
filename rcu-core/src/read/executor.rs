//! A thread's QSBR executor state in one domain, kept in its slot beside the reader word
//! (`api::qsbr_thread` gives it meaning). Owner thread only: every access is Relaxed, the
//! thread's own program order being all that orders them (a fork child's single thread
//! inherits the forking thread's). Reset when a slot gets a new owner.

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
/// Online between reads: the reader word holds one section for it.
const ONLINE: u32 = 4;
const READ_SHIFT: u32 = 8;

impl ExecutorState {
    pub(crate) const fn new() -> Self {
        ExecutorState { bits: AtomicU32::new(0) }
    }

    #[inline]
    fn get(&self) -> u32 {
        // Relaxed: owner only (module comment).
        self.bits.load(Ordering::Relaxed)
    }

    #[inline]
    fn set(&self, bits: u32) {
        // Relaxed: owner only.
        self.bits.store(bits, Ordering::Relaxed);
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
