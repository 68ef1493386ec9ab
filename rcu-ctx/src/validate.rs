//! Debug validation ("lockdep-lite"): checks that what a token claims agrees with what the
//! thread is really doing, and lets user code assert the same with [`might_sleep`] and
//! [`might_alloc`].
//!
//! The types already reject every misuse they can see; what they cannot see is a token
//! smuggled past the borrow checker with `unsafe` (copied with `ptr::read`, a second root
//! acquired before a scope, ...). Validation reports such a mismatch through a settable
//! handler and never changes behaviour. It is compiled in with `debug_assertions` or the
//! `checks` feature; otherwise every check here is an empty inline function.

use core::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::capability::ContextKind;
use crate::thread_state::{self, Snapshot};

/// True when validation is compiled in.
pub const ENABLED: bool = cfg!(any(debug_assertions, feature = "checks"));

/// A disagreement between a token (or an assertion) and the thread's real context.
#[derive(Debug)]
pub struct Violation {
    /// The rule that was broken, in a sentence that names the fix.
    pub rule: &'static str,
    /// The thread's state when it was detected.
    pub state: Snapshot,
    /// Where the offending call was made.
    pub location: &'static Location<'static>,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "rcu-ctx: context violation at {}: {} (thread state: read depth {}, atomic depth {}, \
             no-reclaim depth {})",
            self.location,
            self.rule,
            self.state.read_depth,
            self.state.atomic_depth,
            self.state.no_reclaim_depth
        )
    }
}

/// A function that receives every violation.
pub type ViolationHandler = fn(&Violation);

fn print_violation(v: &Violation) {
    eprintln!("{v}");
}

/// Null means the default handler, [`print_violation`].
static HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Installs the handler that receives every violation (the default prints one line to
/// stderr). A test can install one that panics or records. Returns nothing: handlers are
/// plain functions so that reporting never allocates.
pub fn set_violation_handler(handler: ViolationHandler) {
    // Release: publishes the handler; pairs with the Acquire load in `report`.
    HANDLER.store(handler as *mut (), Ordering::Release);
}

/// How many violations this process has reported.
pub fn violation_count() -> u64 {
    // Relaxed: a statistic; ordered with nothing else.
    COUNT.load(Ordering::Relaxed)
}

#[track_caller]
#[cold]
fn report(rule: &'static str, state: Snapshot) {
    // Relaxed: a statistic.
    COUNT.fetch_add(1, Ordering::Relaxed);
    let v = Violation { rule, state, location: Location::caller() };
    // Acquire: pairs with the Release store in `set_violation_handler`.
    let raw = HANDLER.load(Ordering::Acquire);
    if raw.is_null() {
        print_violation(&v);
    } else {
        // SAFETY: the only non-null values stored are `ViolationHandler`s cast to a pointer.
        let handler: ViolationHandler =
            unsafe { core::mem::transmute::<*mut (), fn(&Violation)>(raw) };
        handler(&v);
    }
}

/// Called by the scope bookkeeping when an exit has no matching entry (only possible after a
/// broken `Atomic::assume` contract). Reported in every build: it is already a bug.
#[track_caller]
#[cold]
pub(crate) fn report_unbalanced(what: &str) {
    let _ = what;
    report(
        "a scope ended more often than it began: an Atomic::assume() token outlived its \
         handler or scopes were dropped out of order",
        thread_state::snapshot(),
    );
}

/// Checks that a token of kind `kind` agrees with the thread's state.
#[track_caller]
#[inline]
pub(crate) fn token(kind: ContextKind) {
    if ENABLED {
        check_token(kind);
    }
}

#[track_caller]
fn check_token(kind: ContextKind) {
    let s = thread_state::snapshot();
    let rule = match kind {
        ContextKind::Sleepable if s.read_depth != 0 => {
            "a Sleepable token used inside a read section: the token was smuggled in (unsafe \
             copy or a second root); use the Atomic token the read guard hands out"
        }
        ContextKind::Sleepable if s.atomic_depth != 0 => {
            "a Sleepable token used inside an atomic scope: use the scope's Atomic token"
        }
        ContextKind::Sleepable if s.no_reclaim_depth != 0 => {
            "a Sleepable token used inside a no-reclaim scope: use the scope's NoReclaim token"
        }
        ContextKind::NoReclaim if !s.may_sleep() => {
            "a NoReclaim token used inside a read section or atomic scope: use the Atomic token"
        }
        ContextKind::NoReclaim if s.no_reclaim_depth == 0 => {
            "a NoReclaim token used outside any no-reclaim scope: it outlived its scope \
             through unsafe code"
        }
        ContextKind::Atomic if s.read_depth == 0 && s.atomic_depth == 0 => {
            "an Atomic token used outside any atomic scope or read section: it outlived its \
             scope through unsafe code"
        }
        _ => return,
    };
    report(rule, s);
}

/// Asserts (in checking builds) that the calling thread may block: not in a read section or
/// atomic scope. Call it at the top of functions that may sleep but take no token, as the
/// kernel's `might_sleep()`.
///
/// ```
/// rcu_ctx::might_sleep(); // fine here: no scope is open
/// ```
#[track_caller]
#[inline]
pub fn might_sleep() {
    if ENABLED {
        let s = thread_state::snapshot();
        if !s.may_sleep() {
            report("might_sleep() inside a read section or atomic scope: this call may block", s);
        }
    }
}

/// Asserts (in checking builds) that the calling thread may call the global allocator: not
/// in a read section or atomic scope. Allocation inside a no-reclaim scope is allowed.
///
/// ```
/// use rcu_ctx::{MaySleep, Sleepable};
/// let mut ctx = Sleepable::enter();
/// let _nr = ctx.no_reclaim();
/// rcu_ctx::might_alloc(); // fine: a no-reclaim scope may allocate
/// ```
#[track_caller]
#[inline]
pub fn might_alloc() {
    if ENABLED {
        let s = thread_state::snapshot();
        if !s.may_sleep() {
            report(
                "might_alloc() inside a read section or atomic scope: this call may allocate",
                s,
            );
        }
    }
}
