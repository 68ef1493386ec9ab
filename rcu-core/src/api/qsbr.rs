//! Quiescent-state-based reclamation (QSBR): a domain whose threads are online or offline,
//! as types, and whose reads cost a load (issue 26; design.md §12).
//!
//! To grace periods, an online thread is a reader inside one long classic section whose
//! snapshot it refreshes at every quiescent state (`ReaderWord::refresh`), and an offline
//! thread is a reader outside any section. So the domain runs on the classic engine: grace
//! period `g` waits for the online threads that have not passed a quiescent state since `g`
//! began. Its words fence at every outermost entry and its grace periods pair with a fence
//! instead of membarrier (design.md §12). What QSBR adds is in the types: reads borrow the
//! online handle, and a quiescent state needs it mutably, so no reference loaded before one
//! survives it. Executor threads read through `QsbrDomain::read` (`api::qsbr_thread`).

use std::time::Duration;

use rcu_alloc::{AllocStats, ConfigError, FaultConfig, Policy};
use rcu_ctx::{Atomic, Context, MayAlloc, MayReclaim, MaySleep};

use crate::api::domain::{Domain, DomainConfig};
use crate::api::gp_future::{BarrierFuture, GracePeriodFuture};
use crate::api::reader::ReadGuard;
use crate::gp::stall::StallHandler;
use crate::queue::deferred::Callback;
use crate::queue::head::Rcu;
use crate::read::flavor::ReaderFlavor;
use crate::state::GpCookie;
use crate::stats::DomainStats;

/// A QSBR domain: its readers announce quiescent states instead of entering and leaving
/// sections, so a read is a plain load through the thread's [`QsbrOnline`] handle.
///
/// Writers have the classic names and the same tokens as every domain: the token still
/// decides how memory is obtained.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, QsbrDomain};
///
/// let domain = QsbrDomain::new(DomainConfig::new().name("events"));
/// let table = RcuCell::new_in(&domain, vec![1, 2, 3]);
/// let mut ctx = Sleepable::enter();
/// let mut online = domain.online(&mut ctx);
/// for _ in 0..3 {
///     let rows = table.load(&online); // a load: no store, no fence
///     assert_eq!(rows.len(), 3);
///     online.quiescent_state(); // `rows` is dead here: it borrowed `online`
/// }
/// let offline = online.offline(); // before anything that blocks
/// domain.synchronize_rcu(&ctx);
/// drop(offline);
/// domain.rcu_barrier(&ctx);
/// ```
#[derive(Debug)]
pub struct QsbrDomain {
    domain: Domain,
}

impl QsbrDomain {
    /// A new QSBR domain with its own readers, grace periods and worker thread.
    ///
    /// # Panics
    /// As [`Domain::new`]: with the [`ConfigError`]'s message if `config` fails
    /// [`DomainConfig::validate`], or if the system refuses a thread.
    #[track_caller]
    pub fn new(config: DomainConfig) -> Self {
        match Self::try_new(config) {
            Ok(domain) => domain,
            Err(err) => panic!("rcu-core: {err}"),
        }
    }

