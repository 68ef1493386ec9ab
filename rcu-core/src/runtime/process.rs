//! Process-wide setup: [`init`] runs once before the first reader registers or grace period
//! runs. It decides the barrier mode (`raw::barrier`), registers the global domain's block
//! pool as a shrinker, installs the `pthread_atfork` handlers of `fork` and the payer of
//! `owed`.

use std::sync::Once;

use crate::raw::barrier;

static INIT: Once = Once::new();

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
                Some(crate::runtime::fork::prepare_fork),
                Some(crate::runtime::fork::parent_after_fork),
                Some(crate::runtime::fork::child_after_fork),
            )
        };
        assert!(
            rc == 0,
            "rcu-core: pthread_atfork failed ({rc}, out of memory): the runtime needs its fork \
             handler to keep working in a forked child"
        );
        // The payer, before `set_ready`'s Release store, which publishes whether it is ours
        // (`owed::owns_the_payer`).
        crate::reclaim::owed::install_payer();
        crate::state::ready::set_ready();
    });
}
