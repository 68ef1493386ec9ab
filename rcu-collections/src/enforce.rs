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
//! The rule and its message are rcu-ctx's (`rcu_core::enforce::token_fits`).

use rcu_core::Context;

/// Panics unless the calling thread's real context allows what a token of type `C` claims:
/// a `Sleepable` needs a thread that may reclaim, a `NoReclaim` one that may block; an
/// `Atomic` token fits anywhere (the check compiles to nothing for it).
#[track_caller]
#[inline]
pub(crate) fn token_fits<C: Context>(call: &'static str) {
    rcu_core::enforce::token_fits::<C>(call);
}