    /// As [`QsbrDomain::new`], returning a bad configuration as an error.
    pub fn try_new(config: DomainConfig) -> Result<Self, ConfigError> {
        Ok(QsbrDomain { domain: Domain::try_new_with(config, ReaderFlavor::Qsbr)? })
    }

    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        self.domain.name()
    }

    /// Brings the calling thread online: until the handle is dropped or taken
    /// [`offline`](QsbrOnline::offline), grace periods of this domain wait for the thread's
    /// next [`quiescent_state`](QsbrOnline::quiescent_state). The handle borrows `ctx`, so
    /// the thread cannot make a blocking call with it while online (a blocking call would
    /// hold up every grace period of the domain, and a wait for this domain's own grace
    /// period would wait for itself); [`QsbrOnline::ctx`] is an `Atomic` token.
    ///
    /// Going online fences once (a SeqCst fence, paired with the grace periods' own), so
    /// that grace periods need no membarrier for this thread; reads and quiescent states
    /// never fence.
    ///
    /// # Panics
    /// As [`Domain::read_lock`]: on a thread that never registered with this domain, from an
    /// atomic context (registering allocates). In every build, on a thread already online in
    /// this domain (through a token nested from the first handle's `ctx()`): the second
    /// handle's quiescent states would end the first one's period while its references live.
    #[track_caller]
    pub fn online<'c, 'd: 'c, C: Context>(&'d self, ctx: &'c mut C) -> QsbrOnline<'c, 'd> {
        self.domain.state().offline_for_executor();
        let section = self.domain.read_lock(ctx);
        if section.depth() != 1 {
            drop(section);
            panic!(
                "rcu-core: QsbrDomain::online on a thread already online in domain '{}' (a \
                 handle, a QsbrDomain::read closure, or a section inside a cell's call): the \
                 new handle's quiescent_state() would end that period while references loaded \
                 in it are alive (rule: one online handle per thread and domain). Fix: use the \
                 handle the thread has (its ctx() for calls that take a token)",
                self.name()
            );
        }
        QsbrOnline { section, domain: self }
    }

    /// Registers the calling thread with this domain now (see
    /// [`Domain::register_current_thread`]).
    pub fn register_current_thread<C: MayAlloc>(&self, ctx: &C) {
        self.domain.register_current_thread(ctx);
    }

    /// Waits until every thread online when the call began has passed a quiescent state or
    /// gone offline (see [`Domain::synchronize_rcu`]).
    #[track_caller]
    pub fn synchronize_rcu<C: MaySleep>(&self, ctx: &C) {
        self.domain.synchronize_rcu(ctx);
    }

    /// [`QsbrDomain::synchronize_rcu`], urgently (see [`Domain::synchronize_rcu_expedited`]).
    #[track_caller]
    pub fn synchronize_rcu_expedited<C: MaySleep>(&self, ctx: &C) {
        self.domain.synchronize_rcu_expedited(ctx);
    }

    /// A future that completes after a grace period (see [`Domain::synchronize_rcu_async`]):
    /// how tasks wait, since waiting never blocks the executor thread, which goes on running
    /// tasks (and passing quiescent states at their reads, or parking).
    pub fn synchronize_rcu_async(&self) -> GracePeriodFuture {
        self.domain.synchronize_rcu_async()
    }

    /// A future that completes once everything queued before the call has run (see
    /// [`Domain::rcu_barrier_async`]).
    pub fn rcu_barrier_async(&self) -> BarrierFuture {
        self.domain.rcu_barrier_async()
    }

    /// A cookie for the grace period that a removal made now must wait for.
    pub fn get_state(&self) -> GpCookie {
        self.domain.get_state()
    }

    /// As [`QsbrDomain::get_state`], and asks for that grace period to start.
    #[track_caller]
    pub fn start_poll<C: Context>(&self, ctx: &C) -> GpCookie {
        self.domain.start_poll(ctx)
    }

    /// True once the grace period `cookie` names has completed.
    pub fn poll(&self, cookie: GpCookie) -> bool {
        self.domain.poll(cookie)
    }

    /// Waits for the grace period `cookie` names, unless it has completed.
    #[track_caller]
    pub fn cond_synchronize<C: MaySleep>(&self, ctx: &C, cookie: GpCookie) {
        self.domain.cond_synchronize(ctx, cookie);
    }

    /// Frees `obj` after a grace period (see [`Domain::kvfree_rcu`]).
    #[track_caller]
    pub fn kvfree_rcu<C: Context, T: Send + 'static>(&self, ctx: &C, obj: Box<Rcu<T>>) {
        self.domain.kvfree_rcu(ctx, obj);
    }

    /// Runs `f(obj, ctx)` after a grace period, on the domain's worker (see
    /// [`Domain::call_rcu`]). Takes every token, so a callback (whose token is `Atomic`) or
    /// an online thread (`online.ctx()`) can queue one.
    #[track_caller]
    pub fn call_rcu<C: Context, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
        f: Callback<T>,
    ) {
        self.domain.call_rcu(ctx, obj, f);
    }

    /// Drops any boxed `obj` after a grace period, waiting for one inline when no block can
    /// be had (see [`Domain::kvfree_rcu_mightsleep`]); its token may sleep, so an online
    /// thread cannot call it (its token is `Atomic`).
    #[track_caller]
    pub fn kvfree_rcu_mightsleep<C: MaySleep, T: ?Sized + Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<T>,
    ) {
        self.domain.kvfree_rcu_mightsleep(ctx, obj);
    }

    /// Runs `f` after a grace period, on the domain's worker (see [`Domain::call_rcu_fn`]).
    #[track_caller]
    pub fn call_rcu_fn<C: MayAlloc, F>(&self, ctx: &C, f: F)
    where
        F: FnOnce(&Atomic<'_>) + Send + 'static,
    {
        self.domain.call_rcu_fn(ctx, f);
    }

    /// Waits until everything queued on this domain before the call has run and been freed.
    #[track_caller]
    pub fn rcu_barrier<C: MayReclaim>(&self, ctx: &C) {
        self.domain.rcu_barrier(ctx);
    }

    /// The domain's counters.
    pub fn stats(&self) -> DomainStats {
        self.domain.stats()
    }

    /// The domain's allocator statistics (see [`Domain::alloc_stats`]).
    pub fn alloc_stats(&self) -> AllocStats {
        self.domain.alloc_stats()
    }

    /// Injects allocation failures for `policy` (tests of the fallbacks; see
    /// [`Domain::inject_faults`]).
    pub fn inject_faults(&self, policy: Policy, config: FaultConfig) {
        self.domain.inject_faults(policy, config);
    }

    /// Where this domain's stall reports go (see [`Domain::set_stall_handler`]); a thread
    /// online without a quiescent state is reported with [`StallCause::QsbrOnline`].
    ///
    /// [`StallCause::QsbrOnline`]: crate::StallCause::QsbrOnline
    pub fn set_stall_handler(&self, handler: Option<StallHandler>) {
        self.domain.set_stall_handler(handler);
    }

    /// How long a grace period waits for a thread before it is reported (see
    /// [`Domain::set_stall_timeout`]).
    pub fn set_stall_timeout(&self, timeout: Duration) {
        self.domain.set_stall_timeout(timeout);
    }
}

