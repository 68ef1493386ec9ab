//! Debug validation ("lockdep-lite"): checks that what a token claims agrees with what the
//! thread is really doing, and lets user code assert the same with [`might_sleep`] and
//! [`might_alloc`].
//!
//! The types already reject every misuse they can see; what they cannot see is a token
//! smuggled past the borrow checker with `unsafe` (copied with `ptr::read`, a second root
//! acquired before a scope, ...). Validation reports such a mismatch through a settable
//! handler and never changes behaviour. It is compiled in with `debug_assertions` or the
//! `checks` feature; otherwise every check here is an empty inline function.
//!
//! ```
//! use rcu_ctx::validate;
//! use rcu_ctx::{Context, Sleepable};
//!
//! fn count_only(_: &validate::Violation) {} // a test might record or panic instead
//! validate::set_violation_handler(count_only);
//! let before = validate::violation_count();
//! let mut ctx = Sleepable::enter();
//! let spin = ctx.atomic();
//! rcu_ctx::might_sleep(); // a blocking call would be a bug here: reported
//! drop(spin);
//! let expected = if validate::ENABLED { 1 } else { 0 };
//! assert_eq!(validate::violation_count() - before, expected);
//! ```

use core::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::depths::{self, Snapshot};
use crate::kind::ContextKind;

/// True when validation is compiled in.
///
/// ```
/// // Validation is on in debug builds (and with the `checks` feature).
/// if rcu_ctx::validate::ENABLED {
///     println!("token validation is compiled in");
/// }
/// ```
pub const ENABLED: bool = cfg!(any(debug_assertions, feature = "checks"));

/// A disagreement between a token (or an assertion) and the thread's real context.
///
/// ```
/// use rcu_ctx::validate::{self, Violation};
/// use rcu_ctx::{Context, Sleepable};
///
/// fn record(v: &Violation) {
///     assert!(v.rule.starts_with("might_sleep()"));
///     assert_eq!(v.state.atomic_depth, 1);
///     eprintln!("{v}"); // "rcu-ctx: context violation at FILE:LINE: might_sleep() inside ..."
/// }
/// validate::set_violation_handler(record);
/// let mut ctx = Sleepable::enter();
/// let spin = ctx.atomic();
/// rcu_ctx::might_sleep(); // reported (in checking builds) to `record`
/// drop(spin);
/// ```
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
///
/// ```
/// use rcu_ctx::validate::{set_violation_handler, Violation, ViolationHandler};
///
/// fn log(v: &Violation) {
///     eprintln!("{v}");
/// }
/// let handler: ViolationHandler = log;
/// set_violation_handler(handler);
/// ```
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
///
/// ```
/// use rcu_ctx::validate::{self, Violation};
///
/// fn fail_test(v: &Violation) {
///     panic!("{v}");
/// }
/// validate::set_violation_handler(fail_test);
/// rcu_ctx::might_alloc(); // allowed here: no report, no panic
/// ```
pub fn set_violation_handler(handler: ViolationHandler) {
    // Release: publishes the handler; pairs with the Acquire load in `report`.
    HANDLER.store(handler as *mut (), Ordering::Release);
}

/// How many violations this process has reported.
///
/// ```
/// let before = rcu_ctx::validate::violation_count();
/// rcu_ctx::might_sleep(); // no scope is open: nothing to report
/// assert_eq!(rcu_ctx::validate::violation_count(), before);
/// ```
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

