//! Compile-time misuse spec of rcu-core (read sections, grace periods, `RcuCell`, domains).
//!
//! One item per misuse, as in `rcu-ctx`'s spec. Its first example must fail to compile with
//! the error code given (rustdoc checks the code on nightly, or on stable with
//! `RUSTC_BOOTSTRAP=1`); its second example is the twin, identical except for the misuse, and
//! must compile and run. The twin is what proves that the first example fails for the stated
//! reason and not because of a typo, a missing import or an API that changed shape.
//!
//! The numbers refer to the misuse list of DESIGN §3. Deferred reclamation (`rcu_barrier`,
//! `call_rcu`, `RcuCell::set`, ...) has its own spec in `compile_fail_reclaim.rs`.

// ---------------------------------------------------------------------------------------
// Waiting for a grace period inside a read section (DESIGN §3, misuse 1).
// ---------------------------------------------------------------------------------------

/// `synchronize_rcu` with the root token while a read section entered from it lives: the
/// guard borrows the token exclusively, so the would-be self-deadlock is a borrow error.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// synchronize_rcu(&ctx); // error: `ctx` is mutably borrowed by `guard`
/// drop(guard);
/// ```
///
/// Twin: the read section ends first.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// drop(guard);
/// synchronize_rcu(&ctx);
/// ```
pub(crate) struct SynchronizeInsideReadSection;

/// `synchronize_rcu` with the token the read guard hands out: it is `Atomic`, which may not
/// sleep.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// synchronize_rcu(guard.ctx()); // error: `Atomic<'_>` may not sleep (not `MaySleep`)
/// drop(guard);
/// ```
///
/// Twin: the guard's token is good for calls that never block, such as `start_poll`.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// start_poll(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct SynchronizeWithReadGuardToken;

/// The same on a domain of one's own: `Domain::synchronize_rcu` inside that domain's read
/// section.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = domain.read_lock(&mut ctx);
/// domain.synchronize_rcu(&ctx); // error: `ctx` is mutably borrowed by `guard`
/// drop(guard);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = domain.read_lock(&mut ctx);
/// drop(guard);
/// domain.synchronize_rcu(&ctx);
/// ```
pub(crate) struct DomainSynchronizeInsideReadSection;

// ---------------------------------------------------------------------------------------
// May-sleep operations with an `Atomic` token (DESIGN §3, misuse 3).
// ---------------------------------------------------------------------------------------

/// `synchronize_rcu` with the token of an atomic scope (e.g. while holding a spinlock).
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.atomic();
/// synchronize_rcu(&scope); // error: `Atomic<'_>` may not sleep (not `MaySleep`)
/// drop(scope);
/// ```
///
/// Twin: a no-reclaim scope may sleep.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// synchronize_rcu(&scope);
/// drop(scope);
/// ```
pub(crate) struct SynchronizeWithAtomic;

/// `synchronize_rcu_expedited` with an `Atomic` token.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.atomic();
/// synchronize_rcu_expedited(&scope); // error: `Atomic<'_>` may not sleep (not `MaySleep`)
/// drop(scope);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// synchronize_rcu_expedited(&scope);
/// drop(scope);
/// ```
pub(crate) struct SynchronizeExpeditedWithAtomic;

/// `cond_synchronize` with an `Atomic` token: it may wait. (`poll` is the non-blocking
/// check.)
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let cookie = get_state();
/// let scope = ctx.atomic();
/// cond_synchronize(&scope, cookie); // error: `Atomic<'_>` may not sleep (not `MaySleep`)
/// drop(scope);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let cookie = get_state();
/// let scope = ctx.no_reclaim();
/// cond_synchronize(&scope, cookie);
/// drop(scope);
/// ```
pub(crate) struct CondSynchronizeWithAtomic;

/// `Domain::synchronize_rcu` and `Domain::cond_synchronize` with an `Atomic` token. (An
/// `RcuCell` writer may use `Atomic`: `replace` defers the old value instead of waiting.)
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let cookie = domain.get_state();
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.atomic();
/// domain.synchronize_rcu(&scope); // error: `Atomic<'_>` may not sleep (not `MaySleep`)
/// domain.cond_synchronize(&scope, cookie); // error: `Atomic<'_>` may not sleep
/// drop(scope);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let cookie = domain.get_state();
/// let mut ctx = Sleepable::enter();
/// let scope = ctx.no_reclaim();
/// domain.synchronize_rcu(&scope);
/// domain.cond_synchronize(&scope, cookie);
/// drop(scope);
/// ```
pub(crate) struct DomainWaitWithAtomic;

// ---------------------------------------------------------------------------------------
// The parent token is unusable while a read guard derived from it lives (misuse 5).
// ---------------------------------------------------------------------------------------

/// Opening a no-reclaim scope from the parent `Sleepable` inside a read section.
///
/// ```compile_fail,E0499
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let scope = ctx.no_reclaim(); // error: `ctx` is already mutably borrowed by `guard`
/// drop(scope);
/// drop(guard);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// drop(guard);
/// let scope = ctx.no_reclaim();
/// drop(scope);
/// ```
pub(crate) struct NoReclaimFromParentInsideReadSection;

