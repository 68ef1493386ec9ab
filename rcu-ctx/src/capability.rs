//! Sealed capability traits: what a token allows, stated in the type system.
//!
//! APIs name the capability they need in their signature (`C: MaySleep`), so a call with a
//! token that lacks it fails to compile. The traits are sealed: only this crate's tokens (the
//! three kinds, and `NoReclaimRoot`, a root of kind `NoReclaim`) implement them, so no
//! foreign type can claim a capability.

use crate::kind::ContextKind;
use crate::token::{Atomic, NoReclaim, NoReclaimRoot, Sleepable};

pub(crate) mod sealed {
    /// Prevents implementations outside this crate.
    pub trait Sealed {}
}

/// Every context token: `Sleepable`, `NoReclaim` and `Atomic`.
///
/// Operations that are allowed everywhere (e.g. `call_rcu` with an embedded head) take
/// `&impl Context`; their behaviour is then a compile-time function of [`Context::KIND`].
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
///
/// /// Legal in every context: takes any token.
/// fn count<C: Context>(ctx: &C, n: &mut u32) {
///     ctx.validate();
///     *n += 1;
/// }
/// let mut ctx = Sleepable::enter();
/// let mut n = 0;
/// count(&ctx, &mut n);
/// count(&ctx.atomic(), &mut n);
/// assert_eq!(n, 2);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a context token",
    label = "expected `&Sleepable`, `&NoReclaim<'_>` or `&Atomic<'_>` here",
    note = "pass the token itself: the thread's root (`&ctx`) or a scope's token; inside a read \
            section, `guard.ctx()`; in an RCU callback, its `&Atomic` parameter"
)]
pub trait Context: sealed::Sealed {
    /// The context this token stands for.
    const KIND: ContextKind;

    /// True for the token of a sleepable (SRCU) read section: a call that queues work on a
    /// sleepable domain with it must not reclaim, which may wait for that domain's grace
    /// periods (code that knows the domain's brand asks `SectionState` instead). Not for use
    /// outside the RCU crates.
    #[doc(hidden)]
    const IN_SLEEPABLE_SECTION: bool = false;

    /// Debug validation: reports a violation if this token disagrees with the calling thread's
    /// real state (a token smuggled past the borrow checker with `unsafe`). A no-op in release
    /// builds without the `checks` feature. Every token-taking API calls it on entry.
    ///
    /// ```
    /// use rcu_ctx::{Context, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// ctx.validate(); // agrees with the thread: silent
    /// let spin = ctx.atomic();
    /// spin.validate(); // so does the scope's token
    /// ```
    #[track_caller]
    fn validate(&self) {
        crate::validate::token(Self::KIND);
    }

    /// Enters an atomic scope (e.g. while holding a spinlock): the parent token is unusable
    /// until the returned token is dropped.
    ///
    /// Opened from a `Sleepable` or `NoReclaim` token, it first pays, in that token's
    /// context, the work the thread's earlier scopes left behind (module [`owed`](crate::owed)):
    /// from a `Sleepable` token that may run ready frees (a reclaim action), so open it before
    /// taking the lock it is for.
    ///
    /// Why `&mut self`: the scope's token says the thread may no longer block or allocate,
    /// and that is only true while nobody can reach the parent, which would still claim
    /// more. An exclusive borrow is how the compiler enforces it, so a scope cannot be opened
    /// from a shared `&C`: that fails with E0596 ("cannot borrow `*ctx` as mutable, as it is
    /// behind a `&` reference"). Take `ctx: &mut C` in a function that opens scopes, or, from
    /// a shared `&Atomic` (a callback's, `guard.ctx()`), use `Atomic::nested`.
    ///
    /// # Panics
    /// If the thread already has `u32::MAX` atomic scopes open (possible only by forgetting
    /// them in a loop): a depth never wraps, and the refused scope is not counted.
    ///
    /// ```
    /// use rcu_ctx::{thread_state, Context, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// {
    ///     let _spin = ctx.atomic(); // e.g. while a spinlock is held
    ///     assert_eq!(thread_state::snapshot().atomic_depth, 1);
    /// } // the scope ends when the token is dropped
    /// assert_eq!(thread_state::snapshot().atomic_depth, 0);
    /// ```
    #[track_caller]
    fn atomic(&mut self) -> Atomic<'_> {
        // Pays what this token may (see `owed`) while still in its context, then counts.
        Atomic::enter_scope_after(|| crate::owed::pay(Self::KIND))
    }
}