/// Called by a scope's drop when its exit had no matching entry (only possible after a
/// broken `Atomic::assume` contract). Reported in every build: it is already a bug.
#[track_caller]
#[cold]
pub(crate) fn report_unbalanced(what: &str) {
    let _ = what;
    report(
        "a scope ended more often than it began: an Atomic::assume() token outlived its \
         handler or scopes were dropped out of order (rule: scopes end in the reverse order they \
         began). Fix: drop an assumed token before its handler returns, after every scope opened \
         from it, and never copy tokens with unsafe code",
        depths::snapshot(),
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
    let s = depths::snapshot();
    let rule = match kind {
        ContextKind::Sleepable if s.read_depth != 0 => {
            "a Sleepable token used inside a read section (rule: a token must match the \
             thread's context; this one was smuggled in by an unsafe copy or a second root). \
             Fix: inside the section use the Atomic token the read guard hands out (ctx())"
        }
        ContextKind::Sleepable if s.atomic_depth != 0 => {
            "a Sleepable token used inside an atomic scope (rule: a token must match the \
             thread's context; this one was copied with unsafe code or is a second root). Fix: \
             use the scope's Atomic token until the scope ends"
        }
        ContextKind::Sleepable if s.no_reclaim_depth != 0 => {
            "a Sleepable token used inside a no-reclaim scope (rule: a token must match the \
             thread's context; this one was copied with unsafe code or is a second root). Fix: \
             use the scope's NoReclaim token until the scope ends"
        }
        ContextKind::NoReclaim if !s.may_sleep() => {
            "a NoReclaim token used inside a read section or atomic scope (rule: a token must \
             match the thread's context). Fix: use the Atomic token of the innermost scope \
             (a read guard's ctx(), or the Atomic scope token)"
        }
        ContextKind::NoReclaim if s.no_reclaim_depth == 0 => {
            "a NoReclaim token used outside any no-reclaim scope (rule: a scope token lives \
             only as long as its scope; this one outlived it through unsafe code). Fix: do not \
             copy or leak scope tokens; open a new scope with no_reclaim() where needed"
        }
        ContextKind::Atomic if s.read_depth == 0 && s.atomic_depth == 0 => {
            "an Atomic token used outside any atomic scope or read section (rule: a scope \
             token lives only as long as its scope; this one outlived it through unsafe code, \
             or an Atomic::assume() token was kept past its handler). Fix: do not copy, store \
             or leak Atomic tokens; drop an assumed one before the handler returns"
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
        let s = depths::snapshot();
        if !s.may_sleep() {
            report(
                "might_sleep() inside a read section or atomic scope: this call may block (rule: \
                 nothing blocks while a read section or atomic scope is open). Fix: move the \
                 call after the section or scope, or use a non-blocking variant",
                s,
            );
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
        let s = depths::snapshot();
        if !s.may_sleep() {
            report(
                "might_alloc() inside a read section or atomic scope: this call may allocate \
                 (rule: no global-allocator calls while a read section or atomic scope is open). \
                 Fix: allocate before entering, or use a variant that takes a pre-allocated \
                 Rcu<T>",
                s,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use core::mem;

    use super::{might_alloc, might_sleep, set_violation_handler, violation_count, Violation};
    use super::{Snapshot, ENABLED};
    use crate::{Atomic, Context, MaySleep, ReadSection, Sleepable};

    /// What the recording handler keeps of one violation.
    #[derive(Debug)]
    struct Recorded {
        rule: &'static str,
        state: Snapshot,
        file: &'static str,
        line: u32,
        display: String,
    }

    thread_local! {
        static RECORDED: RefCell<Vec<Recorded>> = const { RefCell::new(Vec::new()) };
    }

    /// The handler is process-global and tests run on parallel threads: each thread records
    /// only what it reported itself.
    fn record(v: &Violation) {
        let r = Recorded {
            rule: v.rule,
            state: v.state,
            file: v.location.file(),
            line: v.location.line(),
            display: v.to_string(),
        };
        RECORDED.with(|rec| rec.borrow_mut().push(r));
    }

    /// Installs the recording handler and returns what this thread recorded while `f` ran.
    fn recording(f: impl FnOnce()) -> Vec<Recorded> {
        set_violation_handler(record);
        RECORDED.with(|rec| rec.borrow_mut().clear());
        f();
        RECORDED.with(|rec| rec.take())
    }

    /// The number of reports to expect from a check: validation is compiled out in release
    /// builds without the `checks` feature.
    fn expected(n: usize) -> usize {
        if ENABLED {
            n
        } else {
            0
        }
    }

    #[test]
    fn tokens_that_agree_with_the_thread_report_nothing() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            ctx.validate();
            let mut nr = ctx.no_reclaim();
            nr.validate();
            let mut a = nr.atomic();
            a.validate();
            let rs = ReadSection::enter(&mut a);
            rs.token().validate();
            drop(rs);
            drop(a);
            let rs = ReadSection::enter(&mut nr);
            rs.token().validate();
            drop(rs);
            drop(nr);
            ctx.validate();
        });
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn smuggled_sleepable_inside_an_atomic_scope_is_reported() {
        let mut line = 0;
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            // SAFETY: `Sleepable` is a zero-sized token without a destructor, so the copy
            // aliases no memory; duplicating it breaks the token discipline on purpose, which
            // is what validation is for.
            let smuggled = unsafe { core::ptr::read(&ctx) };
            let a = ctx.atomic();
            line = line!() + 1;
            smuggled.validate();
            drop(a);
            // Back at the root the copy agrees with the thread again.
            smuggled.validate();
            // `Sleepable` has no destructor: the copy just goes out of scope.
        });
        assert_eq!(got.len(), expected(1), "{got:?}");
        if let Some(v) = got.first() {
            assert!(v.rule.starts_with("a Sleepable token used inside an atomic scope"), "{v:?}");
            assert_eq!(v.state, Snapshot { read_depth: 0, atomic_depth: 1, no_reclaim_depth: 0 });
            // `#[track_caller]` all the way down: the report points at the offending call.
            assert!(v.file.ends_with("validate.rs"), "{v:?}");
            assert_eq!(v.line, line);
            assert!(v.display.starts_with("rcu-ctx: context violation at "), "{v:?}");
            assert!(v.display.contains("atomic depth 1"), "{v:?}");
        }
    }

    #[test]
    fn smuggled_sleepable_inside_read_section_and_no_reclaim_scope_is_reported() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            // SAFETY: as above: a zero-sized token without a destructor, copied on purpose.
            let smuggled = unsafe { core::ptr::read(&ctx) };
            let rs = ReadSection::enter(&mut ctx);
            smuggled.validate();
            drop(rs);
            let nr = ctx.no_reclaim();
            smuggled.validate();
            drop(nr);
            // `Sleepable` has no destructor: the copy just goes out of scope.
        });
        assert_eq!(got.len(), expected(2), "{got:?}");
        if ENABLED {
            assert!(got[0].rule.starts_with("a Sleepable token used inside a read section"));
            assert_eq!(got[0].state.read_depth, 1);
            assert!(got[1].rule.starts_with("a Sleepable token used inside a no-reclaim scope"));
            assert_eq!(got[1].state.no_reclaim_depth, 1);
        }
    }

    #[test]
    fn scope_tokens_outliving_their_scope_are_reported() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            let nr = ctx.no_reclaim();
            // SAFETY: `NoReclaim` is zero-sized; the copy is forgotten below, never dropped,
            // so the scope is exited exactly once (by `drop(nr)`).
            let stale = unsafe { core::ptr::read(&nr) };
            drop(nr);
            stale.validate();
            mem::forget(stale);

            let a = ctx.atomic();
            // SAFETY: as above, for `Atomic`.
            let stale = unsafe { core::ptr::read(&a) };
            drop(a);
            stale.validate();
            mem::forget(stale);
        });
        assert_eq!(got.len(), expected(2), "{got:?}");
        if ENABLED {
            assert!(got[0].rule.starts_with("a NoReclaim token used outside any no-reclaim"));
            assert!(got[1].rule.starts_with("an Atomic token used outside any atomic scope"));
        }
        assert_eq!(crate::thread_state::snapshot(), Snapshot::default());
    }

    #[test]
    fn no_reclaim_token_inside_an_atomic_scope_is_reported() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            let mut nr = ctx.no_reclaim();
            // SAFETY: zero-sized, forgotten below: the scope is exited once, by `drop(nr)`.
            let smuggled = unsafe { core::ptr::read(&nr) };
            let a = nr.atomic();
            smuggled.validate();
            drop(a);
            mem::forget(smuggled);
            drop(nr);
        });
        assert_eq!(got.len(), expected(1), "{got:?}");
        if let Some(v) = got.first() {
            assert!(v.rule.starts_with("a NoReclaim token used inside a read section or atomic"));
        }
    }

    #[test]
    fn unbalanced_exit_is_reported_in_every_build_and_does_not_wrap() {
        let before = violation_count();
        let got = recording(|| {
            // SAFETY: (1) `a` is dropped below, before this closure returns; (2) nothing is
            // opened after it.
            let a = unsafe { Atomic::assume() };
            // SAFETY: `Atomic` is zero-sized, so the copy aliases no memory. Dropping it as
            // well breaks `assume`'s precondition (1) on purpose: the scope ends twice, and
            // the bookkeeping must report that and stay at zero rather than wrap.
            let copy = unsafe { core::ptr::read(&a) };
            drop(a);
            drop(copy);
        });
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].rule.starts_with("a scope ended more often than it began"));
        assert_eq!(crate::thread_state::snapshot(), Snapshot::default());
        assert!(violation_count() > before);
    }

    #[test]
    fn might_sleep_and_might_alloc_report_inside_an_atomic_scope() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            let a = ctx.atomic();
            might_sleep();
            might_alloc();
            drop(a);
        });
        assert_eq!(got.len(), expected(2), "{got:?}");
        if ENABLED {
            assert!(got[0].rule.starts_with("might_sleep() inside"), "{:?}", got[0]);
            assert!(got[1].rule.starts_with("might_alloc() inside"), "{:?}", got[1]);
            assert!(got.iter().all(|v| v.state.atomic_depth == 1));
            assert!(got.iter().all(|v| v.file.ends_with("validate.rs")));
        }
    }

    #[test]
    fn might_sleep_and_might_alloc_report_inside_a_read_section() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            let rs = ReadSection::enter(&mut ctx);
            might_sleep();
            might_alloc();
            drop(rs);
        });
        assert_eq!(got.len(), expected(2), "{got:?}");
        assert!(got.iter().all(|v| v.state.read_depth == 1));
    }

    #[test]
    fn might_sleep_and_might_alloc_are_quiet_at_the_root_and_in_a_no_reclaim_scope() {
        let got = recording(|| {
            let mut ctx = Sleepable::enter();
            might_sleep();
            might_alloc();
            let nr = ctx.no_reclaim();
            might_sleep();
            might_alloc();
            drop(nr);
        });
        assert!(got.is_empty(), "{got:?}");
    }
}