/// Passing the parent `Sleepable` to a call that takes any token (`start_poll`) inside a
/// read section: code in the section uses the guard's `Atomic` token.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// start_poll(&ctx); // error: `ctx` is mutably borrowed by `guard`
/// drop(guard);
/// ```
///
/// Twin: the guard's token.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// start_poll(guard.ctx());
/// drop(guard);
/// ```
pub(crate) struct ParentTokenUsedInsideReadSection;

/// Entering a second read section from the parent instead of nesting it in the first.
///
/// ```compile_fail,E0499
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = read_lock(&mut ctx); // error: `ctx` is already mutably borrowed by `outer`
/// drop(inner);
/// drop(outer);
/// ```
///
/// Twin: nested through the outer guard.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = outer.nest();
/// drop(inner);
/// drop(outer);
/// ```
pub(crate) struct SecondReadSectionFromParent;

// ---------------------------------------------------------------------------------------
// A read section belongs to one thread (misuse 6).
// ---------------------------------------------------------------------------------------

/// Sending a `ReadGuard` to another thread, which would end the section there.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(7_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = *cell.load(&guard);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `ReadGuard<'_>` is not `Send`
/// });
/// assert_eq!(value, 7);
/// ```
///
/// Twin: what was read is sent; the guard stays and ends on its own thread.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(7_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = *cell.load(&guard);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(value));
/// });
/// drop(guard);
/// assert_eq!(value, 7);
/// ```
pub(crate) struct ReadGuardSentToThread;

/// Sharing a `ReadGuard` with another thread, which could load through it or nest in it
/// there.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(7_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// std::thread::scope(|s| {
///     s.spawn(|| *cell.load(&guard)); // error: `ReadGuard<'_>` is not `Sync`
/// });
/// drop(guard);
/// ```
///
/// Twin: the other thread enters its own read section.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(7_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let mut ctx = Sleepable::enter();
///         let guard = read_lock(&mut ctx);
///         *cell.load(&guard)
///     });
/// });
/// drop(guard);
/// ```
pub(crate) struct ReadGuardSharedWithThread;

// ---------------------------------------------------------------------------------------
// Nor does it live across `.await` in a `Send` future (misuse 6, async form).
//
// A task may resume on another executor thread after any `.await`. A read section is the
// state of the thread that entered it (its reader word), and a token states what that
// thread may do, so neither may ride along: the section would end on another thread (a
// corrupted word on both), and while the task is suspended (for as long as anything it
// awaits takes) the section would hold up every grace period of the domain, including the
// one it may be awaiting. So a `Send` future (what `tokio::spawn` and multi-threaded
// executors require) cannot hold a guard or a token across `.await`: end the section, or
// drop the token, in a block before the `.await`, and carry out the data (copied) instead.
//
// rustc reports this as "future cannot be sent between threads safely" without an error
// code, so these examples are plain `compile_fail`; their twins prove the reason. A future
// that is not `Send` (a current-thread executor) may hold a guard across `.await`: it then
// delays grace periods while suspended, and polling a grace-period future of the same
// domain there panics instead of never completing.
// ---------------------------------------------------------------------------------------

/// A read guard held across `.await` in a future that must be `Send`.
///
/// ```compile_fail
/// use rcu_core::prelude::*;
/// fn spawn<F: std::future::Future + Send + 'static>(f: F) -> F { f } // as tokio::spawn
///
/// let cell = std::sync::Arc::new(RcuCell::new(7_u32));
/// let _task = spawn(async move {
///     let mut ctx = Sleepable::enter();
///     let guard = read_lock(&mut ctx);
///     let value = cell.load(&guard);
///     synchronize_rcu_async().await; // error: the guard (and `ctx`) live across the await
///     assert_eq!(*value, 7);
/// });
/// ```
///
/// Twin: the section ends in a block before the `.await`; the value is copied out.
///
/// ```
/// use rcu_core::prelude::*;
/// fn spawn<F: std::future::Future + Send + 'static>(f: F) -> F { f } // as tokio::spawn
///
/// let cell = std::sync::Arc::new(RcuCell::new(7_u32));
/// let _task = spawn(async move {
///     let value = {
///         let mut ctx = Sleepable::enter();
///         let guard = read_lock(&mut ctx);
///         *cell.load(&guard)
///     };
///     synchronize_rcu_async().await;
///     assert_eq!(value, 7);
/// });
/// ```
pub(crate) struct ReadGuardAcrossAwait;

