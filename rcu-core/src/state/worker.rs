//! A domain worker's controls: what callers use to ask it for grace periods and wake it,
//! and its thread's lifecycle. What the worker does is `worker_thread`.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};

use rcu_sys::ServiceThread;

/// `Worker::sleep` values.
const AWAKE: u8 = 0;
const TIMED: u8 = 1;
const DEEP: u8 = 2;

/// The worker's controls, part of the domain state.
#[derive(Debug)]
pub(crate) struct Worker {
    /// The highest grace-period number requested: through `start_poll`, an async future, or
    /// by the worker itself for its oldest batch (published for `help_grace_period`).
    pub(crate) requested: AtomicU64,
    /// `AWAKE`, or how the worker sleeps (or is about to): `TIMED` or `DEEP` (wakers skip
    /// the syscall when it cannot be needed).
    sleep: AtomicU8,
    /// True once the worker thread runs its loop (`rcu_core::init` waits for it).
    looping: AtomicBool,
    pub(crate) thread: ServiceThread,
}

impl Worker {
    pub(crate) const fn new() -> Self {
        Worker {
            requested: AtomicU64::new(0),
            sleep: AtomicU8::new(AWAKE),
            looping: AtomicBool::new(false),
            thread: ServiceThread::new(),
        }
    }

    #[inline]
    pub(crate) fn is_started(&self) -> bool {
        self.thread.is_started()
    }

    /// Records a request for grace period `seq` and wakes the worker if it sleeps. Never
    /// blocks, never allocates.
    pub(crate) fn request(&self, seq: u64) {
        // SeqCst: see `wake_if_sleeping`.
        self.requested.fetch_max(seq, Ordering::SeqCst);
        self.wake_if_sleeping();
    }

    /// Wakes the worker if it is asleep or about to sleep. Lock-free, allocation-free and
    /// async-signal-safe (a futex wake).
    pub(crate) fn wake_if_sleeping(&self) {
        self.wake_if(|sleep| sleep != AWAKE);
    }

    /// Wakes the worker only if it sleeps without a deadline (`DEEP`): for work it need not
    /// see before its next batch-delay collection (a block staged by a thread), which a
    /// `TIMED` sleep ends in time anyway. Waking it for every fresh block cost a `Sleepable`
    /// flood a futex wake per block (rcuscale W5).
    pub(crate) fn wake_if_deep(&self) {
        self.wake_if(|sleep| sleep == DEEP);
    }

    fn wake_if(&self, needed: impl Fn(u8) -> bool) {
        // SeqCst fence: store-buffering pair with the worker's `sleep` store and fence in
        // `announce_sleep`: either the worker's re-check sees what the caller queued before
        // calling this, or we see it sleeping and wake it.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if needed(self.sleep.load(Ordering::Relaxed)) {
            self.thread.wake();
        }
    }

    /// The worker, before its last re-check for work: announces how it will sleep (`TIMED`
    /// when what is staged bounds the sleep by the batch delay, `DEEP` otherwise). The caller
    /// re-checks for work after this (see `wake_if`).
    pub(crate) fn announce_sleep(&self, timed: bool) {
        // SeqCst: see `wake_if`.
        self.sleep.store(if timed { TIMED } else { DEEP }, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The worker: awake again.
    pub(crate) fn announce_awake(&self) {
        // Relaxed: only this thread decides on it; a waker that still sees it asleep wakes
        // it needlessly, which is harmless.
        self.sleep.store(AWAKE, Ordering::Relaxed);
    }

    /// Asks the worker to stop once nothing but itself holds the domain's state; never
    /// waits (see the module docs).
    pub(crate) fn request_stop(&self) {
        self.thread.request_stop();
    }

    /// In a forked child the worker thread does not exist: forget it, so that it is started
    /// again on demand and never joined.
    pub(crate) fn reset_after_fork(&self) {
        self.thread.forget_after_fork();
        // Relaxed (both): the child has a single thread.
        self.sleep.store(AWAKE, Ordering::Relaxed);
        self.looping.store(false, Ordering::Relaxed);
    }

    /// The worker thread: it is set up and enters its loop.
    pub(crate) fn mark_looping(&self) {
        // Relaxed: a progress flag; nothing is published through it.
        self.looping.store(true, Ordering::Relaxed);
    }

    /// True once the worker thread runs its loop.
    pub(crate) fn is_looping(&self) -> bool {
        // Relaxed: see `mark_looping`.
        self.looping.load(Ordering::Relaxed)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.thread.stopping()
    }
}
