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

use rcu_ctx::owed::Payment;

use crate::registration::global_slot;
use crate::state::GLOBAL_STATE;

/// The payer `process::init` sets: finishes this thread's given-back blocks of the global
/// domain and, when `payment` allows reclaim, runs its ready parked blocks (after the bounded
/// backpressure wait if every slot is taken). Opens no scope (a bracket is not one).
pub(crate) fn pay(payment: Payment) {
    // SAFETY: a non-null slot is this thread's in the global domain, whose registry lives
    // for the life of the process.
    if let Some(slot) = unsafe { global_slot().as_ref() } {
        GLOBAL_STATE.pay_owed(&slot.staging, payment);
    }
}
