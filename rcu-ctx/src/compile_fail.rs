//! The executable spec of token misuse: each `compile_fail` example has a compiling twin.
//!
//! One item per misuse. Its first example must fail to compile with the error code given
//! (rustdoc checks the code on nightly, or on stable with `RUSTC_BOOTSTRAP=1`); its second
//! example is the twin, identical except for the misuse, and must compile and run. The twin
//! is what proves that the first example fails for the stated reason and not because of a
//! typo, a missing import or an API that changed shape.
//!
//! Every example defines the helper functions it calls, with the bound a real API would
//! state in its signature:
//!
//! ```
//! fn uses<C: rcu_ctx::Context>(_: &C) {} // any token: e.g. `call_rcu` with an embedded head
//! fn allocs<C: rcu_ctx::MayAlloc>(_: &C) {} // e.g. `call_rcu` with a boxed closure
//! fn sleeps<C: rcu_ctx::MaySleep>(_: &C) {} // e.g. `synchronize_rcu`
//! fn reclaims<C: rcu_ctx::MayReclaim>(_: &C) {} // e.g. `rcu_barrier`
//! # uses(&rcu_ctx::Sleepable::enter());
//! # allocs(&rcu_ctx::Sleepable::enter());
//! # sleeps(&rcu_ctx::Sleepable::enter());
//! # reclaims(&rcu_ctx::Sleepable::enter());
//! ```

// ---------------------------------------------------------------------------------------
// The parent token is unusable while a scope derived from it lives (DESIGN §3, misuse 5).
// ---------------------------------------------------------------------------------------

/// Using the parent `Sleepable` while a `NoReclaim` scope derived from it lives.
///
/// ```compile_fail,E0502
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let nr = ctx.no_reclaim();
/// uses(&ctx); // error: `ctx` is mutably borrowed by `nr`
/// drop(nr);
/// ```
///
/// Twin: the parent is used again once the scope has ended.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let nr = ctx.no_reclaim();
/// drop(nr);
/// uses(&ctx);
/// ```
pub(crate) struct ParentUsedInsideNoReclaimScope;

/// Using the parent `Sleepable` while an `Atomic` scope derived from it lives.
///
/// ```compile_fail,E0502
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// uses(&ctx); // error: `ctx` is mutably borrowed by `a`
/// drop(a);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// drop(a);
/// uses(&ctx);
/// ```
pub(crate) struct ParentUsedInsideAtomicScope;

/// Using the parent `Sleepable` while a read section entered from it lives.
///
/// ```compile_fail,E0502
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// uses(&ctx); // error: `ctx` is mutably borrowed by `rs`
/// drop(rs);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// drop(rs);
/// uses(&ctx);
/// ```
pub(crate) struct ParentUsedInsideReadSection;

/// Opening a second scope from the parent while the first lives: nested scopes must be
/// opened from the innermost token, so the scopes form a stack.
///
/// ```compile_fail,E0499
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut nr = ctx.no_reclaim();
/// let a = ctx.atomic(); // error: `ctx` is already mutably borrowed by `nr`
/// uses(&a);
/// drop(a);
/// drop(nr);
/// ```
///
/// Twin: the inner scope is opened from the innermost token.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut nr = ctx.no_reclaim();
/// let a = nr.atomic();
/// uses(&a);
/// drop(a);
/// drop(nr);
/// ```
pub(crate) struct SecondScopeFromParent;

/// Moving the parent away while a scope derived from it lives.
///
/// ```compile_fail,E0505
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// let moved = ctx; // error: cannot move out of `ctx` because it is borrowed
/// uses(&a);
/// uses(&moved);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// uses(&a);
/// drop(a);
/// let moved = ctx;
/// uses(&moved);
/// ```
pub(crate) struct ParentMovedWhileScopeLives;

/// A scope outliving the token it was derived from.
///
/// ```compile_fail,E0515
/// use rcu_ctx::{MaySleep, NoReclaim, Sleepable};
///
/// fn leak() -> NoReclaim<'static> {
///     let mut ctx = Sleepable::enter();
///     ctx.no_reclaim() // error: returns a value referencing the local `ctx`
/// }
/// drop(leak());
/// ```
///
/// Twin: the parent is borrowed from the caller, so the scope lives no longer than it.
///
/// ```
/// use rcu_ctx::{MaySleep, NoReclaim, Sleepable};
///
/// fn scoped(ctx: &mut Sleepable) -> NoReclaim<'_> {
///     ctx.no_reclaim()
/// }
/// drop(scoped(&mut Sleepable::enter()));
/// ```
pub(crate) struct ScopeOutlivesParent;

