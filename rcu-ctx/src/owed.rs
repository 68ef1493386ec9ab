//! Allocator work a restricted context owes, paid by the thread's next context that may
//! allocate.
//!
//! An `Atomic` context may not call the allocator, yet it can leave allocator calls behind:
//! an RCU runtime's deferred frees, whose memory is best given back on the thread that will
//! allocate it again (on another thread, every later allocation takes a cache line from
//! that thread's CPU). The runtime records the debt with [`owe`], a thread-local store (no
//! allocation, no lock, async-signal-safe). When the thread next opens a scope from a token
//! that may allocate ([`Context::atomic`](crate::Context::atomic) or
//! [`MaySleep::no_reclaim`](crate::MaySleep::no_reclaim) on a `Sleepable` or `NoReclaim`
//! token), the scope first calls the process's payer ([`set_payer`]), while the thread is
//! still in that token's context. Which scopes pay is decided by the token's type at compile
//! time; a scope opened from an `Atomic` token never pays. The kernel's `local_bh_enable()`,
//! which runs the softirqs raised while they were disabled, is the same idea.
//!
//! Besides the token's type, the thread's real state must allow allocation (no read section,
//! no atomic scope open): a smuggled token (a second root kept in a `thread_local!`, used
//! inside an atomic scope or a signal handler) never makes a scope pay.
//!
//! What a payer may do is what every token that may allocate allows: call the allocator,
//! never block on other threads' progress and never reclaim (it runs inside `NoReclaim`
//! scopes' openings too). It must not open scopes itself; it may `owe` again (what it could
//! not pay yet is then paid by a later scope).
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use rcu_ctx::{owed, Context, Sleepable};
//!
//! static PAID: AtomicU32 = AtomicU32::new(0);
//! fn pay() {
//!     PAID.fetch_add(1, Ordering::Relaxed);
//! }
//! owed::set_payer(pay).expect("the only payer in this process");
//!
//! let mut ctx = Sleepable::enter();
//! {
//!     let mut spin = ctx.atomic();
//!     owed::owe(); // e.g. frees queued under the spinlock left deallocations behind
//!     let _nested = spin.atomic(); // a scope opened from an `Atomic` token does not pay
//!     assert!(owed::is_owed());
//! }
//! assert_eq!(PAID.load(Ordering::Relaxed), 0);
//! drop(ctx.atomic()); // the next scope opened from a token that may allocate pays, once
//! drop(ctx.atomic());
//! assert_eq!(PAID.load(Ordering::Relaxed), 1);
//! ```

use core::cell::Cell;
use core::sync::atomic::{AtomicPtr, Ordering};

thread_local! {
    /// True once the thread owes work to the payer. `const`, no destructor: usable from a
    /// signal handler and from other thread-locals' destructors.
    static OWED: Cell<bool> = const { Cell::new(false) };
}

