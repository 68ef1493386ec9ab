//! Paying what a thread owes (`rcu_ctx::owed`) on the global domain: the frees it queued in
//! scopes that could not finish them.
//!
//! - *Allocator work*: the deallocations of frees whose values the worker dropped and gave
//!   back (`collection::run_batch`). Under a policy that may allocate, a thread also pays
//!   them at its next block boundary (`finish_returned`).
//! - *Reclaim work*: blocks sealed under `NoReclaim` or `Atomic` are parked for their thread
//!   (`enqueue::seal`), which runs them once their grace period has passed, when it next opens
//!   a scope from its `Sleepable` token: typically the `ctx.atomic()` or `ctx.no_reclaim()`
//!   around its next free. If every parking slot is taken, that opening first waits (at most
//!   10 ms) for the oldest one's grace period: the backpressure the restricted scope could
//!   not apply (`enqueue::bounded_backpressure`).
//!
//! The frees then run, and their memory goes back to the allocator, on the thread that
//! allocates again, instead of every later allocation taking a cache line from the worker's
//! CPU (rcuscale W5: an `Atomic` flood spent 40% of its samples in `_int_malloc` and ran at
//! 0.15x crossbeam-epoch's rate) or the frees waiting for the worker to be scheduled (W3:
//! 8 to 20 MiB pending behind a busy reader on 2 CPUs).
//!
//! Owned domains are not paid this way: reaching their state from a thread's registrations
//! would take a strong reference, and dropping it could be the domain's last, whose final
//! run of callbacks may not happen in a scope's opening. Their blocks go to their worker as
//! before. What a thread never pays (it exits, or never opens such a scope again) is taken
//! back by the next full collection or `rcu_barrier`, and finished there.

use std::sync::atomic::{AtomicBool, Ordering};

use rcu_ctx::owed::Payment;

use crate::state::registration::global_slot;
use crate::state::GLOBAL_STATE;

/// Set by `install_payer` if `rcu_ctx::owed` calls this runtime's payer.
static OWNS_THE_PAYER: AtomicBool = AtomicBool::new(false);

/// True if the debts threads record in `rcu_ctx::owed` are paid by this runtime (`pay`):
/// only then may a restricted scope leave work owed. False before `process::init` (nothing
/// is staged before it).
pub(crate) fn owns_the_payer() -> bool {
    // Relaxed: a flag set once inside `process::init` (`install_payer`); a caller that
    // stages has passed `init` (its thread registered, which runs it), whose completion it
    // acquired (`ready::is_ready`, or the `Once` itself).
    OWNS_THE_PAYER.load(Ordering::Relaxed)
}

/// Installs `pay` as the process's payer, or says on stderr why it cannot. Called once, by
/// `process::init` inside its `Once`, before the Release store of `ready::set_ready` that
/// publishes the flag it sets.
pub(crate) fn install_payer() {
    // Threads that queue under `NoReclaim` or `Atomic` owe the rest of those frees, if the
    // payer is ours. A payer set before us (user code, or another copy of this crate) would
    // never pay our debts: then nothing is left owed, and those frees go to the worker as on
    // other domains (`owns_the_payer`).
    // SAFETY: (1) `pay` runs parked blocks (with `Reclaim`) and deallocations, as the
    // payment allows, in brackets, which are not scopes (the blocks' callbacks run under an
    // `Atomic` token it assumes and drops); (2) it waits only for a grace period, at most
    // 10 ms, never for a worker's progress, and its callbacks' panics are contained
    // (`deferred::run`).
    if unsafe { rcu_ctx::owed::set_payer(pay) }.is_ok() {
        // Relaxed: published by the Release store of `ready::set_ready`, which ends
        // `process::init`, the only caller, after this returns.
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
}

/// The payer `install_payer` sets: finishes this thread's given-back blocks of the global
/// domain and, when `payment` allows reclaim, runs its ready parked blocks (after the bounded
/// backpressure wait if every slot is taken). Opens no scope (a bracket is not one).
pub(crate) fn pay(payment: Payment) {
    // SAFETY: a non-null slot is this thread's in the global domain, whose registry lives
    // for the life of the process.
    if let Some(slot) = unsafe { global_slot().as_ref() } {
        GLOBAL_STATE.pay_owed(&slot.staging, payment);
    }
}
