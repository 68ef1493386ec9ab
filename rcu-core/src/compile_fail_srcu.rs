//! The compile-time spec of sleepable RCU domains (`SrcuStruct`, `SrcuGuard`,
//! `SrcuOwnedGuard`): each misuse is a `compile_fail` example with a compiling twin that
//! differs only in the misuse, and must compile and run. The twin is what proves that the
//! first example fails for the stated reason. Error codes are checked when rustdoc runs with
//! `RUSTC_BOOTSTRAP=1` (see `ci/compile-fail-codes.sh`).
//!
//! The last two items are not misuses that fail to build: what a section's token may do
//! (compiles and runs), and the self-waits the types cannot see, which panic at run time.
//!
//! The self-wait rule (`rcu_ctx::MayWaitFor`) is checked when the waiting call is compiled for
//! its types: it fails with E0080 ("evaluation panicked") in a build (`cargo build`, `cargo
//! test`, rustdoc's doctests), never in `cargo check`.

// ---------------------------------------------------------------------------------------
// Nothing waits for a grace period of a sleepable domain inside a read section of the same
// domain (of the same brand): the wait would wait for the section that waits for it.
// ---------------------------------------------------------------------------------------

/// `synchronize_srcu` with the token of a section of the same domain: the section's token
/// carries the domain's brand, and a wait for a domain of that brand does not build.
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// routes.synchronize_srcu(guard.ctx()); // error: evaluation panicked: rule: nothing waits ...
/// drop(guard);
/// ```
///
/// Twin: the same wait for a domain of another brand.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.synchronize_srcu(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct SynchronizeInsideOwnSection;

/// The same through nested sections: every section the token is inside counts, not only the
/// innermost. A section of `Sessions` nested in a section of `Routes` may not wait for
/// `Routes` (first example) nor for `Sessions` (second example).
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
/// rcu_core::section_brand!(Users);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let users: SrcuStruct<Fast, Users> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let mut outer = routes.read_lock(&mut ctx);
/// let inner = sessions.read_lock(outer.ctx_mut());
/// routes.synchronize_srcu(inner.ctx()); // error: still inside a section of `Routes`
/// drop(inner);
/// drop(outer);
/// ```
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
/// rcu_core::section_brand!(Users);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let users: SrcuStruct<Fast, Users> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let mut outer = routes.read_lock(&mut ctx);
/// let inner = sessions.read_lock(outer.ctx_mut());
/// sessions.synchronize_srcu(inner.ctx()); // error: inside a section of `Sessions`
/// drop(inner);
/// drop(outer);
/// ```
///
/// Twin: from the same nesting, a wait for a third domain.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
/// rcu_core::section_brand!(Users);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let users: SrcuStruct<Fast, Users> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let mut outer = routes.read_lock(&mut ctx);
/// let inner = sessions.read_lock(outer.ctx_mut());
/// users.synchronize_srcu(inner.ctx());
/// drop(inner);
/// drop(outer);
/// ```
pub(crate) struct SynchronizeInsideOwnSectionNested;

/// `synchronize_srcu_expedited` inside a section of the same domain: expedited or not, it
/// waits for the section.
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// routes.synchronize_srcu_expedited(guard.ctx()); // error: evaluation panicked
/// drop(guard);
/// ```
///
/// Twin: another brand's domain.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.synchronize_srcu_expedited(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct SynchronizeExpeditedInsideOwnSection;

/// `cond_synchronize_srcu` inside a section of the same domain: the cookie's grace period may
/// still be waiting for this section, and the types cannot tell, so the call is refused even
/// for a cookie that has completed (`poll_state_synchronize_srcu` is the non-blocking check).
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// let cookie = routes.start_poll_synchronize_srcu(guard.ctx());
/// routes.cond_synchronize_srcu(guard.ctx(), cookie); // error: evaluation panicked
/// drop(guard);
/// ```
///
/// Twin: another brand's domain, with that domain's cookie.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// let cookie = sessions.start_poll_synchronize_srcu(guard.ctx());
/// sessions.cond_synchronize_srcu(guard.ctx(), cookie);
/// drop(guard);
/// ```
pub(crate) struct CondSynchronizeInsideOwnSection;

/// `kvfree_srcu_mightsleep` inside a section of the same domain: without an embedded head it
/// may wait for the domain's grace period inline. (`kvfree_srcu` with an `Rcu<T>` never
/// waits, and takes the section's token.)
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// routes.kvfree_srcu_mightsleep(guard.ctx(), Box::new(7u32)); // error: evaluation panicked
/// drop(guard);
/// # sessions.srcu_barrier(&ctx);
/// ```
///
/// Twin: another brand's domain.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.kvfree_srcu_mightsleep(guard.ctx(), Box::new(7u32));
/// drop(guard);
/// # sessions.srcu_barrier(&ctx);
/// ```
pub(crate) struct MightsleepInsideOwnSection;

