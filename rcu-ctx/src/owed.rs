//! Work a restricted context owes, paid by the thread's next context that may do it.
//!
//! An `Atomic` context may not call the allocator, and a `NoReclaim` one may not reclaim,
//! yet both can leave such work behind: an RCU runtime's deferred frees, whose memory is
//! best given back, and whose values are best dropped, on the thread that queued them (on
//! another thread, every later allocation takes a cache line from that thread's CPU, and the
//! frees wait for that thread to be scheduled). The runtime records the debt with [`owe`]
//! (allocator work) or [`owe_reclaim`] (reclaim work: running ready callbacks or drops), a
//! thread-local bit set by one atomic OR: no allocation, no lock, async-signal-safe. When
//! the thread next opens a scope ([`Context::atomic`](crate::Context::atomic) or
//! [`MaySleep::no_reclaim`](crate::MaySleep::no_reclaim)) from a token that may do the work,
//! the scope first calls the process's payer ([`set_payer`]), while the thread is still in
//! that token's context: a `Sleepable` token pays both kinds ([`Payment::Reclaim`]), a
//! `NoReclaim` token allocator work only ([`Payment::Allocator`]), an `Atomic` token
//! nothing. What a scope may pay is decided by its token's type at compile time. The
//! kernel's `local_bh_enable()`, which runs the softirqs raised while they were disabled, is
//! the same idea.
//!
//! Besides the token's type, the thread's real state must allow the work (no read section
//! or atomic scope open; for reclaim work, no no-reclaim scope either): a smuggled token (a
//! second root kept in a `thread_local!`, used inside a scope or a signal handler) never
//! makes a scope pay what the thread may not do there.
//!
//! A payer does only what its [`Payment`] allows and opens no scope itself. With
//! `Allocator` it must not wait on other threads (the opener may be a `NoReclaim` token on a
//! reclaim path); with `Reclaim` it may do what a `Sleepable` token may, waiting included,
//! but an opening should stay short (rcu-core's payer waits at most 10 ms), and it must never
//! wait for the progress of the thread that opens the scope (an RCU runtime's own threads
//! open scopes too). It may `owe` again: what it could not pay yet is then paid by a later
//! scope. Installing one is therefore `unsafe` ([`set_payer`]): the payer runs inside every
//! thread's scope openings, runtime threads included, and is trusted to keep these rules.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use rcu_ctx::owed::{self, Payment};
//! use rcu_ctx::{Context, MaySleep, Sleepable};
//!
//! static RECLAIMED: AtomicU32 = AtomicU32::new(0);
//! fn pay(payment: Payment) {
//!     if payment == Payment::Reclaim {
//!         RECLAIMED.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//! // SAFETY: (1) `pay` only counts; (2) it opens no scope and never waits.
//! unsafe { owed::set_payer(pay) }.expect("the only payer in this process");
//!
//! let mut ctx = Sleepable::enter();
//! {
//!     let mut nr = ctx.no_reclaim();
//!     owed::owe_reclaim(); // e.g. frees queued here left drops to run
//!     let _inner = nr.atomic(); // a NoReclaim token cannot pay reclaim work
//!     assert!(owed::is_owed());
//! }
//! assert_eq!(RECLAIMED.load(Ordering::Relaxed), 0);
//! drop(ctx.atomic()); // the next scope opened from a Sleepable token pays, once
//! drop(ctx.atomic());
//! assert_eq!(RECLAIMED.load(Ordering::Relaxed), 1);
//! ```

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::kind::ContextKind;

/// What the scope paying a debt allows the payer to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payment {
    /// Call the allocator (a scope opened from a `NoReclaim` token).
    Allocator,
    /// Call the allocator and reclaim: run ready callbacks and drops (a scope opened from a
    /// `Sleepable` token).
    Reclaim,
}

/// `OWED` bits.
const ALLOCATOR: u8 = 1;
const RECLAIM: u8 = 2;

