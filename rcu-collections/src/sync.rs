//! The one door through which the collections' atomics and spin-waits come, so that loom can
//! model the raw protocol (`tests/loom.rs`): under `cfg(loom)` these are loom's types,
//! otherwise std's.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::Ordering;

/// Waits a little for a bucket lock holder (who holds it over a few pointer stores): spins
/// with a CPU hint, then yields the CPU so that a preempted holder can run. Never sleeps on
/// anything, so it is legal under an `Atomic` token.
#[derive(Debug, Default)]
pub(crate) struct SpinWait {
    spins: u32,
}

impl SpinWait {
    /// Spins this many times before each yield.
    #[cfg(not(loom))]
    const SPINS: u32 = 64;

    pub(crate) fn new() -> Self {
        SpinWait { spins: 0 }
    }

    /// One wait step.
    #[cfg(not(loom))]
    pub(crate) fn wait(&mut self) {
        if self.spins < Self::SPINS {
            self.spins += 1;
            core::hint::spin_loop();
        } else {
            self.spins = 0;
            std::thread::yield_now();
        }
    }

    /// Under loom a spin must let the model run the thread being waited for.
    #[cfg(loom)]
    pub(crate) fn wait(&mut self) {
        self.spins = self.spins.wrapping_add(1);
        loom::thread::yield_now();
    }
}

/// loom's `AtomicPtr`, except that `store` is a `swap` whose result is dropped.
///
/// loom 0.7 can let a plain store that races with another thread's read-modify-write land
/// between that RMW's read and its write (tokio-rs/loom#254), an execution the memory model
/// does not allow; rcu-core's shim works around it the same way. Bucket words are stored
/// plainly by the lock holder while others compare-and-swap them, so the model needs the
/// workaround. (A swap continues the release sequence where a plain store would not: a
/// slightly stronger model, which cannot hide a missing Release here because every store the
/// protocol relies on is already Release.)
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct AtomicPtr<T>(loom::sync::atomic::AtomicPtr<T>);

#[cfg(loom)]
impl<T> AtomicPtr<T> {
    #[track_caller]
    pub(crate) fn new(ptr: *mut T) -> Self {
        AtomicPtr(loom::sync::atomic::AtomicPtr::new(ptr))
    }

    #[track_caller]
    pub(crate) fn load(&self, order: Ordering) -> *mut T {
        self.0.load(order)
    }

    /// A `swap` (see the type's docs).
    #[track_caller]
    pub(crate) fn store(&self, ptr: *mut T, order: Ordering) {
        let _ = self.0.swap(ptr, order);
    }

    #[track_caller]
    pub(crate) fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        self.0.compare_exchange(current, new, success, failure)
    }
}