/// The `Atomic` token handed out by a read section outliving the section.
///
/// ```compile_fail,E0505
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// let token = rs.token();
/// drop(rs); // error: cannot move out of `rs` because it is borrowed by `token`
/// uses(token);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// let token = rs.token();
/// uses(token);
/// drop(rs);
/// ```
pub(crate) struct ReadTokenOutlivesSection;

// ---------------------------------------------------------------------------------------
// A token belongs to one thread (DESIGN §3, misuse 6).
// ---------------------------------------------------------------------------------------

/// Sending a `Sleepable` to another thread.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// std::thread::spawn(move || uses(&ctx)).join().unwrap(); // error: `Sleepable` is not `Send`
/// ```
///
/// Twin: the other thread acquires its own root.
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// std::thread::spawn(move || uses(&Sleepable::enter())).join().unwrap();
/// uses(&ctx);
/// ```
pub(crate) struct SleepableSentToThread;

/// Sending a `NoReclaim` scope to another thread.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let nr = ctx.no_reclaim();
/// std::thread::scope(|s| {
///     s.spawn(move || uses(&nr)); // error: `NoReclaim` is not `Send`
/// });
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let nr = ctx.no_reclaim();
/// std::thread::scope(|s| {
///     s.spawn(move || uses(&Sleepable::enter()));
/// });
/// uses(&nr);
/// ```
pub(crate) struct NoReclaimSentToThread;

/// Sending a `NoReclaimRoot` to another thread (an async task holding one across `.await`
/// is the same error: the future is not `Send`).
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, NoReclaimRoot};
/// fn uses<C: Context>(_: &C) {}
///
/// let root = NoReclaimRoot::enter();
/// std::thread::spawn(move || uses(&root)).join().unwrap(); // error: not `Send`
/// ```
///
/// Twin: the other thread acquires its own root.
///
/// ```
/// use rcu_ctx::{Context, NoReclaimRoot};
/// fn uses<C: Context>(_: &C) {}
///
/// let root = NoReclaimRoot::enter();
/// std::thread::spawn(move || uses(&NoReclaimRoot::enter())).join().unwrap();
/// uses(&root);
/// ```
pub(crate) struct NoReclaimRootSentToThread;

/// Sending an `Atomic` token to another thread.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// std::thread::scope(|s| {
///     s.spawn(move || uses(&a)); // error: `Atomic` is not `Send`
/// });
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let a = ctx.atomic();
/// std::thread::scope(|s| {
///     s.spawn(move || uses(&Sleepable::enter()));
/// });
/// uses(&a);
/// ```
pub(crate) struct AtomicSentToThread;

/// Sharing `&Sleepable` with another thread.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// std::thread::scope(|s| {
///     s.spawn(|| uses(&ctx)); // error: `Sleepable` is not `Sync`
/// });
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// std::thread::scope(|s| {
///     s.spawn(|| uses(&Sleepable::enter()));
/// });
/// uses(&ctx);
/// ```
pub(crate) struct SleepableSharedWithThread;

/// Sharing a read section's `&Atomic` with another thread.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// let token = rs.token();
/// std::thread::scope(|s| {
///     s.spawn(|| uses(token)); // error: `Atomic` is not `Sync`
/// });
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// let token = rs.token();
/// std::thread::scope(|s| {
///     s.spawn(|| uses(&Sleepable::enter()));
/// });
/// uses(token);
/// ```
pub(crate) struct ReadTokenSharedWithThread;

// ---------------------------------------------------------------------------------------
// A call needs the capability its signature names (DESIGN §3, misuses 1-4 and 8).
// ---------------------------------------------------------------------------------------

/// Calling a may-sleep operation with an `Atomic` token.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.atomic();
/// sleeps(&scope); // error: `Atomic<'_>: MaySleep` is not satisfied
/// ```
///
/// Twin: a no-reclaim scope may sleep.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// sleeps(&scope);
/// ```
pub(crate) struct SleepWithAtomic;

