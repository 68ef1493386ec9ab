//! The one door through which the engine's atomics, fences and spin-waits come, so that a
//! model checker can take them over: under `cfg(loom)` these are loom's types (exhaustive
//! small models, `tests/tests/loom.rs`), under `cfg(shuttle)` shuttle's (randomized schedules
//! of bigger ones, `tests/tests/shuttle.rs`), otherwise std's (and crossbeam's `Backoff`).
//!
//! Only `raw` and `staging` come through here; the rest of the engine uses std directly. Under
//! loom only those two modules are built. Under shuttle the whole crate is built (the test
//! package's library, binaries and rcu-collections need its API), but only the models'
//! calls into `raw` and `staging` ever run, inside `shuttle::check_*`: shuttle's atomics
//! cannot be used outside an execution it controls.
//!
//! shuttle explores interleavings with every atomic operation sequentially consistent (its
//! fences are no-ops): it finds protocol bugs a schedule exposes, never a missing ordering.
//! Those are loom's part.

#[cfg(all(loom, shuttle))]
compile_error!("cfg(loom) and cfg(shuttle) are two different model checkers: set only one");

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
// A compiler fence is not a memory operation for loom to model; under loom readers take the
// `fence` path anyway (see raw::barrier).
#[cfg(loom)]
pub(crate) use std::sync::atomic::compiler_fence;

// Every load, store and read-modify-write of these is a point where shuttle's scheduler may
// switch threads. Its `compiler_fence` is std's.
#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::{compiler_fence, fence, AtomicPtr, AtomicU64, Ordering};

#[cfg(not(any(loom, shuttle)))]
pub(crate) use crossbeam_utils::Backoff;
#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::sync::atomic::{compiler_fence, fence, AtomicPtr, AtomicU64, Ordering};

/// The longest nap of `wait_while`: a wait that got this far is long already (its owner was
/// preempted, or is held by a signal handler), and a millisecond more is small beside it.
#[cfg(not(any(loom, shuttle)))]
const MAX_NAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Waits while `busy()` holds: spins with `Backoff` first (what it waits for is short:
/// brackets never block), then sleeps in growing naps of at most `MAX_NAP`, calling
/// `waited(elapsed)` after each nap so that the caller can report a wait that passes the
/// stall timeout. A wait never spins without bound (DESIGN §5.1).
#[cfg(not(any(loom, shuttle)))]
pub(crate) fn wait_while(
    mut busy: impl FnMut() -> bool,
    mut waited: impl FnMut(std::time::Duration),
) {
    let backoff = Backoff::new();
    while !backoff.is_completed() {
        if !busy() {
            return;
        }
        backoff.snooze();
    }
    let start = std::time::Instant::now();
    let mut nap = std::time::Duration::from_micros(1);
    while busy() {
        std::thread::sleep(nap);
        nap = (nap * 2).min(MAX_NAP);
        waited(start.elapsed());
    }
}

/// Under a model checker: yields to its scheduler until `busy()` is false (see `Backoff`).
/// Neither loom nor shuttle models time, so there are no naps and `waited` is never called.
#[cfg(any(loom, shuttle))]
pub(crate) fn wait_while(mut busy: impl FnMut() -> bool, _waited: impl FnMut(std::time::Duration)) {
    let backoff = Backoff::new();
    while busy() {
        backoff.snooze();
    }
}

/// Under a model checker a spin-wait must yield to the model's scheduler: loom and shuttle
/// switch threads only at their own operations, so a loop of `spin_loop` hints would spin for
/// ever in an execution that never runs the thread it waits for. Same interface as
/// crossbeam's (what the engine uses of it).
#[cfg(any(loom, shuttle))]
#[derive(Debug, Default)]
pub(crate) struct Backoff(());

#[cfg(any(loom, shuttle))]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(())
    }

    /// Lets the model run another thread (the one being waited for). Under shuttle a yield
    /// also makes PCT lower this thread's priority, so that a waiter never starves the thread
    /// it waits for.
    pub(crate) fn snooze(&self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(shuttle)]
        shuttle::thread::yield_now();
    }
}

/// loom's `AtomicPtr`, except that `store` is a `swap` whose result is dropped.
///
/// loom 0.7 can let a plain store that races with another thread's read-modify-write slip in
/// between that RMW's read and its write (tokio-rs/loom#254, open): the stored value is then
/// overwritten although the RMW did not return it, an execution no C++/Rust memory model
/// allows. The staging protocol races plain stores with swaps (an owner parks a block or
/// installs `current` while the worker swaps both out), so under loom a parked block could
/// vanish. An RMW is ordered after the RMW it races with, so loom orders it correctly.
///
/// The price is a slightly stronger model than the real code: an RMW write continues the
/// release sequence of the Release write before it in the pointer's modification order, so
/// a thread whose Acquire RMW reads it also synchronizes with that earlier write (a plain
/// store does not). For `current` and the parking slots that earlier write is the worker's
/// swap, the owner's own CAS or swap, or a previous park: the worker (or owner) reading an
/// owner's store then also learns what preceded that earlier write, never what the bracket
/// that made the store did after opening, which is what the fence pair must deliver.
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
    pub(crate) fn swap(&self, ptr: *mut T, order: Ordering) -> *mut T {
        self.0.swap(ptr, order)
    }

    #[track_caller]
    pub(crate) fn compare_exchange(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        self.0.compare_exchange(current, new, success, failure)
    }

    /// loom's never fails spuriously: it is `compare_exchange`.
    #[track_caller]
    pub(crate) fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        self.0.compare_exchange_weak(current, new, success, failure)
    }
}
