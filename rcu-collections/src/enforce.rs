//! The check every write that may retire or allocate makes of its token, in every build,
//! before it changes anything.
//!
//! A write retires what it unlinks with `kvfree_rcu` under the caller's token, and
//! rcu-core refuses (panics) when the token claims more than the thread may really do: a
//! second root `Sleepable` used inside an atomic or no-reclaim scope, or inside a read
//! section. Refused there, the unlinked element is leaked, and a write that allocates would
//! already have called the allocator in a context that forbids it. So each write makes the
//! same check first (one thread-local read, next to a bucket lock or a list walk): a token
//! that does not fit is refused before anything is allocated, unlinked or retired. The
//! retire call checks again; user code the write runs in between (a key's `Eq`, a list
//! predicate) can still change the thread's context, and the writes keep their bookkeeping
//! right for that case (see `RcuList::retain`, `RcuHashMap::remove`).
//!
//! (`rcu_ctx::enforce::token_fits` is the same rule; rcu-core does not re-export it.)

use rcu_core::thread_state::{snapshot, Snapshot};
use rcu_core::{Context, ContextKind};

/// Panics unless the calling thread's real context allows what a token of type `C` claims:
/// a `Sleepable` needs a thread that may reclaim, a `NoReclaim` one that may block; an
/// `Atomic` token fits anywhere (the check compiles to nothing for it).
#[track_caller]
#[inline]
pub(crate) fn token_fits<C: Context>(call: &'static str) {
    let fits = |s: Snapshot| match C::KIND {
        ContextKind::Sleepable => s.may_reclaim(),
        ContextKind::NoReclaim => s.may_sleep(),
        ContextKind::Atomic => true,
    };
    if !matches!(C::KIND, ContextKind::Atomic) && !fits(snapshot()) {
        refused(call);
    }
}

#[track_caller]
#[cold]
#[inline(never)]
fn refused(call: &'static str) -> ! {
    let s = snapshot();
    let scope = if s.read_depth != 0 {
        "an RCU read section"
    } else if s.atomic_depth != 0 {
        "an atomic scope"
    } else {
        "a no-reclaim scope"
    };
    panic!(
        "rcu-collections: {call} called inside {scope} with a token that claims more: the \
         write retires what it removes (and may allocate) under the token's policy, which \
         {scope} forbids (rule: a collection's write checks the thread's real context in \
         every build, before it changes anything, whatever token it was handed). The token \
         did not come from the scope: a second root Sleepable taken before it, one kept in a \
         thread_local!, or one captured by a closure that runs inside a read section. Fix: \
         pass the scope's own token (writes that never allocate take an Atomic one), or make \
         the call after the scope ends"
    );
}