/// Calling a may-sleep operation (e.g. `synchronize_rcu`) inside a read section.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{MaySleep, ReadSection, Sleepable};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// sleeps(rs.token()); // error: `Atomic<'_>: MaySleep` is not satisfied
/// drop(rs);
/// ```
///
/// Twin: after the section.
///
/// ```
/// use rcu_ctx::{MaySleep, ReadSection, Sleepable};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let rs = ReadSection::enter(&mut ctx);
/// drop(rs);
/// sleeps(&ctx);
/// ```
pub(crate) struct SleepInsideReadSection;

/// Calling an allocating operation with an `Atomic` token.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, MayAlloc, MaySleep, Sleepable};
/// fn allocs<C: MayAlloc>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.atomic();
/// allocs(&scope); // error: `Atomic<'_>: MayAlloc` is not satisfied
/// ```
///
/// Twin: a no-reclaim scope may allocate.
///
/// ```
/// use rcu_ctx::{Context, MayAlloc, MaySleep, Sleepable};
/// fn allocs<C: MayAlloc>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// allocs(&scope);
/// ```
pub(crate) struct AllocWithAtomic;

/// Calling a reclaiming operation (e.g. `rcu_barrier`) with a `NoReclaim` token.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{MayReclaim, MaySleep, Sleepable};
/// fn reclaims<C: MayReclaim>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// reclaims(&scope); // error: `NoReclaim<'_>: MayReclaim` is not satisfied
/// drop(scope);
/// ```
///
/// Twin: the `Sleepable` parent may reclaim once the scope has ended.
///
/// ```
/// use rcu_ctx::{MayReclaim, MaySleep, Sleepable};
/// fn reclaims<C: MayReclaim>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// drop(scope);
/// reclaims(&ctx);
/// ```
pub(crate) struct ReclaimWithNoReclaim;

/// Calling a reclaiming operation with an `Atomic` token (e.g. `rcu_barrier` in a callback).
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Atomic, MayReclaim, Sleepable};
/// fn reclaims<C: MayReclaim>(_: &C) {}
/// fn callback(ctx: &Atomic<'_>) {
///     reclaims(ctx); // error: `Atomic<'_>: MayReclaim` is not satisfied
/// }
/// # let _ = callback;
/// ```
///
/// Twin: a function that is given a `Sleepable` may.
///
/// ```
/// use rcu_ctx::{Atomic, MayReclaim, Sleepable};
/// fn reclaims<C: MayReclaim>(_: &C) {}
/// fn callback(ctx: &Sleepable) {
///     reclaims(ctx);
/// }
/// callback(&Sleepable::enter());
/// ```
pub(crate) struct ReclaimWithAtomic;

/// Opening a no-reclaim scope from an `Atomic` token: a scope can only take capabilities
/// away, and `NoReclaim` may sleep, which `Atomic` may not.
///
/// ```compile_fail,E0599
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut a = ctx.atomic();
/// let nr = a.no_reclaim(); // error: `Atomic<'_>: MaySleep` is not satisfied
/// uses(&nr);
/// ```
///
/// Twin: a no-reclaim scope nests inside another.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut a = ctx.no_reclaim();
/// let nr = a.no_reclaim();
/// uses(&nr);
/// ```
pub(crate) struct NoReclaimFromAtomic;

// ---------------------------------------------------------------------------------------
// Tokens are never duplicated, forged or assumed without `unsafe` (DESIGN §3).
// ---------------------------------------------------------------------------------------

/// Cloning a `Sleepable`.
///
/// ```compile_fail,E0599
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// let other = ctx.clone(); // error: no method named `clone`
/// uses(&ctx);
/// uses(&other);
/// ```
///
/// Twin: a second root is acquired explicitly (and checked at run time).
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// let other = Sleepable::enter();
/// uses(&ctx);
/// uses(&other);
/// ```
pub(crate) struct SleepableCloned;

/// Cloning an `Atomic` token.
///
/// ```compile_fail,E0599
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut a = ctx.atomic();
/// let other = a.clone(); // error: no method named `clone`
/// uses(&other);
/// ```
///
/// Twin: a nested scope is opened from it.
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut a = ctx.atomic();
/// let other = a.atomic();
/// uses(&other);
/// ```
pub(crate) struct AtomicCloned;

/// Copying a `Sleepable` by assignment: it moves, so the original is gone.
///
/// ```compile_fail,E0382
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// let other = ctx;
/// uses(&other);
/// uses(&ctx); // error: borrow of moved value `ctx`
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let ctx = Sleepable::enter();
/// let other = ctx;
/// uses(&other);
/// uses(&other);
/// ```
pub(crate) struct SleepableCopied;