/// Tokens that may call the global allocator: `Sleepable` and `NoReclaim`.
///
/// ```
/// use rcu_ctx::{MayAlloc, MaySleep, Sleepable};
///
/// fn stash<C: MayAlloc>(_ctx: &C, buf: &mut Vec<u8>) {
///     buf.push(1); // may call the global allocator
/// }
/// let mut ctx = Sleepable::enter();
/// let mut buf = Vec::new();
/// stash(&ctx, &mut buf);
/// stash(&ctx.no_reclaim(), &mut buf);
/// // stash(&ctx.atomic(), &mut buf); // does not compile: `Atomic` may not allocate
/// assert_eq!(buf.len(), 2);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not allocate: this call may call the global allocator",
    label = "an allocating call needs a `Sleepable` or `NoReclaim` token",
    note = "inside a read section, an atomic scope or a callback, use the variant that takes an \
            embedded head (`Rcu<T>`), which never allocates"
)]
pub trait MayAlloc: Context {}

/// Tokens that may block: `Sleepable` and `NoReclaim`.
///
/// ```
/// use std::sync::Mutex;
/// use rcu_ctx::{MaySleep, Sleepable};
///
/// fn locked<C: MaySleep>(_ctx: &C, m: &Mutex<u32>) -> u32 {
///     *m.lock().unwrap() // may block
/// }
/// let m = Mutex::new(7);
/// let mut ctx = Sleepable::enter();
/// assert_eq!(locked(&ctx, &m), 7);
/// assert_eq!(locked(&ctx.no_reclaim(), &m), 7);
/// // locked(&ctx.atomic(), &m); // does not compile: `Atomic` may not sleep
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not sleep: this call may block",
    label = "a blocking call needs a `Sleepable` or `NoReclaim` token",
    note = "an `Atomic` token comes from a read section, an atomic scope or a callback, where \
            blocking is forbidden; end the scope first, or use the polled or deferred variant"
)]
pub trait MaySleep: Context {
    /// Enters a no-reclaim scope (e.g. inside a memory-reclaim path): the parent token is
    /// unusable until the returned token is dropped. Like [`Context::atomic`], it first pays
    /// what the thread owes and its token may pay (module [`owed`](crate::owed)): open it
    /// before taking the lock it is for. Needs `&mut self` for the reason
    /// [`Context::atomic`] gives (E0596 from a shared `&C`).
    ///
    /// # Panics
    /// If the thread already has `u32::MAX` no-reclaim scopes open (possible only by
    /// forgetting them in a loop): a depth never wraps, and the refused scope is not counted.
    ///
    /// ```
    /// use rcu_ctx::{thread_state, MaySleep, Sleepable};
    /// let mut ctx = Sleepable::enter();
    /// {
    ///     let mut nr = ctx.no_reclaim(); // `ctx` is unusable until `nr` is dropped
    ///     let _inner = nr.no_reclaim(); // scopes nest
    ///     assert_eq!(thread_state::snapshot().no_reclaim_depth, 2);
    /// }
    /// assert!(thread_state::snapshot().may_reclaim());
    /// ```
    #[track_caller]
    fn no_reclaim(&mut self) -> NoReclaim<'_> {
        // Pays what this token may (see `owed`) while still in its context, then counts.
        NoReclaim::enter_scope_after(|| crate::owed::pay(Self::KIND))
    }
}

/// Tokens that may reclaim (run shrinkers, wait for grace periods to free memory, run
/// ready callbacks inline): `Sleepable` only.
///
/// ```
/// use rcu_ctx::{MayReclaim, Sleepable};
///
/// fn shrink<C: MayReclaim>(_ctx: &C, cache: &mut Vec<u8>) {
///     cache.clear();
///     cache.shrink_to_fit(); // stands for running shrinkers or waiting for frees
/// }
/// let ctx = Sleepable::enter();
/// let mut cache = vec![0u8; 1024];
/// shrink(&ctx, &mut cache);
/// // shrink(&ctx.no_reclaim(), &mut cache); // does not compile: `NoReclaim` may not reclaim
/// assert_eq!(cache.capacity(), 0);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not reclaim: this call may run shrinkers or wait for memory to be freed",
    label = "a reclaiming call needs a `Sleepable` token",
    note = "a `NoReclaim` scope exists so that reclaim paths never recurse into reclaim; call \
            this outside the scope"
)]
pub trait MayReclaim: MaySleep + MayAlloc {}

impl sealed::Sealed for Sleepable {}
impl Context for Sleepable {
    const KIND: ContextKind = ContextKind::Sleepable;
}
impl MayAlloc for Sleepable {}
impl MaySleep for Sleepable {}
impl MayReclaim for Sleepable {}

impl sealed::Sealed for NoReclaim<'_> {}
impl Context for NoReclaim<'_> {
    const KIND: ContextKind = ContextKind::NoReclaim;
}
impl MayAlloc for NoReclaim<'_> {}
impl MaySleep for NoReclaim<'_> {}

impl sealed::Sealed for NoReclaimRoot {}
impl Context for NoReclaimRoot {
    const KIND: ContextKind = ContextKind::NoReclaim;
}
impl MayAlloc for NoReclaimRoot {}
impl MaySleep for NoReclaimRoot {}

impl sealed::Sealed for Atomic<'_> {}
impl Context for Atomic<'_> {
    const KIND: ContextKind = ContextKind::Atomic;
}
