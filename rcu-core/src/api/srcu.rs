//! Sleepable read sections (SRCU): a domain whose readers may block, sleep and move between
//! threads, each domain's sleepers delaying only its own grace periods.
//!
//! `SrcuStruct<F, B>` (the kernel's `srcu_struct`) is a domain of its own (readers, grace
//! periods, worker, queues, budget) whose readers follow `raw::srcu`. Its reader flavour `F`
//! and its brand `B` are type parameters: guards are typed by `F`, so the flavours cannot mix
//! on one domain, and the brand lets the section's token refuse, at compile time, a wait for
//! the section's own grace periods (`rcu_ctx::MayWaitFor`). Writers go through the inner
//! `Domain`, whose engine runs this flavour's grace periods (`gp::srcu`).

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use std::time::Duration;

use rcu_alloc::{AllocStats, ConfigError, FaultConfig, Policy};
use rcu_ctx::{
    check_may_wait_for, Atomic, Context, ContextKind, MayAlloc, MayReclaim, MayWaitFor,
    SectionBrand, SectionState, SleepableSection, Unbranded,
};

use crate::api::domain::{Domain, DomainConfig};
use crate::api::gp_future::{BarrierFuture, GracePeriodFuture};
use crate::api::srcu_flavor::{Fast, SrcuFlavor};
use crate::api::srcu_guard::{SrcuGuard, SrcuOwnedGuard};
use crate::gp::stall::StallHandler;
use crate::queue::deferred::{self, Callback};
use crate::queue::head::Rcu;
use crate::read::registry::Slot;
use crate::state::GpCookie;
use crate::stats::DomainStats;

/// A sleepable RCU domain (the kernel's `srcu_struct`): its read sections may block, sleep,
/// allocate and reclaim, and move between threads; its grace periods wait for its own
/// readers only, so a sleeping reader delays no other domain.
///
/// - `F`, the reader flavour: [`Fast`] (the default) or [`Plain`](crate::Plain). Fixed by
///   the type, so the flavours never mix on one domain.
/// - `B`, the brand ([`rcu_ctx::section_brand!`]): a wait for a grace period of a domain of
///   brand `B` does not compile with the token of a section of brand `B`. Domains of one
///   brand count as one, so two [`Unbranded`] domains refuse each other's waits too; brand
///   them to nest one's section in a wait for the other.
///
/// In a child after `fork()`, an owned guard held in the parent by a thread or task the child
/// does not have never ends, and this domain's grace periods wait for it for ever there.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, SrcuStruct};
///
/// let routes: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("routes"));
/// let mut ctx = Sleepable::enter();
/// {
///     let guard = routes.read_lock(&mut ctx);
///     std::thread::sleep(std::time::Duration::from_millis(1)); // may block
///     drop(guard);
/// }
/// routes.kvfree_srcu(&ctx, Rcu::boxed(String::from("an unpublished route")));
/// routes.synchronize_srcu(&ctx);
/// routes.srcu_barrier(&ctx);
/// ```
pub struct SrcuStruct<F: SrcuFlavor = Fast, B: SectionBrand = Unbranded> {
    domain: Domain,
    _marker: PhantomData<fn() -> (F, B)>,
}

impl<F: SrcuFlavor, B: SectionBrand> SrcuStruct<F, B> {
    /// A new sleepable domain with its own readers, grace periods and worker thread.
    ///
    /// # Panics
    /// As [`Domain::new`]: with the [`ConfigError`]'s message if `config` fails
    /// [`DomainConfig::validate`], or if the system refuses a thread.
    ///
    /// ```
    /// use rcu_core::{DomainConfig, Plain, SrcuStruct};
    /// let srcu: SrcuStruct<Plain> = SrcuStruct::new(DomainConfig::new().name("plain"));
    /// assert_eq!(srcu.name(), "plain");
    /// ```
    #[track_caller]
    pub fn new(config: DomainConfig) -> Self {
        match Self::try_new(config) {
            Ok(srcu) => srcu,
            Err(err) => panic!("rcu-core: {err}"),
        }
    }