/// A token held across `.await` in a future that must be `Send` (here a `NoReclaimRoot`, as
/// the async row of the guide's decision table takes it per call).
///
/// ```compile_fail
/// use rcu_core::prelude::*;
/// fn spawn<F: std::future::Future + Send + 'static>(f: F) -> F { f } // as tokio::spawn
///
/// let _task = spawn(async {
///     let ctx = NoReclaimRoot::enter();
///     kvfree_rcu(&ctx, Rcu::boxed(1u64));
///     rcu_barrier_async().await; // error: `ctx` lives across the await
///     kvfree_rcu(&ctx, Rcu::boxed(2u64));
/// });
/// ```
///
/// Twin: a token per call, in a block that ends before each `.await`.
///
/// ```
/// use rcu_core::prelude::*;
/// fn spawn<F: std::future::Future + Send + 'static>(f: F) -> F { f } // as tokio::spawn
///
/// let _task = spawn(async {
///     {
///         let ctx = NoReclaimRoot::enter();
///         kvfree_rcu(&ctx, Rcu::boxed(1u64));
///     }
///     rcu_barrier_async().await;
///     kvfree_rcu(&NoReclaimRoot::enter(), Rcu::boxed(2u64));
/// });
/// ```
pub(crate) struct TokenAcrossAwait;

// ---------------------------------------------------------------------------------------
// Nothing loaded under a read section outlives it (misuse 7).
// ---------------------------------------------------------------------------------------

/// A reference from `RcuCell::load` used after its guard was dropped.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(String::from("v1"));
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = cell.load(&guard);
/// drop(guard); // error: cannot move out of `guard` because it is borrowed
/// assert_eq!(value, "v1");
/// ```
///
/// Twin: the reference is used while the guard lives.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(String::from("v1"));
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = cell.load(&guard);
/// assert_eq!(value, "v1");
/// drop(guard);
/// ```
pub(crate) struct LoadedReferenceUsedAfterGuardDropped;

/// A reference from `RcuCell::load` escaping the block its guard lives in.
///
/// ```compile_fail,E0597
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(String::from("v1"));
/// let mut ctx = Sleepable::enter();
/// let value: &String;
/// {
///     let guard = read_lock(&mut ctx);
///     value = cell.load(&guard); // error: `guard` does not live long enough
/// }
/// assert_eq!(value, "v1");
/// ```
///
/// Twin: an owned copy escapes instead.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(String::from("v1"));
/// let mut ctx = Sleepable::enter();
/// let value: String;
/// {
///     let guard = read_lock(&mut ctx);
///     value = cell.load(&guard).clone();
/// }
/// assert_eq!(value, "v1");
/// ```
pub(crate) struct LoadedReferenceOutlivesGuard;

/// A value loaded under a nested section used after the nested guard was dropped: the
/// outer section would keep it alive, but the reference is tied to the guard it was loaded
/// with.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(3_u64);
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = outer.nest();
/// let value = cell.load(&inner);
/// drop(inner); // error: cannot move out of `inner` because it is borrowed
/// assert_eq!(*value, 3);
/// drop(outer);
/// ```
///
/// Twin: loaded under the outer guard.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(3_u64);
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = outer.nest();
/// let value = cell.load(&outer);
/// drop(inner);
/// assert_eq!(*value, 3);
/// drop(outer);
/// ```
pub(crate) struct LoadedUnderNestedGuardOutlivesIt;

/// The outer guard dropped while a section nested in it lives.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = outer.nest();
/// drop(outer); // error: cannot move out of `outer` because it is borrowed
/// drop(inner);
/// ```
///
/// Twin: innermost first.
///
/// ```
/// use rcu_core::prelude::*;
///
/// let mut ctx = Sleepable::enter();
/// let outer = read_lock(&mut ctx);
/// let inner = outer.nest();
/// drop(inner);
/// drop(outer);
/// ```
pub(crate) struct OuterGuardDroppedBeforeNested;

// ---------------------------------------------------------------------------------------
// A domain outlives its read sections and cells' loads.
// ---------------------------------------------------------------------------------------

/// A read guard of a local domain outliving the domain's scope.
///
/// ```compile_fail,E0597
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let mut ctx = Sleepable::enter();
/// let guard;
/// {
///     let domain = Domain::new(DomainConfig::new());
///     guard = domain.read_lock(&mut ctx); // error: `domain` does not live long enough
/// }
/// drop(guard);
/// ```
///
/// Twin: the guard ends inside the domain's scope.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let mut ctx = Sleepable::enter();
/// {
///     let domain = Domain::new(DomainConfig::new());
///     let guard = domain.read_lock(&mut ctx);
///     drop(guard);
/// }
/// ```
pub(crate) struct DomainGuardOutlivesDomain;

/// Dropping a domain while one of its read guards lives.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = domain.read_lock(&mut ctx);
/// drop(domain); // error: cannot move out of `domain` because it is borrowed
/// drop(guard);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let guard = domain.read_lock(&mut ctx);
/// drop(guard);
/// drop(domain);
/// ```
pub(crate) struct DomainDroppedWhileGuardLives;

/// A reference loaded from an `RcuCell` outliving the cell.
///
/// ```compile_fail,E0505
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(5_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = cell.load(&guard);
/// drop(cell); // error: cannot move out of `cell` because it is borrowed
/// assert_eq!(*value, 5);
/// drop(guard);
/// ```
///
/// Twin:
///
/// ```
/// use rcu_core::prelude::*;
///
/// let cell = RcuCell::new(5_u32);
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// let value = cell.load(&guard);
/// assert_eq!(*value, 5);
/// drop(guard);
/// drop(cell);
/// ```
pub(crate) struct LoadedReferenceOutlivesCell;
