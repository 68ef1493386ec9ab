//! The token of code inside a sleepable (SRCU) read section, and the compile-time rule that
//! nothing waits for a grace period of the section's own domain.
//!
//! A classic read section hands out an `Atomic` token: its reader must not block, so no wait
//! can happen inside it. A sleepable section may block (the reader only delays its own
//! domain's grace periods), so its token keeps the powers of the token it was entered from.
//! One wait stays forbidden: a grace period of the same domain, which would wait for the
//! section that waits for it. The section's token carries the domain's brand
//! ([`SectionBrand`]), and a wait checks the brands of every section the caller's token is
//! inside ([`MayWaitFor`]).

use core::marker::PhantomData;

use crate::brand::SectionBrand;
use crate::capability::{sealed, Context, MayAlloc, MayReclaim, MaySleep};
use crate::kind::ContextKind;
use crate::token::{Atomic, NoReclaim, NoReclaimRoot, NotSendSync, Sleepable};

/// The token of code inside a sleepable read section of a domain branded `B`, entered from
/// a token of type `P`, which stays exclusively borrowed for `'p`.
///
/// It has the parent's kind and capabilities: inside a section entered from a `Sleepable`
/// token, code may block, allocate and reclaim, and wait for grace periods of other domains
/// (the classic ones included). A wait for a grace period of a domain branded `B` does not
/// compile with it ([`MayWaitFor`]). Zero-sized, neither `Send` nor `Sync`, nor `Clone`:
/// like every token, it belongs to its thread.
///
/// The RCU runtime's sleepable read guard holds one and lends it out; entering one by hand
/// only narrows what the parent allows.
///
/// ```
/// use rcu_ctx::{Context, MayReclaim, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
///
/// fn reclaims<C: MayReclaim>(ctx: &C) {
///     ctx.validate();
/// }
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Routes, _>::enter(&mut ctx);
/// reclaims(&section); // the parent's powers
/// std::thread::sleep(std::time::Duration::from_millis(1)); // a sleepable reader may block
/// ```
#[derive(Debug)]
pub struct SleepableSection<'p, B: SectionBrand, P: Context> {
    _parent: PhantomData<&'p mut P>,
    _brand: PhantomData<fn() -> B>,
    _not_send_sync: NotSendSync,
}

impl<'p, B: SectionBrand, P: Context> SleepableSection<'p, B, P> {
    /// The token of a sleepable section entered from `parent`, which is unusable until this
    /// is dropped. Touches no thread state: the thread stays in `parent`'s context.
    #[inline]
    #[track_caller]
    pub fn enter(parent: &'p mut P) -> Self {
        parent.validate();
        SleepableSection { _parent: PhantomData, _brand: PhantomData, _not_send_sync: PhantomData }
    }
}

impl<B: SectionBrand, P: Context> sealed::Sealed for SleepableSection<'_, B, P> {}
impl<B: SectionBrand, P: Context> Context for SleepableSection<'_, B, P> {
    const KIND: ContextKind = P::KIND;
    const IN_SLEEPABLE_SECTION: bool = true;
}
impl<B: SectionBrand, P: MayAlloc> MayAlloc for SleepableSection<'_, B, P> {}
impl<B: SectionBrand, P: MaySleep> MaySleep for SleepableSection<'_, B, P> {}
impl<B: SectionBrand, P: MayReclaim> MayReclaim for SleepableSection<'_, B, P> {}

/// Whether a token is inside a sleepable section branded `B`: implemented by every token.
/// What [`MayWaitFor`] checks; not for use on its own.
pub trait SectionState<B: SectionBrand>: Context {
    /// True if the token is a sleepable section of brand `B`, or nested in one.
    #[doc(hidden)]
    const INSIDE: bool;
}

impl<B: SectionBrand> SectionState<B> for Sleepable {
    const INSIDE: bool = false;
}
impl<B: SectionBrand> SectionState<B> for NoReclaim<'_> {
    const INSIDE: bool = false;
}
impl<B: SectionBrand> SectionState<B> for NoReclaimRoot {
    const INSIDE: bool = false;
}
impl<B: SectionBrand> SectionState<B> for Atomic<'_> {
    const INSIDE: bool = false;
}
impl<B: SectionBrand, H: SectionBrand, P: SectionState<B>> SectionState<B>
    for SleepableSection<'_, H, P>
{
    const INSIDE: bool = H::ID == B::ID || P::INSIDE;
}

/// Tokens that may wait for a grace period of a sleepable domain branded `B`: those that may
/// sleep and are not inside a section of brand `B` (at any depth of nesting).
///
/// The second half is checked when the waiting call is compiled for its types, by
/// evaluating [`MayWaitFor::CHECK`] ([`check_may_wait_for`]): a self-wait fails with E0080
/// ("evaluation panicked") and the rule. `cargo check` does not evaluate it; `cargo build`
/// and `cargo test` do. Where the types cannot see the section (a second root token taken
/// inside it, a scope opened through a generic `MaySleep::no_reclaim`), the runtime panics
/// instead.
///
/// ```compile_fail,E0080
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Routes, _>::enter(&mut ctx);
/// synchronize::<Routes, _>(&section); // waits for the section that waits for it
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` may not wait for a grace period of a domain branded `{B}`",
    label = "this wait needs a token that may sleep",
    note = "an `Atomic` token (a classic read section, an atomic scope, a callback) may not \
            block; end the scope first, or use the polled or deferred variant"
)]
pub trait MayWaitFor<B: SectionBrand>: MaySleep + SectionState<B> {
    /// Evaluating it fails to compile if the token is inside a section of brand `B`.
    const CHECK: () = assert!(
        !Self::INSIDE,
        "rule: nothing waits for a grace period of a sleepable (SRCU) domain inside a read \
         section of the same domain, which would wait for itself; domains of one brand count \
         as one. Fix: end the section before waiting, or give the domains distinct brands \
         (rcu_ctx::section_brand!)"
    );
}

impl<B: SectionBrand, C: MaySleep + SectionState<B>> MayWaitFor<B> for C {}

/// The compile-time half of the wait rule: instantiating this for a token inside a section
/// of brand `B` fails to compile (E0080). Every wait for a sleepable domain's grace period
/// calls it with the domain's brand.
///
/// ```
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// rcu_ctx::section_brand!(Sessions);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
/// let mut ctx = Sleepable::enter();
/// synchronize::<Routes, _>(&ctx); // outside any section
/// let section = SleepableSection::<Routes, _>::enter(&mut ctx);
/// synchronize::<Sessions, _>(&section); // another domain's grace period
/// ```
#[inline(always)]
pub fn check_may_wait_for<B: SectionBrand, C: MayWaitFor<B>>(_ctx: &C) {
    let () = <C as MayWaitFor<B>>::CHECK;
}