/// Claiming a capability for a foreign type: the capability traits are sealed.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, ContextKind, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// struct Forged<'a>(&'a Sleepable);
/// impl Context for Forged<'_> {
///     // error: the trait bound `Forged<'_>: Sealed` is not satisfied
///     const KIND: ContextKind = ContextKind::Sleepable;
/// }
/// let ctx = Sleepable::enter();
/// uses(&Forged(&ctx));
/// ```
///
/// Twin: a wrapper hands out the token it holds.
///
/// ```
/// use rcu_ctx::{Context, ContextKind, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// struct Forged<'a>(&'a Sleepable);
/// let ctx = Sleepable::enter();
/// uses(Forged(&ctx).0);
/// ```
pub(crate) struct ForeignContextImpl;

/// Assuming an `Atomic` token without `unsafe`.
///
/// ```compile_fail,E0133
/// use rcu_ctx::{Atomic, Context};
/// fn uses<C: Context>(_: &C) {}
///
/// let a = Atomic::assume(); // error: call to unsafe function
/// uses(&a);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_ctx::{Atomic, Context};
/// fn uses<C: Context>(_: &C) {}
///
/// // SAFETY: (1) `a` is dropped at the end of this block; (2) no scope is opened after it.
/// let a = unsafe { Atomic::assume() };
/// uses(&a);
/// ```
pub(crate) struct AssumeWithoutUnsafe;

// ---------------------------------------------------------------------------------------
// Scopes need the parent exclusively (DESIGN §3, misuse 5: the reason for `&mut`).
// ---------------------------------------------------------------------------------------

/// Opening a scope from a shared `&C`: a scope makes its parent unusable while it lives,
/// which only an exclusive borrow can promise (see `Context::atomic`). rustc's E0596 ("cannot
/// borrow `*ctx` as mutable, as it is behind a `&` reference") cannot carry a custom note;
/// the guide's error table explains it.
///
/// ```compile_fail,E0596
/// use rcu_ctx::{Context, Sleepable};
///
/// fn under_spinlock<C: Context>(ctx: &C) {
///     let _spin = ctx.atomic(); // error: `ctx` is a `&` reference
/// }
/// under_spinlock(&Sleepable::enter());
/// ```
///
/// Twin: the function takes the token it narrows by `&mut`.
///
/// ```
/// use rcu_ctx::{Context, Sleepable};
///
/// fn under_spinlock<C: Context>(ctx: &mut C) {
///     let _spin = ctx.atomic();
/// }
/// under_spinlock(&mut Sleepable::enter());
/// ```
pub(crate) struct ScopeFromSharedToken;

/// Passing something that is not a token where a token is expected (here the read section
/// itself instead of its token): E0277 with the `Context` trait's note naming what to pass.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let section = ReadSection::enter(&mut ctx);
/// uses(&section); // error: `ReadSection<'_>` is not a context token
/// ```
///
/// Twin: the section's token.
///
/// ```
/// use rcu_ctx::{Context, ReadSection, Sleepable};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let section = ReadSection::enter(&mut ctx);
/// uses(section.token());
/// ```
pub(crate) struct NotAToken;

/// Installing the payer of `rcu_ctx::owed` is `unsafe`: it runs inside every thread's scope
/// openings, an RCU runtime's workers included, and a payer that waited for a worker's
/// progress would wedge it (red team of issue 22). Safe code cannot install one.
///
/// ```compile_fail,E0133
/// use rcu_ctx::owed::{set_payer, Payment};
/// fn pay(_: Payment) {}
/// let _ = set_payer(pay); // error: call to unsafe function requires an unsafe block
/// ```
///
/// Twin: with the contract kept and said.
///
/// ```
/// use rcu_ctx::owed::{set_payer, Payment};
/// fn pay(_: Payment) {}
/// // SAFETY: (1) `pay` does nothing, so nothing its payment forbids; (2) it never waits.
/// let _ = unsafe { set_payer(pay) };
/// ```
pub(crate) struct SetPayerIsUnsafe;

// ---------------------------------------------------------------------------------------
// Sleepable (SRCU) sections: their token keeps the parent's powers but may not wait for a
// grace period of its own domain's brand.
// ---------------------------------------------------------------------------------------