/// The calling thread, online in a [`QsbrDomain`]: data of the domain loaded through it
/// (`RcuCell::load(&online)`) lives until the next quiescent state. Neither `Send` nor
/// `Sync`: the state belongs to the thread.
///
/// A reference kept across a quiescent state does not compile:
///
/// ```compile_fail,E0502
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, QsbrDomain};
/// let domain = QsbrDomain::new(DomainConfig::new());
/// let cell = RcuCell::new_in(&domain, 1u32);
/// let mut ctx = Sleepable::enter();
/// let mut online = domain.online(&mut ctx);
/// let value = cell.load(&online);
/// online.quiescent_state(); // error: `online` is borrowed by `value`
/// assert_eq!(*value, 1);
/// ```
///
/// Nor does a blocking call while online:
///
/// ```compile_fail,E0277
/// use rcu_core::prelude::*;
/// use rcu_core::{DomainConfig, QsbrDomain};
/// let domain = QsbrDomain::new(DomainConfig::new());
/// let mut ctx = Sleepable::enter();
/// let online = domain.online(&mut ctx);
/// domain.synchronize_rcu(online.ctx()); // error: `Atomic` is not `MaySleep`
/// ```
#[must_use = "the thread is offline again when the handle is dropped"]
#[derive(Debug)]
pub struct QsbrOnline<'c, 'd> {
    /// The classic section that stands for the online period; it borrows the token for `'c`.
    section: ReadGuard<'c>,
    domain: &'d QsbrDomain,
}

impl<'c, 'd> QsbrOnline<'c, 'd> {
    /// A quiescent state: the thread holds no reference to the domain's data, which the
    /// `&mut self` proves (every reference loaded through the handle borrows it). Grace
    /// periods that began before it stop waiting for this thread. One store, never a fence
    /// (`ReaderWord::refresh` argues why none is needed).
    ///
    /// # Panics
    /// In every build, inside a section nested in the online period (an `RcuCell::update`
    /// closure or a [`QsbrDomain::read`] closure that captured the handle): the quiescent
    /// state would end that section while the value it protects is in use.
    #[inline]
    #[track_caller]
    pub fn quiescent_state(&mut self) {
        self.section.refresh();
    }

    /// The `Atomic` token for code that runs while online: it may queue frees and poll, not
    /// block.
    #[inline]
    pub fn ctx(&self) -> &Atomic<'c> {
        self.section.ctx()
    }

    /// Takes the thread offline (a quiescent state that lasts): grace periods no longer wait
    /// for it, and the token the handle borrowed is free again for blocking calls.
    pub fn offline(self) -> QsbrOffline<'d> {
        QsbrOffline { domain: self.domain }
    }

    pub(crate) fn domain_state(&self) -> &crate::state::DomainState {
        self.section.domain_state()
    }
}

/// The calling thread, offline in a [`QsbrDomain`] (see [`QsbrOnline::offline`]): grace
/// periods do not wait for it.
#[derive(Debug)]
pub struct QsbrOffline<'d> {
    domain: &'d QsbrDomain,
}

impl<'d> QsbrOffline<'d> {
    /// Brings the thread online again, as [`QsbrDomain::online`].
    #[track_caller]
    pub fn online<'c, C: Context>(self, ctx: &'c mut C) -> QsbrOnline<'c, 'd>
    where
        'd: 'c,
    {
        self.domain.online(ctx)
    }
}