/// `srcu_barrier` inside a section of the same domain: the callbacks it waits for wait for a
/// grace period of the domain, which waits for the section.
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// routes.srcu_barrier(guard.ctx()); // error: evaluation panicked
/// drop(guard);
/// ```
///
/// Twin: another brand's domain (the section was entered from a `Sleepable` token, so its
/// token may reclaim).
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.srcu_barrier(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct BarrierInsideOwnSection;

/// Domains that name no brand share one ([`Unbranded`](crate::Unbranded)), so the types
/// cannot tell them apart: inside a section of one, a wait for another is refused too. The
/// rule is conservative, never lets a self-wait through; brand the domains to nest.
///
/// ```compile_fail,E0080
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct, Unbranded};
///
/// let routes: SrcuStruct<Fast, Unbranded> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Unbranded> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.synchronize_srcu(guard.ctx()); // error: maybe the same domain
/// drop(guard);
/// ```
///
/// Twin: the two domains are branded apart.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuStruct, Unbranded};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let sessions: SrcuStruct<Fast, Sessions> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = routes.read_lock(&mut ctx);
/// sessions.synchronize_srcu(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct WaitForUnbrandedInsideUnbranded;

/// A sleepable section keeps its parent's powers, no more: inside a classic read section or
/// an atomic scope, a sleepable domain's wait needs a token that may sleep (E0277, before
/// the brand is looked at).
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let spin = ctx.atomic();
/// srcu.synchronize_srcu(&spin); // error: `Atomic<'_>` may not sleep
/// drop(spin);
/// ```
///
/// Twin: a no-reclaim scope may sleep.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let spin = ctx.no_reclaim();
/// srcu.synchronize_srcu(&spin);
/// drop(spin);
/// ```
pub(crate) struct SrcuWaitWithAtomic;

// ---------------------------------------------------------------------------------------
// The parent token is unusable while a borrowed guard entered from it lives.
// ---------------------------------------------------------------------------------------

/// `synchronize_srcu` with the parent token while the section lives: the guard borrows the
/// token exclusively, so the self-wait the brand rule forbids is first a borrow error.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// srcu.synchronize_srcu(&ctx); // error: `ctx` is mutably borrowed by `guard`
/// drop(guard);
/// ```
///
/// Twin: the section ends first.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// drop(guard);
/// srcu.synchronize_srcu(&ctx);
/// ```
pub(crate) struct ParentTokenInsideSection;

/// A second section entered from the parent instead of nested through the first guard's
/// token: sections form a stack, so their brands are all seen from the innermost token.
///
/// ```compile_fail,E0499
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let outer = srcu.read_lock(&mut ctx);
/// let inner = srcu.read_lock(&mut ctx); // error: `ctx` is already mutably borrowed
/// drop(inner);
/// drop(outer);
/// ```
///
/// Twin: nested through the outer guard's token.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let mut outer = srcu.read_lock(&mut ctx);
/// let inner = srcu.read_lock(outer.ctx_mut());
/// drop(inner);
/// drop(outer);
/// ```
pub(crate) struct SecondSectionFromParent;

// ---------------------------------------------------------------------------------------
// A borrowed guard belongs to its thread; an owned guard does not.
// ---------------------------------------------------------------------------------------

/// A borrowed `SrcuGuard` is not `Send`: it holds its thread's token and ends with an owner
/// add on that thread's counters. (Spawned in a scope, so that only `Send` is at stake, not
/// `'static`.)
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `SrcuGuard` cannot be sent between threads
/// });
/// ```
///
/// Twin: an owned guard (`down_read`) may end on another thread.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// srcu.synchronize_srcu(&ctx);
/// ```
pub(crate) struct BorrowedGuardSentToThread;

/// A borrowed `SrcuGuard` is not `Sync` either: another thread could nest in it through its
/// token.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(guard.is_of(&srcu))); // error: `SrcuGuard` cannot be shared
/// });
/// drop(guard);
/// ```
///
/// Twin: an owned guard may be shared.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// std::thread::scope(|s| {
///     s.spawn(|| assert!(guard.is_of(&srcu)));
/// });
/// drop(guard);
/// ```
pub(crate) struct BorrowedGuardSharedWithThread;

