//! Process-wide setup: [`init`] runs once before the first reader registers or grace period
//! runs. It decides the barrier mode (`raw::barrier`), registers the global domain's block
//! pool as a shrinker, and installs the `pthread_atfork` handlers of `fork`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::raw::barrier;

static INIT: Once = Once::new();

/// Set once `init` has completed (a `Once` cannot be asked without possibly waiting).
static READY: AtomicBool = AtomicBool::new(false);

/// Set by `init` if `rcu_ctx::owed` calls this runtime's payer.
static OWNS_THE_PAYER: AtomicBool = AtomicBool::new(false);

/// True if the debts threads record in `rcu_ctx::owed` are paid by this runtime
/// (`crate::owed::pay`): only then may a restricted scope leave work owed. False before
/// `init` (nothing is staged before it).
pub(crate) fn owns_the_payer() -> bool {
    // Relaxed: a flag set once inside `init`; a caller that stages has passed `init` (its
    // thread registered, which runs it), whose completion it acquired (`is_ready`, or the
    // `Once` itself).
    OWNS_THE_PAYER.load(Ordering::Relaxed)
}

/// True once `init` has completed: lock-free, for callers that may not initialize (they
/// may not allocate or wait), such as `poll` from an atomic context.
pub(crate) fn is_ready() -> bool {
    // Acquire: pairs with the Release store at the end of `init`: the barrier mode it
    // decided is visible.
    READY.load(Ordering::Acquire)
}

/// Idempotent process-wide setup; cheap after the first call.
pub(crate) fn init() {
    barrier::init();
    INIT.call_once(|| {
        // The global domain's block pool is a shrinker for the life of the process.
        core::mem::forget(rcu_alloc::register_shrinker(std::sync::Arc::new(
            crate::state::GlobalPoolShrinker,
        )));
        // SAFETY: the handlers are `extern "C" fn()`s that live forever.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(crate::fork::prepare_fork),
                Some(crate::fork::parent_after_fork),
                Some(crate::fork::child_after_fork),
            )
        };
        assert!(
            rc == 0,
            "rcu-core: pthread_atfork failed ({rc}, out of memory): the runtime needs its fork \
             handler to keep working in a forked child"
        );
        // Threads that queue under `NoReclaim` or `Atomic` owe the rest of those frees (see
        // `crate::owed`), if the payer is ours. A payer set before us (user code, or another
        // copy of this crate) would never pay our debts: then nothing is left owed, and those
        // frees go to the worker as on other domains (`owns_the_payer`).
        // SAFETY: (1) `owed::pay` runs parked blocks (with `Reclaim`) and deallocations, as
        // the payment allows, in brackets, which are not scopes (the blocks' callbacks run
        // under an `Atomic` token it assumes and drops); (2) it waits only for a grace period,
        // at most 10 ms, never for a worker's progress, and its callbacks' panics are
        // contained (`deferred::run`).
        if unsafe { rcu_ctx::owed::set_payer(crate::owed::pay) }.is_ok() {
            // Relaxed: published by the Release store of `READY` below.
            OWNS_THE_PAYER.store(true, Ordering::Relaxed);
        } else {
            rcu_sys::stderr::report_line(
                "rcu-core: another payer was set with rcu_ctx::owed::set_payer before the \
                 runtime's, so the runtime cannot be paid what NoReclaim and Atomic frees owe: \
                 those frees on the global domain go to its worker instead (correct, but their \
                 memory no longer returns to the freeing thread's allocator cache). Rule: the \
                 payer belongs to the RCU runtime. Fix: do not call set_payer",
            );
        }
        // Release: see `is_ready`.
        READY.store(true, Ordering::Release);
    });
}
