//! Checks that run in every build: a call that may block or reclaim panics when the thread
//! really is in a context that forbids it, whatever token it was handed.
//!
//! The token types rule out every misuse the borrow checker can see. What they cannot see is
//! a token that did not come from the scope: a second root `Sleepable` taken before the
//! scope opened, one kept in a `thread_local!`, one captured by a closure that runs inside a
//! read section. More than one live root per thread is allowed (roots are cheap, and code
//! deep in a call chain may legitimately take its own at the top of a thread), because these
//! calls check the thread's real state instead: one thread-local load and a compare, next to
//! calls that cost microseconds (they block, allocate or run callbacks). Cheap calls that
//! never block (`poll`, an `Atomic` `kvfree_rcu`) are checked only by debug validation.
//!
//! ```
//! use rcu_ctx::{enforce, Context, MaySleep, Sleepable};
//! use std::panic::catch_unwind;
//!
//! let spare = Sleepable::enter(); // a second root, taken early
//! let mut ctx = Sleepable::enter();
//! enforce::may_sleep("my_blocking_call"); // fine: no scope is open
//! let spin = ctx.atomic();
//! let err = catch_unwind(|| enforce::token_fits::<Sleepable>("my_blocking_call")).unwrap_err();
//! let msg = err.downcast_ref::<String>().unwrap();
//! assert!(msg.contains("my_blocking_call called inside an atomic scope"), "{msg}");
//! drop(spin);
//! drop(spare);
//! ```

use crate::capability::Context;
use crate::depths;
use crate::kind::ContextKind;

/// Panics unless the calling thread may block: not inside a read section or an atomic scope.
/// `call` names the operation in the message.
///
/// # Panics
/// Inside a read section or an atomic scope, naming the rule and the fix.
///
/// ```
/// use rcu_ctx::{enforce, MaySleep, Sleepable};
/// let mut ctx = Sleepable::enter();
/// let _nr = ctx.no_reclaim();
/// enforce::may_sleep("wait_for_io"); // a no-reclaim scope may block
/// ```
#[track_caller]
#[inline]
pub fn may_sleep(call: &'static str) {
    if !depths::snapshot().may_sleep() {
        forbidden(call, "may block");
    }
}

/// Panics unless the calling thread may reclaim: additionally not inside a no-reclaim scope.
///
/// # Panics
/// Inside a read section, an atomic scope or a no-reclaim scope, naming the rule and the fix.
///
/// ```
/// use rcu_ctx::{enforce, Sleepable};
/// let _ctx = Sleepable::enter();
/// enforce::may_reclaim("drain_caches");
/// ```
#[track_caller]
#[inline]
pub fn may_reclaim(call: &'static str) {
    if !depths::snapshot().may_reclaim() {
        forbidden(call, "may reclaim");
    }
}

/// Panics unless the thread's state allows what a token of type `C` allows: a `Sleepable`
/// needs a thread that may reclaim, a `NoReclaim` one that may block; an `Atomic` token is
/// allowed anywhere. For calls whose behaviour is chosen from the token's type (the
/// allocation policy): the thread must really be in the context the type claims.
///
/// # Panics
/// When the state forbids what `C` allows, naming the rule and the fix.
///
/// ```
/// use rcu_ctx::{enforce, Atomic, Context, Sleepable};
/// let mut ctx = Sleepable::enter();
/// enforce::token_fits::<Sleepable>("kvfree_rcu");
/// let _spin = ctx.atomic();
/// enforce::token_fits::<Atomic<'_>>("kvfree_rcu"); // an Atomic token fits everywhere
/// ```
#[track_caller]
#[inline]
pub fn token_fits<C: Context>(call: &'static str) {
    match C::KIND {
        ContextKind::Sleepable => may_reclaim(call),
        ContextKind::NoReclaim => may_sleep(call),
        ContextKind::Atomic => {}
    }
}

#[track_caller]
#[cold]
#[inline(never)]
fn forbidden(call: &'static str, what: &'static str) -> ! {
    let scope = depths::innermost_restriction().unwrap_or("a restricted context");
    let fix = if scope == "a no-reclaim scope" {
        "pass the scope's NoReclaim token (its policy never reclaims) or make the call after \
         the scope ends"
    } else {
        "use the scope's own token (a read guard's ctx(), the Atomic scope token) with a call \
         it allows (start_poll/poll, call_rcu, kvfree_rcu), or make the call after the scope \
         ends"
    };
    panic!(
        "rcu-ctx: {call} called inside {scope} with a token that claims more: this call {what}, \
         which {scope} forbids (rule: a call that may block or reclaim checks the thread's real \
         context in every build, whatever token it was handed). The token did not come from \
         the scope: a second root Sleepable taken before it, one kept in a thread_local!, or \
         one captured by a closure that runs inside a read section. Fix: {fix}"
    );
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::{may_reclaim, may_sleep, token_fits};
    use crate::{Atomic, Context, MaySleep, NoReclaim, ReadSection, Sleepable};

    fn message(f: impl FnOnce()) -> Option<String> {
        let err = catch_unwind(AssertUnwindSafe(f)).err()?;
        Some(err.downcast_ref::<String>().cloned().unwrap_or_default())
    }

    #[test]
    fn the_root_allows_everything() {
        let _ctx = Sleepable::enter();
        assert_eq!(message(|| may_reclaim("x")), None);
        assert_eq!(message(|| token_fits::<Sleepable>("x")), None);
    }

    #[test]
    fn a_second_root_cannot_block_inside_an_atomic_scope_or_a_read_section() {
        let spare = Sleepable::enter();
        let mut ctx = Sleepable::enter();
        {
            let _spin = ctx.atomic();
            let msg = message(|| may_sleep("synchronize_rcu")).expect("panics");
            assert!(msg.contains("synchronize_rcu called inside an atomic scope"), "{msg}");
            assert!(message(|| token_fits::<NoReclaim<'_>>("kvfree_rcu")).is_some());
            assert_eq!(message(|| token_fits::<Atomic<'_>>("kvfree_rcu")), None);
        }
        {
            let _section = ReadSection::enter(&mut ctx);
            let msg = message(|| token_fits::<Sleepable>("kvfree_rcu")).expect("panics");
            assert!(msg.contains("inside an RCU read section"), "{msg}");
        }
        drop(spare);
    }

    #[test]
    fn a_no_reclaim_scope_may_block_but_not_reclaim() {
        let mut ctx = Sleepable::enter();
        let _nr = ctx.no_reclaim();
        assert_eq!(message(|| may_sleep("synchronize_rcu")), None);
        assert_eq!(message(|| token_fits::<NoReclaim<'_>>("kvfree_rcu")), None);
        let msg = message(|| may_reclaim("rcu_barrier")).expect("panics");
        assert!(msg.contains("rcu_barrier called inside a no-reclaim scope"), "{msg}");
        assert!(msg.contains("pass the scope's NoReclaim token"), "{msg}");
        assert!(message(|| token_fits::<Sleepable>("kvfree_rcu")).is_some());
    }
}
