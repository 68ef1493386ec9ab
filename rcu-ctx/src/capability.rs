//! Sealed capability traits: what a token allows, stated in the type system.
//!
//! APIs name the capability they need in their signature (`C: MaySleep`), so a call with a
//! token that lacks it fails to compile. The traits are sealed: only the three tokens of this
//! crate implement them, so no foreign type can claim a capability.

use crate::token::{Atomic, NoReclaim, Sleepable};

/// Which of the three contexts a token stands for; a compile-time constant of the token type.
///
/// Policies elsewhere (allocation, waiting) are `const` functions of this value, so the
/// decision is made by the compiler, never by inspecting the thread at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextKind {
    /// May block, allocate and reclaim.
    Sleepable,
    /// May block and allocate, must not reclaim.
    NoReclaim,
    /// Must not block, allocate or reclaim.
    Atomic,
}

pub(crate) mod sealed {
    /// Prevents implementations outside this crate.
    pub trait Sealed {}
}

/// Every context token: `Sleepable`, `NoReclaim` and `Atomic`.
///
/// Operations that are allowed everywhere (e.g. `call_rcu` with an embedded head) take
/// `&impl Context`; their behaviour is then a compile-time function of [`Context::KIND`].
pub trait Context: sealed::Sealed {
    /// The context this token stands for.
    const KIND: ContextKind;

    /// Debug validation: reports a violation if this token disagrees with the calling thread's
    /// real state (a token smuggled past the borrow checker with `unsafe`). A no-op in release
    /// builds without the `checks` feature. Every token-taking API calls it on entry.
    #[track_caller]
    fn validate(&self) {
        crate::validate::token(Self::KIND);
    }

    /// Enters an atomic scope (e.g. while holding a spinlock): the parent token is unusable
    /// until the returned token is dropped.
    fn atomic(&mut self) -> Atomic<'_> {
        Atomic::enter_scope()
    }
}

/// Tokens that may call the global allocator: `Sleepable` and `NoReclaim`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not allocate: this call may call the global allocator",
    label = "an allocating call needs a `Sleepable` or `NoReclaim` token",
    note = "inside a read section, an atomic scope or a callback, use the variant that takes an \
            embedded head (`Rcu<T>`), which never allocates"
)]
pub trait MayAlloc: Context {}

/// Tokens that may block: `Sleepable` and `NoReclaim`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not sleep: this call may block",
    label = "a blocking call needs a `Sleepable` or `NoReclaim` token",
    note = "an `Atomic` token comes from a read section, an atomic scope or a callback, where \
            blocking is forbidden; end the scope first, or use the polled or deferred variant"
)]
pub trait MaySleep: Context {
    /// Enters a no-reclaim scope (e.g. inside a memory-reclaim path): the parent token is
    /// unusable until the returned token is dropped.
    fn no_reclaim(&mut self) -> NoReclaim<'_> {
        NoReclaim::enter_scope()
    }
}

/// Tokens that may reclaim (run shrinkers, wait for grace periods to free memory, run
/// ready callbacks inline): `Sleepable` only.
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

impl sealed::Sealed for Atomic<'_> {}
impl Context for Atomic<'_> {
    const KIND: ContextKind = ContextKind::Atomic;
}