    /// As [`SrcuStruct::new`], returning a bad configuration as an error.
    ///
    /// ```
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let err = SrcuStruct::<rcu_core::Fast>::try_new(DomainConfig::new().name("a\0b"));
    /// assert_eq!(err.unwrap_err().field(), "DomainConfig.name");
    /// ```
    pub fn try_new(config: DomainConfig) -> Result<Self, ConfigError> {
        let domain = Domain::try_new_with(config, F::FLAVOR.0)?;
        Ok(SrcuStruct { domain, _marker: PhantomData })
    }

    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        self.domain.name()
    }

    pub(crate) fn state(&self) -> &crate::state::DomainState {
        self.domain.state()
    }

    /// The calling thread's slot, registering it the first time (which allocates: refused
    /// from an `Atomic` token, as for classic sections).
    #[track_caller]
    fn reader_slot<C: Context>(&self, call: &'static str) -> &Slot {
        if let Some(slot) = crate::api::reader::current_slot(self.state()) {
            return slot;
        }
        let state = rcu_ctx::thread_state::snapshot();
        if matches!(C::KIND, ContextKind::Atomic) || state.atomic_depth != 0 {
            panic!(
                "rcu-core: {call} on sleepable domain '{}' from an atomic context, on a thread \
                 that never registered with it: registering allocates, which an Atomic \
                 context may not (rule: Atomic never allocates). Fix: register the thread \
                 beforehand, where it may allocate: srcu.register_current_thread(&ctx), or \
                 one read_lock or down_read from a Sleepable or NoReclaim token",
                self.name()
            );
        }
        let slot: *const Slot = crate::api::reader::register(&self.domain.state_ref());
        // SAFETY: a registered slot lives as long as the domain's state, which `self` keeps.
        unsafe { &*slot }
    }

    /// Enters a sleepable read section (the kernel's `srcu_read_lock`), borrowing `ctx` for
    /// as long as the guard lives. The guard's token ([`SrcuGuard::ctx`]) keeps `ctx`'s kind
    /// and powers: code inside may block, sleep and, with a `Sleepable` parent, reclaim;
    /// only a wait for this domain's grace periods does not compile.
    ///
    /// # Panics
    /// The first time a thread reads in this domain from an `Atomic` token or scope
    /// (registering allocates).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let mut outer = srcu.read_lock(&mut ctx);
    /// let inner = srcu.read_lock(outer.ctx_mut()); // nested: counts again
    /// drop(inner);
    /// drop(outer);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read_lock<'a, C: Context>(&'a self, ctx: &'a mut C) -> SrcuGuard<'a, F, B, C> {
        let section = SleepableSection::enter(ctx);
        let slot = self.reader_slot::<C>("read_lock");
        let index = slot.srcu.lock(&self.state().gp.srcu.index);
        SrcuGuard::new(&slot.srcu, index, self.state(), section)
    }

    /// Enters a sleepable read section that may end on any thread (the kernel's
    /// `srcu_down_read`): the guard is `Send` and `Sync`, may cross `.await` in a `Send`
    /// future, and ends when dropped (or [`SrcuOwnedGuard::up_read`]). `ctx` is used only
    /// during the call.
    ///
    /// A thread must not wait for this domain's grace periods while a guard it holds is
    /// open: it would wait for itself. The types cannot see where an owned guard is, so
    /// this is not refused; the stall reports name the thread that made the guard.
    ///
    /// # Panics
    /// As [`SrcuStruct::read_lock`], from an `Atomic` context on an unregistered thread.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// let guards: Vec<_> = (0..3).map(|_| srcu.down_read(&ctx)).collect();
    /// std::thread::scope(|s| {
    ///     for guard in guards {
    ///         s.spawn(move || drop(guard));
    ///     }
    /// });
    /// srcu.synchronize_srcu(&ctx);
    /// ```
    #[inline]
    #[track_caller]
    pub fn down_read<C: Context>(&self, ctx: &C) -> SrcuOwnedGuard<'_, F, B> {
        ctx.validate();
        let slot = self.reader_slot::<C>("down_read");
        let index = slot.srcu.lock_owned(&self.state().gp.srcu.index);
        SrcuOwnedGuard::new(&slot.srcu, index, self.state())
    }

    /// Panics if the calling thread is inside a borrowed read section of this domain: the
    /// run-time half of `MayWaitFor`, for tokens whose type does not show the section (a
    /// second root taken inside it).
    #[track_caller]
    fn assert_outside_own_sections(&self, call: &str) {
        let inside = crate::api::reader::current_slot(self.state())
            .is_some_and(|slot| slot.srcu.open_borrowed() != 0);
        if inside {
            panic!(
                "rcu-core: {call} on sleepable domain '{}' inside one of its read sections would \
                 wait for itself for ever (rule: nothing waits for a grace period of an SRCU \
                 domain inside a read section of the same domain). The section's own token \
                 refuses this at compile time; this call came with a token that does not show \
                 the section: a second root taken inside it, a scope opened from the section's \
                 token with no_reclaim() (which drops the brand), or a guard forgotten \
                 (mem::forget) on this thread. Fix: end the \
                 section first, or free with the section's token (guard.ctx()), which never \
                 waits",
                self.name()
            );
        }
    }

    /// Waits until every read section of this domain that began before the call has ended
    /// (the kernel's `synchronize_srcu`). Sections of other domains, classic or sleepable,
    /// are not waited for.
    ///
    /// # Panics
    /// Inside a borrowed read section of this domain entered from another token (a second
    /// root): the guard's own token does not compile here.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// let cookie = srcu.get_state_synchronize_srcu();
    /// srcu.synchronize_srcu(&ctx);
    /// assert!(srcu.poll_state_synchronize_srcu(cookie));
    /// ```
    #[track_caller]
    pub fn synchronize_srcu<C: MayWaitFor<B>>(&self, ctx: &C) {
        check_may_wait_for::<B, C>(ctx);
        self.assert_outside_own_sections("synchronize_srcu");
        self.domain.synchronize_rcu(ctx);
    }

    /// As [`SrcuStruct::synchronize_srcu`], waiting for readers with short naps: lower
    /// latency, more CPU.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// srcu.synchronize_srcu_expedited(&Sleepable::enter());
    /// assert_eq!(srcu.stats().gps_expedited, 1);
    /// ```
    #[track_caller]
    pub fn synchronize_srcu_expedited<C: MayWaitFor<B>>(&self, ctx: &C) {
        check_may_wait_for::<B, C>(ctx);
        self.assert_outside_own_sections("synchronize_srcu_expedited");
        self.domain.synchronize_rcu_expedited(ctx);
    }

    /// A cookie for the polled API (the kernel's `get_state_synchronize_srcu`): once a full
    /// grace period has passed after this call, [`SrcuStruct::poll_state_synchronize_srcu`]
    /// is true. Starts no grace period; any context.
    pub fn get_state_synchronize_srcu(&self) -> GpCookie {
        self.domain.get_state()
    }

    /// As [`SrcuStruct::get_state_synchronize_srcu`], and asks the domain's worker to run
    /// that grace period (the kernel's `start_poll_synchronize_srcu`). Never blocks.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = srcu.read_lock(&mut ctx);
    /// let cookie = srcu.start_poll_synchronize_srcu(guard.ctx()); // fine inside
    /// assert!(!srcu.poll_state_synchronize_srcu(cookie)); // this section holds it
    /// drop(guard);
    /// srcu.cond_synchronize_srcu(&ctx, cookie);
    /// ```
    #[track_caller]
    pub fn start_poll_synchronize_srcu<C: Context>(&self, ctx: &C) -> GpCookie {
        self.domain.start_poll(ctx)
    }

    /// True once grace period `cookie` has completed (the kernel's
    /// `poll_state_synchronize_srcu`); moves it forward without waiting if it was asked for.
    /// Never blocks, any context.
    ///
    /// # Panics
    /// If `cookie` was issued by another domain.
    #[track_caller]
    pub fn poll_state_synchronize_srcu(&self, cookie: GpCookie) -> bool {
        self.domain.poll(cookie)
    }

    /// Waits for grace period `cookie` unless it has completed.
    ///
    /// # Panics
    /// As [`SrcuStruct::synchronize_srcu`]; and if `cookie` was issued by another domain.
    #[track_caller]
    pub fn cond_synchronize_srcu<C: MayWaitFor<B>>(&self, ctx: &C, cookie: GpCookie) {
        check_may_wait_for::<B, C>(ctx);
        if !self.domain.poll(cookie) {
            self.assert_outside_own_sections("cond_synchronize_srcu");
        }
        self.domain.cond_synchronize(ctx, cookie);
    }

    /// The policy for a call with `C`, and the calling thread's slot: the entry of the
    /// deferred-reclamation calls. A token inside this domain's section frees as
    /// `NoReclaim` (`Policy::of_within`); a token that may reclaim here but was taken inside
    /// such a section (a second root) is refused, since reclaiming may wait for this
    /// domain's grace periods.
    #[track_caller]
    fn prepare<C: SectionState<B>>(&self, ctx: &C, call: &'static str) -> (Policy, Option<&Slot>) {
        let policy = Policy::of_within::<C, B>();
        let slot = self.domain.prepare(ctx, call);
        if policy == Policy::Reclaim {
            self.assert_outside_own_sections(call);
        }
        (policy, slot)
    }

    /// Queues `f(obj, ctx)` to run after a grace period of this domain (the kernel's
    /// `call_srcu`), on the domain's worker with an `Atomic` token. Any token; how memory
    /// is obtained follows the token's policy, except that a token inside this domain's
    /// section never reclaims (it would wait for itself). Never fails.
    ///
    /// # Panics
    /// As [`Domain::call_rcu`]; and with a `Sleepable` token taken inside a read section of
    /// this domain (use the section's token). `obj` is then leaked, never dropped.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, Rcu, SrcuStruct};
    /// fn done(obj: Box<Rcu<u32>>, _ctx: &Atomic<'_>) {
    ///     assert_eq!(**obj, 5);
    /// }
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// srcu.call_srcu(&ctx, Rcu::boxed(5), done);
    /// srcu.srcu_barrier(&ctx);
    /// ```
    #[track_caller]
    pub fn call_srcu<C: SectionState<B>, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
        f: Callback<T>,
    ) {
        let obj = ManuallyDrop::new(obj);
        let (policy, slot) = self.prepare(ctx, "call_srcu");
        let obj = ManuallyDrop::into_inner(obj);
        self.state().defer_headed_as(policy, slot, deferred::callback_entry(obj, f));
    }

    /// Queues the closure `f` to run after a grace period of this domain. Boxing it
    /// allocates, so this needs a token that may allocate.
    ///
    /// # Panics
    /// As [`SrcuStruct::call_srcu`]; `f` is then leaked.
    #[track_caller]
    pub fn call_srcu_fn<C: MayAlloc + SectionState<B>, G>(&self, ctx: &C, f: G)
    where
        G: FnOnce(&Atomic<'_>) + Send + 'static,
    {
        let f = ManuallyDrop::new(f);
        let (policy, slot) = self.prepare(ctx, "call_srcu_fn");
        let f = ManuallyDrop::into_inner(f);
        self.state().defer_headed_as(policy, slot, deferred::closure_entry(f));
    }

    /// Drops `obj` after a grace period of this domain (the kernel's `kvfree_srcu`). Any
    /// token, never fails; the policy is as for [`SrcuStruct::call_srcu`].
    ///
    /// # Panics
    /// As [`SrcuStruct::call_srcu`]; `obj` is then leaked.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, Rcu, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// {
    ///     let spin = ctx.atomic(); // never allocates, blocks or locks
    ///     srcu.kvfree_srcu(&spin, Rcu::boxed([0u8; 64]));
    /// }
    /// srcu.srcu_barrier(&ctx);
    /// ```
    #[track_caller]
    pub fn kvfree_srcu<C: SectionState<B>, T: Send + 'static>(&self, ctx: &C, obj: Box<Rcu<T>>) {
        let obj = ManuallyDrop::new(obj);
        let (policy, slot) = self.prepare(ctx, "kvfree_srcu");
        let obj = ManuallyDrop::into_inner(obj);
        self.state().defer_headed_as(policy, slot, deferred::free_entry(obj));
    }

    /// Drops any boxed `obj` after a grace period of this domain; without an embedded head
    /// it may have to wait for the grace period inline, so it needs a token that may wait
    /// for this domain.
    ///
    /// # Panics
    /// As [`SrcuStruct::synchronize_srcu`]; `obj` is then leaked.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// let srcu: SrcuStruct = SrcuStruct::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// srcu.kvfree_srcu_mightsleep(&ctx, Box::new(String::from("old")));
    /// srcu.srcu_barrier(&ctx);
    /// ```
    #[track_caller]
    pub fn kvfree_srcu_mightsleep<C: MayWaitFor<B>, T: ?Sized + Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<T>,
    ) {
        check_may_wait_for::<B, C>(ctx);
        let obj = ManuallyDrop::new(obj);
        self.assert_outside_own_sections("kvfree_srcu_mightsleep");
        self.domain.kvfree_rcu_mightsleep(ctx, ManuallyDrop::into_inner(obj));
    }

    /// Waits until every callback and deferred free queued on this domain before the call
    /// has run (the kernel's `srcu_barrier`).
    ///
    /// # Panics
    /// As [`SrcuStruct::synchronize_srcu`].
    #[track_caller]
    pub fn srcu_barrier<C: MayReclaim + MayWaitFor<B>>(&self, ctx: &C) {
        check_may_wait_for::<B, C>(ctx);
        self.assert_outside_own_sections("srcu_barrier");
        self.domain.rcu_barrier(ctx);
    }

    /// A future that completes once every read section of this domain that began before
    /// this call has ended: the async [`SrcuStruct::synchronize_srcu`]. A task that holds an
    /// owned guard of this domain must not await it (it would wait for itself).
    ///
    /// # Panics
    /// When polled, not ready, inside a borrowed read section of this domain.
    pub fn synchronize_srcu_async(&self) -> GracePeriodFuture {
        self.domain.synchronize_rcu_async()
    }

    /// A future that completes once grace period `cookie` has completed.
    ///
    /// # Panics
    /// If `cookie` was issued by another domain; as [`SrcuStruct::synchronize_srcu_async`].
    #[track_caller]
    pub fn cond_synchronize_srcu_async(&self, cookie: GpCookie) -> GracePeriodFuture {
        self.domain.cond_synchronize_async(cookie)
    }

    /// A future that completes once every callback and deferred free queued on this domain
    /// before this call has run: the async [`SrcuStruct::srcu_barrier`].
    pub fn srcu_barrier_async(&self) -> BarrierFuture {
        self.domain.rcu_barrier_async()
    }

    /// Registers the calling thread with this domain now rather than at its first section
    /// (which allocates): before its signal handlers or atomic scopes use the domain.
    pub fn register_current_thread<C: MayAlloc>(&self, ctx: &C) {
        self.domain.register_current_thread(ctx);
    }

    /// A snapshot of the domain's statistics.
    pub fn stats(&self) -> DomainStats {
        self.domain.stats()
    }

    /// The domain's allocator statistics.
    pub fn alloc_stats(&self) -> AllocStats {
        self.domain.alloc_stats()
    }

    /// Installs (or removes) the handler that receives this domain's stall reports.
    pub fn set_stall_handler(&self, handler: Option<StallHandler>) {
        self.domain.set_stall_handler(handler);
    }

    /// Changes how long one reader may hold a grace period before a stall is reported.
    pub fn set_stall_timeout(&self, timeout: Duration) {
        self.domain.set_stall_timeout(timeout);
    }

    /// Changes how long queued items wait to be collected into a batch.
    pub fn set_batch_delay(&self, delay: Duration) {
        self.domain.set_batch_delay(delay);
    }

    /// Changes the budget for pending reclamation, in bytes.
    pub fn set_budget(&self, bytes: usize) {
        self.domain.set_budget(bytes);
    }

    /// Injects allocation failures for `policy` (tests of the fallbacks).
    pub fn inject_faults(&self, policy: Policy, config: FaultConfig) {
        self.domain.inject_faults(policy, config);
    }
}

impl<F: SrcuFlavor, B: SectionBrand> fmt::Debug for SrcuStruct<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrcuStruct")
            .field("name", &self.name())
            .field("flavor", &F::NAME)
            .field("brand", &core::any::type_name::<B>())
            .finish()
    }
}