thread_local! {
    /// The kinds of work this thread owes (`ALLOCATOR`, `RECLAIM`). `const`, no destructor:
    /// usable from a signal handler and from other thread-locals' destructors. Atomic only
    /// so that its read-modify-writes are single instructions a signal handler on this
    /// thread cannot split: a plain read then write could overwrite a debt the handler
    /// recorded in between. All Relaxed: only this thread (and its handlers) touch it.
    static OWED: AtomicU8 = const { AtomicU8::new(0) };
}

/// The process's payer, a `fn(Payment)` cast to a pointer; null until set.
static PAYER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sets the function that pays what threads owe. Once per process: the first payer set
/// stays, and another is given back as `Err` (a thread's debt is then paid by the first,
/// so a second runtime's debts must have another way to be paid). The RCU runtime sets its
/// own; nothing else should.
///
/// # Safety
/// The payer runs inside scope openings on every thread, an RCU runtime's own threads (its
/// workers) included, before the new scope counts:
/// 1. it does only what the [`Payment`] it is given allows, and opens no scope;
/// 2. it never waits for anything that may wait for the thread it runs on (a worker's
///    progress: a barrier, a collection), and never panics.
pub unsafe fn set_payer(payer: fn(Payment)) -> Result<(), fn(Payment)> {
    let new = payer as *mut ();
    // AcqRel on success: publishes the payer's code address to every later Acquire load
    // (a function pointer needs nothing else published). Acquire on failure: reads the
    // winner's.
    match PAYER.compare_exchange(core::ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(current) if current == new => Ok(()),
        Err(_) => Err(payer),
    }
}

/// Records that this thread owes allocator work, paid when it next opens a scope from a
/// token that may allocate. One atomic OR on a thread-local: any context may call it.
#[inline]
pub fn owe() {
    // Relaxed: see `OWED`.
    OWED.with(|o| o.fetch_or(ALLOCATOR, Ordering::Relaxed));
}

/// Records that this thread owes reclaim work, paid when it next opens a scope from a token
/// that may reclaim (`Sleepable`). One atomic OR on a thread-local: any context may call it.
#[inline]
pub fn owe_reclaim() {
    // Relaxed: see `OWED`.
    OWED.with(|o| o.fetch_or(RECLAIM, Ordering::Relaxed));
}

/// True if this thread owes work not yet paid.
#[inline]
pub fn is_owed() -> bool {
    // Relaxed: see `OWED`.
    OWED.with(|o| o.load(Ordering::Relaxed)) != 0
}

/// Pays what this thread owes and a scope opened from a token of kind `opener` may pay.
/// Callers: `Context::atomic` and `MaySleep::no_reclaim`, with their own token's kind (a
/// constant, so the test below folds away for `Atomic`). Returns whether the payer may have
/// run (the thread's scope depths may then have moved and come back, so the caller reads
/// them again).
#[inline]
pub(crate) fn pay(opener: ContextKind) -> bool {
    let payable = match opener {
        ContextKind::Sleepable => ALLOCATOR | RECLAIM,
        ContextKind::NoReclaim => ALLOCATOR,
        ContextKind::Atomic => return false,
    };
    // Relaxed: see `OWED`.
    if OWED.with(|o| o.load(Ordering::Relaxed)) & payable != 0 {
        pay_now(opener);
        return true;
    }
    false
}

