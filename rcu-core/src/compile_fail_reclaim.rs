//! The compile-time spec of deferred reclamation: each misuse is a `compile_fail` example
//! with a compiling twin that differs only in the misuse. Error codes are checked when
//! rustdoc runs with `RUSTC_BOOTSTRAP=1` (see `ci/compile-fail-codes.sh`).

/// `rcu_barrier` inside a read section does not compile: the guard borrows the token.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// rcu_barrier(&ctx);
/// drop(guard);
/// ```
///
/// Nor with the guard's own token: `Atomic` is not `MayReclaim`.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// rcu_barrier(guard.ctx());
/// ```
///
/// Twin: after the read section.
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// drop(guard);
/// rcu_barrier(&ctx);
/// ```
pub struct BarrierInReadSection;

/// `rcu_barrier` inside a `NoReclaim` scope does not compile: waiting for other threads to
/// free memory is reclaim.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let no_reclaim = ctx.no_reclaim();
/// rcu_barrier(&no_reclaim);
/// ```
///
/// Twin: with the `Sleepable` token, outside the scope.
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let no_reclaim = ctx.no_reclaim();
/// drop(no_reclaim);
/// rcu_barrier(&ctx);
/// ```
pub struct BarrierInNoReclaim;

/// `rcu_barrier` with a `NoReclaimRoot` (an executor thread's root) does not compile: it
/// may allocate and block, never reclaim.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let root = NoReclaimRoot::enter();
/// rcu_barrier(&root);
/// ```
///
/// Twin: frees with it compile (they never wait for reclaim); the barrier takes a
/// `Sleepable` root, once the no-reclaim root is dropped.
///
/// ```
/// use rcu_core::prelude::*;
/// let root = NoReclaimRoot::enter();
/// kvfree_rcu(&root, Rcu::boxed(1u32));
/// drop(root);
/// rcu_barrier(&Sleepable::enter());
/// ```
pub struct BarrierWithNoReclaimRoot;

/// `rcu_barrier` inside an RCU callback does not compile: callbacks get an `Atomic` token.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// fn cb(obj: Box<Rcu<u8>>, ctx: &Atomic<'_>) {
///     rcu_barrier(ctx);
///     drop(obj);
/// }
/// let ctx = Sleepable::enter();
/// call_rcu(&ctx, Rcu::boxed(0), cb);
/// ```
///
/// Twin: the callback polls instead (allowed anywhere).
///
/// ```
/// use rcu_core::prelude::*;
/// fn cb(obj: Box<Rcu<u8>>, _ctx: &Atomic<'_>) {
///     let _ = poll(get_state());
///     drop(obj);
/// }
/// let ctx = Sleepable::enter();
/// call_rcu(&ctx, Rcu::boxed(0), cb);
/// rcu_barrier(&ctx);
/// ```
pub struct BarrierInCallback;

/// `kvfree_rcu_mightsleep` with an `Atomic` token does not compile: without an embedded
/// head it may have to wait for a grace period.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// kvfree_rcu_mightsleep(&atomic, Box::new(5u32));
/// ```
///
/// Twin: the headed `kvfree_rcu`, which never waits.
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// kvfree_rcu(&atomic, Rcu::boxed(5u32));
/// ```
pub struct MightsleepWithAtomic;

/// `call_rcu_fn` (boxes a closure) with an `Atomic` token does not compile: it allocates.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// call_rcu_fn(&atomic, |_ctx| {});
/// ```
///
/// Twin: `call_rcu` with an embedded head and a function pointer.
///
/// ```
/// use rcu_core::prelude::*;
/// fn cb(obj: Box<Rcu<()>>, _ctx: &Atomic<'_>) {
///     drop(obj);
/// }
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// call_rcu(&atomic, Rcu::boxed(()), cb);
/// ```
pub struct ClosureWithAtomic;

/// `RcuCell::set` (boxes the value) with an `Atomic` token does not compile: it allocates.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(1u32);
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// cell.set(&atomic, 2);
/// ```
///
/// Twin: `replace` with a box made beforehand.
///
/// ```
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(1u32);
/// let mut ctx = Sleepable::enter();
/// let new = Rcu::boxed(2);
/// let atomic = ctx.atomic();
/// cell.replace(&atomic, new);
/// ```
pub struct CellSetWithAtomic;

/// A reclaiming call with a `NoReclaim` token does not compile: the scope exists so that
/// reclaim never recurses into reclaim.
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::Domain;
/// let mut ctx = Sleepable::enter();
/// let no_reclaim = ctx.no_reclaim();
/// Domain::global().rcu_barrier(&no_reclaim);
/// ```
///
/// Twin: `NoReclaim` may queue (and allocate for) deferred work, just not reclaim.
///
/// ```
/// use rcu_core::prelude::*;
/// let mut ctx = Sleepable::enter();
/// let no_reclaim = ctx.no_reclaim();
/// call_rcu_fn(&no_reclaim, |_ctx| {});
/// kvfree_rcu_mightsleep(&no_reclaim, Box::new(1u8));
/// ```
pub struct ReclaimWithNoReclaim;

/// An `RcuCell::update` closure runs inside a read section, so it cannot capture the token
/// it was handed and block or reclaim with it there: `update` borrows the token mutably.
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(1u32);
/// let mut ctx = Sleepable::enter();
/// cell.update(&mut ctx, |old| {
///     synchronize_rcu(&ctx); // would wait for the section it runs in
///     Rcu::boxed(old + 1)
/// });
/// ```
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(1u32);
/// let mut ctx = Sleepable::enter();
/// cell.update(&mut ctx, |old| {
///     kvfree_rcu_mightsleep(&ctx, Box::new(*old)); // may wait for a grace period
///     Rcu::boxed(old + 1)
/// });
/// ```
///
/// Twin: the closure only computes the new value; blocking calls come after.
///
/// ```
/// use rcu_core::prelude::*;
/// let cell = RcuCell::new(1u32);
/// let mut ctx = Sleepable::enter();
/// cell.update(&mut ctx, |old| Rcu::boxed(old + 1));
/// kvfree_rcu_mightsleep(&ctx, Box::new(0u32));
/// synchronize_rcu(&ctx);
/// # rcu_barrier(&ctx);
/// ```
pub struct TokenCapturedByAnUpdateClosure;
