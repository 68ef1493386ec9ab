//! Paying what a thread owes the allocator (`rcu_ctx::owed`): the deallocations of the
//! deferred frees it queued on the global domain, which the worker gave back after dropping
//! their values (`collection::run_batch`).
//!
//! Under a policy that may allocate, a thread pays at its next block boundary
//! (`finish_returned`). A thread that queues with `Atomic` may not call the allocator, so
//! its blocks are sealed owing (`enqueue::seal`), and the scope it next opens from a token
//! that may allocate pays: typically the next `ctx.atomic()` around the next free under a
//! spinlock. Its memory then goes back to the allocator cache of the thread that allocates
//! it again, instead of every later allocation taking the line from the worker's CPU
//! (rcuscale W5: the `Atomic` flood spent 40% of its samples in `_int_malloc`).
//!
//! Owned domains are not paid this way: reaching their state from a thread's registrations
//! would take a strong reference, and dropping it could be the domain's last, whose final
//! run of callbacks may not happen in a scope's opening. Their `Atomic` blocks are freed
//! whole by their worker. What a thread never pays (it exits, or never opens such a scope
//! again) is taken back by the next full collection or `rcu_barrier`, and finished there.

use rcu_ctx::owed::Payment;

use crate::registration::global_slot;
use crate::state::GLOBAL_STATE;

/// The payer `process::init` sets: finishes this thread's given-back blocks of the global
/// domain and, when `payment` allows reclaim, runs its ready parked blocks. Opens no scope
/// (a bracket is not one) and never waits.
pub(crate) fn pay(payment: Payment) {
    // SAFETY: a non-null slot is this thread's in the global domain, whose registry lives
    // for the life of the process.
    if let Some(slot) = unsafe { global_slot().as_ref() } {
        GLOBAL_STATE.pay_owed(&slot.staging, payment);
    }
}
