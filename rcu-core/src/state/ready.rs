//! Whether the process's one-time set-up (`process::init`) has completed. Kept apart from
//! `process` (which reaches the worker, fork handlers and the payer) so that the operations
//! below it can ask without importing it back, as `fork_epoch` is kept apart from `fork`.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once `process::init` has completed (a `Once` cannot be asked without possibly waiting).
static READY: AtomicBool = AtomicBool::new(false);

/// True once `process::init` has completed: lock-free, for callers that may not initialize
/// (they may not allocate or wait), such as `poll` from an atomic context.
pub(crate) fn is_ready() -> bool {
    // Acquire: pairs with the Release store in `set_ready`: the barrier mode `init` decided
    // is visible (and whether the payer is ours, `owed::owns_the_payer`).
    READY.load(Ordering::Acquire)
}

/// The last step of `process::init`, inside its `Once`.
pub(crate) fn set_ready() {
    // Release: publishes everything `init` did before it; see `is_ready`.
    READY.store(true, Ordering::Release);
}