#[cold]
fn pay_now(opener: ContextKind) {
    // The token's type allows the work; the thread's real state must agree, or the token was
    // smuggled (a second root kept in a `thread_local!` and used inside a scope, a signal
    // handler's included, where the allocator may be the code interrupted). The debt then
    // waits for a scope opened where the state agrees.
    let state = crate::depths::snapshot();
    let payment = if opener == ContextKind::Sleepable && state.may_reclaim() {
        Payment::Reclaim
    } else if state.may_sleep() {
        Payment::Allocator
    } else {
        return;
    };
    let paid = match payment {
        Payment::Reclaim => ALLOCATOR | RECLAIM,
        Payment::Allocator => ALLOCATOR,
    };
    // Cleared before the call, in one step with the read: a debt recorded while paying (by
    // a signal handler) is paid by a later scope, not lost. Relaxed: see `OWED`.
    let owed = OWED.with(|o| o.fetch_and(!paid, Ordering::Relaxed));
    if owed & paid == 0 {
        return;
    }
    // Acquire: pairs with the AcqRel in `set_payer`.
    let payer = PAYER.load(Ordering::Acquire);
    if !payer.is_null() {
        // SAFETY: only `set_payer` stores a non-null value, and it stores a `fn(Payment)`.
        let payer = unsafe { core::mem::transmute::<*mut (), fn(Payment)>(payer) };
        payer(payment);
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::{is_owed, owe, owe_reclaim, set_payer, Payment};
    use crate::{Atomic, Context, MaySleep, NoReclaimRoot, ReadSection, Sleepable};

    thread_local! {
        /// Payments made on this thread, by kind (tests run on parallel threads; one payer
        /// serves all).
        static PAID: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
        /// Payments after which the payer owes allocator work again.
        static REOWE: Cell<u32> = const { Cell::new(0) };
    }

    fn payer(payment: Payment) {
        PAID.with(|p| {
            let (a, r) = p.get();
            p.set(match payment {
                Payment::Allocator => (a + 1, r),
                Payment::Reclaim => (a, r + 1),
            });
        });
        if REOWE.with(|r| r.replace(r.get().saturating_sub(1))) > 0 {
            owe();
        }
    }

    /// (payments with `Allocator`, payments with `Reclaim`) on this thread.
    fn paid() -> (u32, u32) {
        PAID.with(Cell::get)
    }

    /// Every test of this file runs on its own thread, with the one process-wide payer.
    fn with_payer(test: impl FnOnce() + Send + 'static) {
        // SAFETY: (1) (2) `payer` only counts what it is paid.
        unsafe { set_payer(payer) }.expect("only this file sets a payer in this test binary");
        std::thread::spawn(test).join().unwrap();
    }

    #[test]
    fn a_scope_pays_what_its_opening_token_may_do_once() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            drop(ctx.atomic());
            assert_eq!(paid(), (0, 0), "nothing owed, nothing paid");
            owe();
            drop(ctx.no_reclaim());
            assert_eq!((paid(), is_owed()), ((0, 1), false), "a Sleepable token pays all");
            drop(ctx.atomic());
            assert_eq!(paid(), (0, 1), "paid debts are not paid twice");
            let mut nr = ctx.no_reclaim();
            owe();
            drop(nr.atomic());
            assert_eq!(paid(), (1, 1), "a NoReclaim token pays allocator work");
        });
    }

    #[test]
    fn a_no_reclaim_root_and_its_scopes_pay_allocator_work_only() {
        with_payer(|| {
            owe();
            owe_reclaim();
            let mut root = NoReclaimRoot::enter();
            assert_eq!((paid(), is_owed()), ((1, 0), true), "the root's opening: allocator");
            owe();
            drop(root.no_reclaim());
            drop(root.atomic());
            assert_eq!((paid(), is_owed()), ((2, 0), true), "its scopes: allocator, once");
            drop(root);
            // The reclaim work stays owed until a Sleepable token's scope opens.
            let mut ctx = Sleepable::enter();
            drop(ctx.no_reclaim());
            assert_eq!((paid(), is_owed()), ((2, 1), false));
        });
    }

    #[test]
    fn reclaim_work_waits_for_a_scope_opened_from_a_token_that_may_reclaim() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            {
                let mut nr = ctx.no_reclaim();
                owe_reclaim();
                drop(nr.atomic());
                drop(nr.no_reclaim());
                assert_eq!((paid(), is_owed()), ((0, 0), true));
                owe();
                drop(nr.atomic());
                assert_eq!((paid(), is_owed()), ((1, 0), true), "allocator work only");
            }
            drop(ctx.atomic());
            assert_eq!((paid(), is_owed()), ((1, 1), false));
        });
    }

    #[test]
    fn scopes_opened_from_atomic_tokens_or_inside_sections_never_pay() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            {
                let mut spin = ctx.atomic();
                owe();
                owe_reclaim();
                drop(spin.atomic());
                drop(spin.nested());
                let section = ReadSection::enter(&mut spin);
                drop(section);
            }
            assert_eq!(paid(), (0, 0));
            // A second root taken before the scope, as one kept in a `thread_local!` would
            // be, then used inside it: its type may reclaim, the thread's state does not.
            let mut smuggled = Sleepable::enter();
            // SAFETY: (1) dropped below, before returning; (2) the scopes opened after it
            // are dropped before it.
            let assumed = unsafe { Atomic::assume() };
            drop(smuggled.atomic());
            drop(smuggled.no_reclaim());
            assert_eq!(paid(), (0, 0), "a smuggled root made a scope pay inside an atomic scope");
            drop(assumed);
            drop(smuggled.atomic());
            assert_eq!((paid(), is_owed()), ((0, 1), false), "paid once the state agrees");
        });
    }

    #[test]
    fn a_smuggled_root_inside_a_no_reclaim_scope_pays_allocator_work_only() {
        with_payer(|| {
            let mut smuggled = Sleepable::enter();
            let mut ctx = Sleepable::enter();
            let nr = ctx.no_reclaim();
            owe();
            owe_reclaim();
            drop(smuggled.atomic());
            assert_eq!((paid(), is_owed()), ((1, 0), true), "reclaimed inside a no-reclaim scope");
            drop(nr);
            drop(smuggled.atomic());
            assert_eq!((paid(), is_owed()), ((1, 1), false));
        });
    }

    #[test]
    fn a_payer_that_owes_again_is_called_again_by_the_next_scope() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            REOWE.with(|r| r.set(2));
            owe();
            for _ in 0..4 {
                drop(ctx.atomic());
            }
            assert_eq!((paid(), is_owed()), ((0, 3), false));
        });
    }

    #[test]
    fn a_scope_refused_at_the_depth_limit_pays_nothing() {
        use crate::depths::set_depths_for_test;
        use crate::thread_state::{snapshot, Snapshot};
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            owe();
            owe_reclaim();
            // As if u32::MAX no-reclaim scopes had been forgotten on this thread.
            let full = Snapshot { read_depth: 0, atomic_depth: 0, no_reclaim_depth: u32::MAX };
            set_depths_for_test(full);
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drop(ctx.no_reclaim());
            }));
            assert!(refused.is_err());
            assert_eq!((paid(), is_owed(), snapshot()), ((0, 0), true, full));
            set_depths_for_test(Snapshot { atomic_depth: u32::MAX, ..Snapshot::default() });
            assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drop(ctx.atomic());
            }))
            .is_err());
            assert_eq!((paid(), is_owed()), ((0, 0), true));
            set_depths_for_test(Snapshot::default());
            drop(ctx.atomic());
            assert_eq!((paid(), is_owed()), ((0, 1), false), "paid by the next scope that counts");
        });
    }

    #[test]
    fn a_second_payer_is_refused_and_the_first_stays() {
        fn other(_: Payment) {}
        with_payer(|| {
            // SAFETY: (1) (2) both only count (or do nothing).
            assert!(unsafe { set_payer(other) }.is_err());
            // SAFETY: as above.
            let again = unsafe { set_payer(payer) };
            assert!(again.is_ok(), "setting the same payer again is harmless");
            let mut ctx = Sleepable::enter();
            owe();
            drop(ctx.atomic());
            assert_eq!(paid(), (0, 1));
        });
    }
}