/// The process's payer, a `fn()` cast to a pointer; null until set.
static PAYER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sets the function that pays what threads owe. Once per process: the first payer set
/// stays, and another is given back as `Err` (a thread's debt is then paid by the first,
/// so a second runtime's debts must have another way to be paid).
pub fn set_payer(payer: fn()) -> Result<(), fn()> {
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

/// Records that this thread owes work to the payer, to be paid when it next opens a scope
/// from a token that may allocate. A thread-local store: any context may call it.
#[inline]
pub fn owe() {
    OWED.with(|o| o.set(true));
}

/// True if this thread owes work not yet paid.
#[inline]
pub fn is_owed() -> bool {
    OWED.with(Cell::get)
}

/// Pays what this thread owes, if anything. Callers: scopes opened from a token that may
/// allocate.
#[inline]
pub(crate) fn pay() {
    if OWED.with(Cell::get) {
        pay_now();
    }
}

#[cold]
fn pay_now() {
    // The token's type says the thread may allocate; its real state must agree, or the token
    // was smuggled (a second root kept in a `thread_local!` and used inside an atomic scope,
    // a signal handler's included, where the allocator may be the code interrupted). The
    // debt then waits for a scope opened where the state agrees.
    if !crate::depths::snapshot().may_sleep() {
        return;
    }
    // Cleared before the call: a debt recorded while paying (by a signal handler) is paid
    // by the next scope, not lost.
    OWED.with(|o| o.set(false));
    // Acquire: pairs with the AcqRel in `set_payer`.
    let payer = PAYER.load(Ordering::Acquire);
    if !payer.is_null() {
        // SAFETY: only `set_payer` stores a non-null value, and it stores a `fn()`.
        let payer = unsafe { core::mem::transmute::<*mut (), fn()>(payer) };
        payer();
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::{is_owed, owe, set_payer};
    use crate::{Atomic, Context, MaySleep, ReadSection, Sleepable};

    thread_local! {
        /// Payments made on this thread (tests run on parallel threads; one payer serves all).
        static PAID: Cell<u32> = const { Cell::new(0) };
        /// Payments after which the payer owes again.
        static REOWE: Cell<u32> = const { Cell::new(0) };
    }

    fn payer() {
        PAID.with(|p| p.set(p.get() + 1));
        let again = REOWE.with(|r| r.replace(r.get().saturating_sub(1)));
        if again > 0 {
            owe();
        }
    }

    fn paid() -> u32 {
        PAID.with(Cell::get)
    }

    /// Every test of this file runs on its own thread, with the one process-wide payer.
    fn with_payer(test: impl FnOnce() + Send + 'static) {
        set_payer(payer).expect("only this file sets a payer in this test binary");
        std::thread::spawn(test).join().unwrap();
    }

    #[test]
    fn a_scope_opened_from_a_token_that_may_allocate_pays_once() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            drop(ctx.atomic());
            assert_eq!(paid(), 0, "nothing owed, nothing paid");
            owe();
            drop(ctx.no_reclaim());
            assert_eq!((paid(), is_owed()), (1, false));
            drop(ctx.atomic());
            assert_eq!(paid(), 1, "paid debts are not paid twice");
            let mut nr = ctx.no_reclaim();
            owe();
            drop(nr.atomic()); // a NoReclaim token may allocate too
            assert_eq!(paid(), 2);
        });
    }

    #[test]
    fn scopes_opened_from_atomic_tokens_or_inside_sections_never_pay() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            {
                let mut spin = ctx.atomic();
                owe();
                drop(spin.atomic());
                drop(spin.nested());
                let section = ReadSection::enter(&mut spin);
                drop(section);
            }
            assert_eq!(paid(), 0);
            // A second root taken before the scope, as one kept in a `thread_local!` would
            // be, then used inside it: its type may allocate, the thread's state does not.
            let mut smuggled = Sleepable::enter();
            // SAFETY: (1) dropped below, before returning; (2) the scopes opened after it
            // are dropped before it.
            let assumed = unsafe { Atomic::assume() };
            drop(smuggled.atomic());
            drop(smuggled.no_reclaim());
            assert_eq!(paid(), 0, "a smuggled root made a scope pay inside an atomic scope");
            drop(assumed);
            drop(smuggled.atomic());
            assert_eq!((paid(), is_owed()), (1, false), "paid once the state agrees");
        });
    }

    #[test]
    fn a_payer_that_owes_again_is_called_again_by_the_next_scope() {
        with_payer(|| {
            let mut ctx = Sleepable::enter();
            REOWE.with(|r| r.set(2));
            owe();
            drop(ctx.atomic());
            drop(ctx.atomic());
            drop(ctx.atomic());
            drop(ctx.atomic());
            assert_eq!((paid(), is_owed()), (3, false));
        });
    }

    #[test]
    fn a_second_payer_is_refused_and_the_first_stays() {
        fn other() {}
        with_payer(|| {
            assert!(set_payer(other).is_err());
            assert!(set_payer(payer).is_ok(), "setting the same payer again is harmless");
            let mut ctx = Sleepable::enter();
            owe();
            drop(ctx.atomic());
            assert_eq!(paid(), 1);
        });
    }
}
