//! Process-wide setup: [`init`] runs once before the first reader registers or grace period
//! runs. It decides the barrier mode (`raw::barrier`), registers the global domain's block
//! pool as a shrinker, installs the `pthread_atfork` handlers of `fork` and the payer of
//! `owed`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::raw::barrier;

static INIT: Once = Once::new();

/// Set once `init` has completed (a `Once` cannot be asked without possibly waiting).
static READY: AtomicBool = AtomicBool::new(false);

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
        // The payer, before the Release store of `READY` below, which publishes whether it
        // is ours (`owed::owns_the_payer`).
        crate::owed::install_payer();
        // Release: see `is_ready`.
        READY.store(true, Ordering::Release);
    });
}