// A task may resume on another thread after any `.await`. rustc reports a non-`Send` future
// as "future cannot be sent between threads safely"; the code it attaches is not stable
// across versions, so the example below is a plain `compile_fail` and its twin proves the
// reason.

/// A borrowed guard held across `.await` in a future that must be `Send`: the guard and the
/// token it borrows belong to the thread that entered the section.
///
/// ```compile_fail
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
/// fn assert_send<T: Send>(t: T) -> T {
///     t
/// }
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
/// #         std::thread::park();
/// #     }
/// # }
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let task = assert_send(async {
///     let mut ctx = Sleepable::enter();
///     let guard = srcu.read_lock(&mut ctx);
///     synchronize_rcu_async().await; // error: `guard` (and `ctx`) live across the await
///     drop(guard);
/// });
/// block_on(task);
/// ```
///
/// Twin: an owned guard (`down_read`, whose token is used only during the call) may cross
/// the `.await`.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
/// fn assert_send<T: Send>(t: T) -> T {
///     t
/// }
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     use std::task::{Context, Poll, Wake, Waker};
/// #     struct Unpark(std::thread::Thread);
/// #     impl Wake for Unpark { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
/// #     let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v }
/// #         std::thread::park();
/// #     }
/// # }
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let task = assert_send(async {
///     let guard = srcu.down_read(&Sleepable::enter());
///     synchronize_rcu_async().await;
///     drop(guard);
/// });
/// block_on(task);
/// ```
pub(crate) struct BorrowedGuardAcrossAwait;

// ---------------------------------------------------------------------------------------
// A guard's flavour and brand are its domain's.
// ---------------------------------------------------------------------------------------

/// A guard is typed by its domain's reader flavour, so sections of the two flavours never
/// mix: a `Fast` domain's guard is not a `Plain` one.
///
/// ```compile_fail,E0308
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, Plain, SrcuGuard, SrcuStruct, Unbranded};
///
/// let fast_domain: SrcuStruct<Fast> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let g: SrcuGuard<'_, Plain, Unbranded, Sleepable> = fast_domain.read_lock(&mut ctx);
/// drop(g); // error above: expected `Plain`, found `Fast`
/// ```
///
/// The same for an owned guard:
///
/// ```compile_fail,E0308
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, Plain, SrcuOwnedGuard, SrcuStruct, Unbranded};
///
/// let fast_domain: SrcuStruct<Fast> = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let g: SrcuOwnedGuard<'_, Plain, Unbranded> = fast_domain.down_read(&ctx);
/// drop(g); // error above: expected `Plain`, found `Fast`
/// ```
///
/// Twins: the domain's flavour.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, Plain, SrcuGuard, SrcuStruct, Unbranded};
///
/// let fast_domain: SrcuStruct<Fast> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let g: SrcuGuard<'_, Fast, Unbranded, Sleepable> = fast_domain.read_lock(&mut ctx);
/// drop(g);
/// ```
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, Plain, SrcuOwnedGuard, SrcuStruct, Unbranded};
///
/// let fast_domain: SrcuStruct<Fast> = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let g: SrcuOwnedGuard<'_, Fast, Unbranded> = fast_domain.down_read(&ctx);
/// drop(g);
/// ```
pub(crate) struct FlavoursDoNotMix;

/// A guard cannot be relabelled with another brand: its token's brand is the domain's, which
/// is what lets the wait rule trust it.
///
/// ```compile_fail,E0308
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuGuard, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let g: SrcuGuard<'_, Fast, Sessions, Sleepable> = routes.read_lock(&mut ctx);
/// drop(g); // error above: expected `Sessions`, found `Routes`
/// ```
///
/// Twin: the domain's brand.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, Fast, SrcuGuard, SrcuStruct};
/// rcu_core::section_brand!(Routes);
/// rcu_core::section_brand!(Sessions);
///
/// let routes: SrcuStruct<Fast, Routes> = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let g: SrcuGuard<'_, Fast, Routes, Sleepable> = routes.read_lock(&mut ctx);
/// drop(g);
/// ```
pub(crate) struct BrandsDoNotMix;

// ---------------------------------------------------------------------------------------
// A domain outlives its guards, borrowed and owned.
// ---------------------------------------------------------------------------------------

/// Dropping a domain while an owned guard of it lives: the owned guard may leave the thread
/// that made it, not the domain's lifetime.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// drop(srcu); // error: cannot move out of `srcu` because it is borrowed
/// drop(guard);
/// ```
///
/// Twin: the guard ends first.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// drop(guard);
/// drop(srcu);
/// ```
pub(crate) struct OwnedGuardOutlivesDomain;

/// Sending an owned guard to a thread that may outlive the domain: `std::thread::spawn` needs
/// `'static`, and the guard borrows the domain.
///
/// ```compile_fail,E0597
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// // error: `srcu` does not live long enough (the closure must be `'static`)
/// std::thread::spawn(move || drop(guard)).join().unwrap();
/// ```
///
/// Twin: a scoped thread, which ends before the domain.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let ctx = Sleepable::enter();
/// let guard = srcu.down_read(&ctx);
/// std::thread::scope(|s| s.spawn(move || drop(guard)).join().unwrap());
/// srcu.synchronize_srcu(&ctx);
/// ```
pub(crate) struct OwnedGuardSentBeyondDomain;

/// A borrowed guard outliving its domain's scope.
///
/// ```compile_fail,E0597
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let mut ctx = Sleepable::enter();
/// let guard;
/// {
///     let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
///     guard = srcu.read_lock(&mut ctx); // error: `srcu` does not live long enough
/// }
/// drop(guard);
/// ```
///
/// Twin: the guard ends inside the domain's scope.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let mut ctx = Sleepable::enter();
/// {
///     let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
///     let guard = srcu.read_lock(&mut ctx);
///     drop(guard);
/// }
/// ```
pub(crate) struct BorrowedGuardOutlivesDomain;

/// Dropping a domain while a borrowed guard of it lives.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// drop(srcu); // error: cannot move out of `srcu` because it is borrowed
/// drop(guard);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// drop(guard);
/// drop(srcu);
/// ```
pub(crate) struct DomainDroppedWhileBorrowedGuardLives;

// ---------------------------------------------------------------------------------------
// Inside a section, the token keeps the parent's powers: what it may do, and may not.
// ---------------------------------------------------------------------------------------

/// `call_srcu_fn` (boxes a closure) inside a section entered from an `Atomic` token: the
/// section's token may not allocate, because its parent may not.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// srcu.register_current_thread(&ctx); // an atomic context may not register
/// let mut parent = ctx.atomic();
/// let guard = srcu.read_lock(&mut parent);
/// srcu.call_srcu_fn(guard.ctx(), |_| {}); // error: may not allocate
/// drop(guard);
/// ```
///
/// Twin: the section entered from a `Sleepable` token.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// srcu.register_current_thread(&ctx); // an atomic context may not register
/// let guard = srcu.read_lock(&mut ctx);
/// srcu.call_srcu_fn(guard.ctx(), |_| {});
/// drop(guard);
/// # srcu.srcu_barrier(&ctx);
/// ```
pub(crate) struct ClosureInSectionFromAtomic;

/// What a section entered from a `Sleepable` token may do (this compiles and runs): block,
/// wait for a classic grace period, free through another domain inline, and free through its
/// own domain without waiting (`kvfree_srcu` frees as `NoReclaim` there).
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// std::thread::sleep(std::time::Duration::from_millis(1));
/// rcu_core::synchronize_rcu(guard.ctx());
/// rcu_core::Domain::global().kvfree_rcu_mightsleep(guard.ctx(), Box::new([0u8; 32]));
/// srcu.kvfree_srcu(guard.ctx(), Rcu::boxed(String::from("old route")));
/// drop(guard);
/// srcu.srcu_barrier(&ctx);
/// ```
pub(crate) struct WhatASectionMayDo;

// ---------------------------------------------------------------------------------------
// Where the types cannot see the section, the run time refuses the self-wait.
// ---------------------------------------------------------------------------------------

/// A scope opened from the section's token (`no_reclaim()`) is a plain `NoReclaim`, which
/// no longer carries the brand, so this self-wait compiles; the domain sees its own open
/// section on the thread and panics instead of waiting for ever.
///
/// ```should_panic
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let mut guard = srcu.read_lock(&mut ctx);
/// let scope = guard.ctx_mut().no_reclaim();
/// srcu.synchronize_srcu(&scope); // panics: inside one of its read sections
/// ```
///
/// The same with a second root token taken inside the section.
///
/// ```should_panic
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = srcu.read_lock(&mut ctx);
/// let second = Sleepable::enter();
/// srcu.synchronize_srcu(&second); // panics: inside one of its read sections
/// drop(guard);
/// ```
pub(crate) struct SelfWaitTheTypesCannotSee;

// Not refused, at compile time or at run time: a thread that waits for a domain's grace
// period while it holds an owned guard (`down_read`) of that domain. The types cannot see
// where an owned guard is (`SrcuStruct::down_read` says so), and the wait lasts for ever,
// with a stall report naming the thread, so it cannot be an example here.