/// Waiting for a grace period of the section's own brand: it would wait for itself.
///
/// ```compile_fail,E0080
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Routes, _>::enter(&mut ctx);
/// synchronize::<Routes, _>(&section); // error: evaluation panicked: rule: nothing waits ...
/// ```
///
/// Twin: the same wait for a domain of another brand.
///
/// ```
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// rcu_ctx::section_brand!(Sessions);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Routes, _>::enter(&mut ctx);
/// synchronize::<Sessions, _>(&section);
/// ```
pub(crate) struct WaitForOwnSleepableDomain;

/// The same self-wait from a section nested in the domain's section: every level counts.
///
/// ```compile_fail,E0080
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// rcu_ctx::section_brand!(Sessions);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let mut outer = SleepableSection::<Routes, _>::enter(&mut ctx);
/// let inner = SleepableSection::<Sessions, _>::enter(&mut outer);
/// synchronize::<Routes, _>(&inner); // error: still inside a section of `Routes`
/// ```
///
/// Twin: a wait for a third brand from the same nesting.
///
/// ```
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection};
/// rcu_ctx::section_brand!(Routes);
/// rcu_ctx::section_brand!(Sessions);
/// rcu_ctx::section_brand!(Users);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let mut outer = SleepableSection::<Routes, _>::enter(&mut ctx);
/// let inner = SleepableSection::<Sessions, _>::enter(&mut outer);
/// synchronize::<Users, _>(&inner);
/// ```
pub(crate) struct WaitForOwnSleepableDomainNested;

/// Unbranded domains share one brand: inside a section of one, a wait for any other is
/// refused (the types cannot tell them apart).
///
/// ```compile_fail,E0080
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection, Unbranded};
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut ctx);
/// synchronize::<Unbranded, _>(&section); // error: maybe the same domain
/// ```
///
/// Twin: the waited-for domain is branded.
///
/// ```
/// use rcu_ctx::{MayWaitFor, SectionBrand, Sleepable, SleepableSection, Unbranded};
/// rcu_ctx::section_brand!(Sessions);
/// fn synchronize<B: SectionBrand, C: MayWaitFor<B>>(ctx: &C) {
///     rcu_ctx::check_may_wait_for::<B, C>(ctx);
/// }
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut ctx);
/// synchronize::<Sessions, _>(&section);
/// ```
pub(crate) struct WaitForUnbrandedInsideUnbranded;

/// A sleepable section entered from an `Atomic` token may not sleep: it keeps the parent's
/// powers, no more.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Context, MaySleep, Sleepable, SleepableSection, Unbranded};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let mut spin = ctx.atomic();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut spin);
/// sleeps(&section); // error: `Atomic` may not sleep, nor may a section entered from it
/// ```
///
/// Twin: entered from the `Sleepable` token.
///
/// ```
/// use rcu_ctx::{Context, MaySleep, Sleepable, SleepableSection, Unbranded};
/// fn sleeps<C: MaySleep>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut ctx);
/// sleeps(&section);
/// ```
pub(crate) struct SleepableSectionKeepsOnlyTheParentsPowers;

/// The parent token is unusable while the section's token lives.
///
/// ```compile_fail,E0502
/// use rcu_ctx::{Context, Sleepable, SleepableSection, Unbranded};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut ctx);
/// uses(&ctx); // error: `ctx` is mutably borrowed by `section`
/// drop(section);
/// ```
///
/// Twin: the parent is used again once the section has ended.
///
/// ```
/// use rcu_ctx::{Context, Sleepable, SleepableSection, Unbranded};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// let section = SleepableSection::<Unbranded, _>::enter(&mut ctx);
/// drop(section);
/// uses(&ctx);
/// ```
pub(crate) struct ParentUsedInsideSleepableSection;

/// A sleepable section's token belongs to its thread, as every token does.
///
/// ```compile_fail,E0277
/// use rcu_ctx::{Sleepable, SleepableSection, Unbranded};
/// fn send<T: Send>(_: T) {}
///
/// let mut ctx = Sleepable::enter();
/// send(SleepableSection::<Unbranded, _>::enter(&mut ctx)); // error: not `Send`
/// ```
///
/// Twin: used on its own thread.
///
/// ```
/// use rcu_ctx::{Context, Sleepable, SleepableSection, Unbranded};
/// fn uses<C: Context>(_: &C) {}
///
/// let mut ctx = Sleepable::enter();
/// uses(&SleepableSection::<Unbranded, _>::enter(&mut ctx));
/// ```
pub(crate) struct SleepableSectionSentToAnotherThread;
