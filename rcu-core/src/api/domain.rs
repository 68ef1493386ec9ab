//! Domains: independent sets of readers and grace periods. `Domain::global()` is the one most
//! code uses (it has the fastest read path); `Domain::new` makes an isolated one.

use core::mem::ManuallyDrop;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcu_ctx::{Atomic, Context, ContextKind, MayAlloc, MayReclaim, MaySleep, ReadSection};

use crate::api::reader::{self, ReadGuard};
use crate::gp::grace_period::Urgency;
use crate::gp::stall::StallHandler;
use crate::queue::deferred::{self, Callback};
use crate::queue::head::Rcu;
use crate::queue::queues::Queues;
use crate::read::flavor::ReaderFlavor;
use crate::read::registry::Slot;
use crate::setting::saturating_nanos;
use crate::state::{
    DomainRef, DomainState, GpCookie, PoolShrinker, DEFAULT_BATCH_DELAY, DEFAULT_STALL_TIMEOUT,
    GLOBAL_STATE,
};
use crate::stats::{Counters, DomainStats};
use rcu_alloc::{
    register_shrinker, AllocConfig, AllocStats, ConfigError, FaultConfig, Policy, ShrinkerHandle,
};

/// How a domain behaves. Build with [`DomainConfig::new`] and the setters; the setters
/// accept any value, and [`Domain::try_new`] (through [`DomainConfig::validate`]) rejects
/// those the runtime cannot work with before anything is started.
///
/// ```
/// use std::time::Duration;
/// use rcu_core::{Domain, DomainConfig};
///
/// let domain = Domain::new(
///     DomainConfig::new().name("config-store").stall_timeout(Duration::from_secs(5)),
/// );
/// assert_eq!(domain.name(), "config-store");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    name: Cow<'static, str>,
    stall_timeout: Duration,
    expedited: bool,
    alloc: AllocConfig,
    batch_delay: Duration,
}

impl DomainConfig {
    /// The defaults: stall timeout 21 s (as the kernel's), normal (not expedited) grace
    /// periods, name "domain", the allocator defaults of [`AllocConfig::new`] and a 5 ms
    /// batching delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::DomainConfig;
    /// let config = DomainConfig::new();
    /// assert_eq!(config, DomainConfig::default());
    /// let custom = config.stall_timeout(Duration::from_secs(5)).batch_delay(Duration::from_millis(1));
    /// assert_ne!(custom, DomainConfig::new());
    /// ```
    pub const fn new() -> Self {
        DomainConfig {
            name: Cow::Borrowed("domain"),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            expedited: false,
            alloc: AllocConfig::new(),
            batch_delay: DEFAULT_BATCH_DELAY,
        }
    }

    /// Name used in stall reports and statistics, and in the domain's thread names
    /// (`rcu-gp-NAME`, `rcu-refill-NAME`, truncated by the system to 15 bytes), so it may not
    /// contain a NUL byte.
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig};
    /// let domain = Domain::new(DomainConfig::new().name(format!("shard-{}", 3)));
    /// assert_eq!(domain.name(), "shard-3");
    /// ```
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// How long a grace period may wait for one reader before a stall is reported. Must not
    /// be zero; durations beyond `u64::MAX` nanoseconds (584 years) count as 584 years, that
    /// is never.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::{Domain, DomainConfig};
    /// // Readers of this domain are expected to be quick: complain after 100 ms.
    /// let domain = Domain::new(DomainConfig::new().stall_timeout(Duration::from_millis(100)));
    /// drop(domain);
    /// ```
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Block sizes, caches and the memory budget for deferred reclamation.
    ///
    /// ```
    /// use rcu_core::{AllocConfig, Domain, DomainConfig};
    /// let domain = Domain::new(DomainConfig::new().alloc(AllocConfig::new().budget_bytes(4 << 20)));
    /// assert_eq!(domain.stats().budget_bytes, 4 << 20);
    /// ```
    pub fn alloc(mut self, alloc: AllocConfig) -> Self {
        self.alloc = alloc;
        self
    }

    /// How long queued items may wait to be collected into a batch: longer batches more
    /// items per grace period, shorter frees memory sooner. Any value is valid: zero collects
    /// whatever is queued at once, and a duration of 584 years or more (`u64::MAX`
    /// nanoseconds; `Duration::MAX` too) means only when hurried: by `rcu_barrier`, an
    /// over-budget domain, or the domain's drop.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::{Domain, DomainConfig};
    /// // Free memory promptly rather than batching many frees per grace period.
    /// let domain = Domain::new(DomainConfig::new().batch_delay(Duration::from_millis(1)));
    /// drop(domain);
    /// ```
    pub fn batch_delay(mut self, delay: Duration) -> Self {
        self.batch_delay = delay;
        self
    }

    /// Makes `synchronize_rcu` behave as `synchronize_rcu_expedited` (lower latency, more
    /// CPU while waiting).
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig, Sleepable};
    /// let domain = Domain::new(DomainConfig::new().expedited(true));
    /// let ctx = Sleepable::enter();
    /// domain.synchronize_rcu(&ctx); // runs an expedited grace period
    /// assert!(domain.stats().gps_expedited >= 1);
    /// ```
    pub fn expedited(mut self, expedited: bool) -> Self {
        self.expedited = expedited;
        self
    }

    /// Checks every field, so that a value the runtime cannot work with is reported by name
    /// before anything is registered or started ([`Domain::try_new`] calls this):
    ///
    /// | field | valid | why |
    /// |---|---|---|
    /// | `name` | no NUL byte | it becomes part of the domain's thread names, which are C strings |
    /// | `stall_timeout` | not zero | zero would report a stall for every reader a grace period waits for |
    /// | `batch_delay`, `expedited` | any | see [`DomainConfig::batch_delay`] |
    /// | `alloc` | [`AllocConfig::validate`] | block size, cache and pool bounds |
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::DomainConfig;
    /// assert!(DomainConfig::new().validate().is_ok());
    /// let err = DomainConfig::new().stall_timeout(Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(err.field(), "DomainConfig.stall_timeout");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(index) = self.name.bytes().position(|b| b == 0) {
            return Err(ConfigError::new(
                "DomainConfig.name",
                format!("contains a NUL byte at index {index}"),
                "names become thread names (rcu-gp-NAME, rcu-refill-NAME), which are C strings \
                 and cannot contain NUL. Fix: remove the NUL byte",
            ));
        }
        if self.stall_timeout.is_zero() {
            return Err(ConfigError::new(
                "DomainConfig.stall_timeout",
                "is zero",
                "a grace period would report a stall for every reader it waits for (rule: the \
                 stall timeout is positive). Fix: pass a positive duration (the default is \
                 21 s); to never report stalls, pass a very long one such as Duration::MAX",
            ));
        }
        self.alloc.validate()
    }
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Domain ids: a cookie carries its domain's id, so ids are never reused. At one creation per
/// nanosecond, 2^64 ids last 584 years.
static NEXT_DOMAIN_ID: AtomicU64 = AtomicU64::new(1);

static GLOBAL: Domain = Domain { state: DomainRef::Global(&GLOBAL_STATE), _pool_shrinker: None };

impl DomainRef {
    /// Starts the worker if this token may allocate and the worker is not running yet.
    pub(crate) fn ensure_worker<C: Context>(&self) {
        if !matches!(C::KIND, ContextKind::Atomic) && !self.worker.is_started() {
            crate::runtime::worker_thread::start(self.clone());
        }
    }

    /// Entry checks of the deferred-reclamation calls: validation, and, for tokens that may
    /// allocate, the worker and this thread's registration (both allocate the first time).
    /// Returns the calling thread's slot: `None` only for an `Atomic` caller on a thread
    /// that never registered.
    ///
    /// # Panics
    /// When the thread's real state forbids what the token claims (`rcu_ctx::enforce`):
    /// checked in every build, so a second root cannot carry `call` past a scope. Callers
    /// that were handed a value to retire hold it in a `ManuallyDrop` across this call: a
    /// refusal leaks it, since the caller may have unpublished it and dropping it while
    /// unwinding would free what a reader still holds (a use-after-free).
    #[track_caller]
    #[inline]
    pub(crate) fn prepare<C: Context>(&self, ctx: &C, call: &'static str) -> Option<&Slot> {
        ctx.validate();
        rcu_ctx::enforce::token_fits::<C>(call);
        if matches!(C::KIND, ContextKind::Atomic) {
            return crate::api::reader::current_slot(self);
        }
        self.ensure_worker::<C>();
        Some(
            crate::api::reader::current_slot(self)
                .unwrap_or_else(|| crate::api::reader::register(self)),
        )
    }
}

/// A set of readers and the grace periods that wait for them.
///
/// Readers of one domain never hold up another domain's grace periods. Most programs use
/// [`Domain::global`] (or the free functions of this crate, which use it); a library that
/// wants its slow readers or many grace periods kept apart makes its own with
/// [`Domain::new`]. Dropping a domain never waits: its worker runs what is queued, serves
/// the domain's cells for as long as they live, then exits and frees the domain's state.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::DomainConfig;
///
/// let domain = Domain::new(DomainConfig::new().name("sessions"));
/// let sessions = RcuCell::new_in(&domain, vec!["alice"]);
/// let mut ctx = Sleepable::enter();
/// {
///     let guard = domain.read_lock(&mut ctx);
///     assert_eq!(sessions.load(&guard)[0], "alice");
/// }
/// sessions.set(&ctx, vec!["alice", "bob"]);
/// domain.synchronize_rcu(&ctx); // waits for this domain's readers only
/// domain.rcu_barrier(&ctx);
/// ```
#[derive(Debug)]
pub struct Domain {
    state: DomainRef,
    /// Keeps the domain's block pool registered as a shrinker while the domain lives.
    _pool_shrinker: Option<ShrinkerHandle>,
}

impl Domain {
    /// The process-wide domain, started on first use.
    ///
    /// ```
    /// use rcu_core::Domain;
    /// let global = Domain::global();
    /// assert!(global.is_global());
    /// assert_eq!(global.name(), "global");
    /// ```
    pub fn global() -> &'static Domain {
        &GLOBAL
    }

    /// A new, isolated domain with its own readers, grace periods and worker thread.
    ///
    /// # Panics
    /// At the caller, with the [`ConfigError`]'s message (`rcu-core: DomainConfig.name
    /// contains a NUL byte ...`), if `config` fails [`DomainConfig::validate`]; use
    /// [`Domain::try_new`] to handle that instead. Also if the system refuses a thread.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new().name("private"));
    /// let ctx = Sleepable::enter();
    /// domain.kvfree_rcu(&ctx, Rcu::boxed(1u8));
    /// drop(domain); // never waits: the worker runs what is queued, then exits
    /// ```
    #[track_caller]
    pub fn new(config: DomainConfig) -> Domain {
        match Domain::try_new(config) {
            Ok(domain) => domain,
            Err(err) => panic!("rcu-core: {err}"),
        }
    }

    /// As [`Domain::new`], but a configuration that fails [`DomainConfig::validate`] is
    /// returned as an error, before anything is registered or started.
    ///
    /// # Panics
    /// If the system refuses a thread for the domain's worker (the half-built domain is
    /// unregistered again while unwinding).
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig};
    /// let err = Domain::try_new(DomainConfig::new().name("bad\0name")).unwrap_err();
    /// assert_eq!(err.field(), "DomainConfig.name");
    /// assert!(err.to_string().starts_with("DomainConfig.name contains a NUL byte at index 3"));
    ///
    /// let domain = Domain::try_new(DomainConfig::new().name("good"))?;
    /// assert_eq!(domain.name(), "good");
    /// # Ok::<(), rcu_core::ConfigError>(())
    /// ```
    pub fn try_new(config: DomainConfig) -> Result<Domain, ConfigError> {
        Domain::try_new_with(config, ReaderFlavor::Classic)
    }

    /// As `try_new`, for readers of `flavor` (`SrcuStruct` makes its domain with it).
    pub(crate) fn try_new_with(
        config: DomainConfig,
        flavor: ReaderFlavor,
    ) -> Result<Domain, ConfigError> {
        config.validate()?;
        // Relaxed: a unique id is all that is needed.
        let id = NEXT_DOMAIN_ID.fetch_add(1, Ordering::Relaxed);
        let DomainConfig { name, stall_timeout, expedited, alloc, batch_delay } = config;
        let queues = Queues::new(alloc, batch_delay);
        let state = Arc::new(DomainState::new(id, name, stall_timeout, expedited, queues, flavor));
        crate::runtime::process::init();
        crate::state::tracking::track(Arc::as_ptr(&state).cast());
        let pool = PoolShrinker(Arc::downgrade(&state));
        let shrinker = register_shrinker(Arc::new(pool));
        // The `Domain` exists before its threads do: if starting them panics, unwinding drops
        // it, and `Drop` unregisters the state (the fork handler must never see it freed).
        let domain = Domain { state: DomainRef::Owned(state), _pool_shrinker: Some(shrinker) };
        crate::runtime::worker_thread::start(domain.state_ref());
        Ok(domain)
    }

    pub(crate) fn state(&self) -> &DomainState {
        &self.state
    }

    pub(crate) fn state_ref(&self) -> DomainRef {
        self.state.clone()
    }

    /// The domain's name ("global" for the global domain).
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig};
    /// assert_eq!(Domain::new(DomainConfig::new()).name(), "domain"); // the default name
    /// ```
    pub fn name(&self) -> &str {
        self.state().name()
    }

    /// True for the global domain.
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig};
    /// assert!(Domain::global().is_global());
    /// assert!(!Domain::new(DomainConfig::new()).is_global());
    /// ```
    pub fn is_global(&self) -> bool {
        matches!(self.state, DomainRef::Global(_))
    }

    /// Enters a read section of this domain. The section lasts until the guard is dropped;
    /// `ctx` stays borrowed until then and the guard hands out an `Atomic` token instead.
    /// Wait-free; nestable.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{Domain, DomainConfig};
    ///
    /// let domain = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = domain.read_lock(&mut ctx);
    /// // ... read RCU-protected data of `domain` ...
    /// drop(guard);
    /// domain.synchronize_rcu(&ctx);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read_lock<'a, C: Context>(&'a self, ctx: &'a mut C) -> ReadGuard<'a> {
        self.enter(ReadSection::enter(ctx))
    }

    /// Enters a read section from code that holds only a shared `Atomic` token: inside a
    /// callback, or inside a read section of another domain. (Within one domain,
    /// [`ReadGuard::nest`] does the same.)
    ///
    /// # Panics
    /// If the calling thread never registered with this domain: registering allocates, which
    /// an atomic context may not. Register it beforehand with
    /// [`Domain::register_current_thread`] (or one [`Domain::read_lock`] from a token that
    /// may allocate).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{Domain, DomainConfig};
    ///
    /// let other = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// other.register_current_thread(&ctx); // registering allocates: do it outside sections
    /// let global_guard = read_lock(&mut ctx);
    /// let other_guard = other.read_lock_nested(global_guard.ctx());
    /// drop(other_guard);
    /// drop(global_guard);
    /// ```
    #[inline]
    #[track_caller]
    pub fn read_lock_nested<'a>(&'a self, ctx: &'a Atomic<'_>) -> ReadGuard<'a> {
        self.enter(ReadSection::enter_nested(ctx))
    }

    #[inline]
    #[track_caller]
    fn enter<'a>(&'a self, section: ReadSection<'a>) -> ReadGuard<'a> {
        match &self.state {
            DomainRef::Global(_) => reader::read_lock_global(section),
            DomainRef::Owned(state) => reader::read_lock_in(state, section),
        }
    }

    /// Waits until every read section of this domain that began before the call has ended.
    /// Concurrent callers share grace periods.
    ///
    /// # Panics
    /// If the calling thread is inside a read section of this domain (which would wait for
    /// itself forever); the token types already rule this out unless a token was smuggled.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let cookie = domain.get_state();
    /// domain.synchronize_rcu(&ctx);
    /// assert!(domain.poll(cookie));
    /// {
    ///     let nr = ctx.no_reclaim(); // NoReclaim may wait for a grace period too
    ///     domain.synchronize_rcu(&nr);
    /// }
    /// ```
    #[track_caller]
    pub fn synchronize_rcu<C: MaySleep>(&self, ctx: &C) {
        ctx.validate();
        rcu_ctx::enforce::may_sleep("synchronize_rcu");
        self.ensure_worker::<C>();
        self.before_waiting();
        self.state().synchronize();
    }

    /// As [`Domain::synchronize_rcu`], but waits for readers by spinning and short sleeps
    /// instead of longer sleeps: lower latency, more CPU.
    ///
    /// ```
    /// use rcu_core::{Domain, Sleepable};
    /// let ctx = Sleepable::enter();
    /// let before = Domain::global().stats().gps_expedited;
    /// Domain::global().synchronize_rcu_expedited(&ctx);
    /// assert!(Domain::global().stats().gps_expedited > before);
    /// ```
    #[track_caller]
    pub fn synchronize_rcu_expedited<C: MaySleep>(&self, ctx: &C) {
        ctx.validate();
        rcu_ctx::enforce::may_sleep("synchronize_rcu_expedited");
        self.before_waiting();
        let state = self.state();
        state.wait_for(state.gp.seq.cookie(), Urgency::Expedited);
    }

    /// A cookie for the polled API: `poll(cookie)` becomes true once a full grace period has
    /// elapsed after this call. Does not start a grace period; never blocks; any context.
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig, Sleepable};
    /// let domain = Domain::new(DomainConfig::new());
    /// let cookie = domain.get_state(); // no grace period is requested
    /// let ctx = Sleepable::enter();
    /// domain.cond_synchronize(&ctx, cookie);
    /// assert!(domain.poll(cookie));
    /// ```
    pub fn get_state(&self) -> GpCookie {
        self.state().cookie()
    }

    /// As [`Domain::get_state`], and asks the domain's worker to run that grace period, so
    /// `poll` becomes true without anyone calling `synchronize_rcu`. Never blocks.
    ///
    /// With a token that may allocate, the domain's worker is started if it has not been
    /// yet; with `Atomic` the request is recorded and the worker woken if it runs (the global
    /// domain's worker starts with its first reader or sleepable call).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let cookie = {
    ///     let spin = ctx.atomic();
    ///     domain.start_poll(&spin) // never blocks: fine in an atomic scope
    /// };
    /// while !domain.poll(cookie) {
    ///     std::thread::yield_now(); // the domain's worker runs the grace period
    /// }
    /// ```
    #[track_caller]
    pub fn start_poll<C: Context>(&self, ctx: &C) -> GpCookie {
        ctx.validate();
        // With a token that may allocate it may start the worker (spawns a thread).
        rcu_ctx::enforce::token_fits::<C>("start_poll");
        self.ensure_worker::<C>();
        let state = self.state();
        let cookie = state.cookie();
        state.worker.request(cookie.seq());
        cookie
    }

    /// True once grace period `cookie` has completed. Never blocks, takes no lock, any
    /// context. If that grace period was asked for (`start_poll`) or has started and nobody
    /// is running it, `poll` moves it as far as it can without waiting (it completes it when
    /// no reader holds it up), so a polling loop is never held up by the worker thread's
    /// scheduling or by a long batch of callbacks.
    ///
    /// # Panics
    /// If `cookie` was issued by another domain.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// let guard = domain.read_lock(&mut ctx);
    /// let cookie = domain.start_poll(guard.ctx());
    /// assert!(!domain.poll(cookie)); // cannot complete while this section lives
    /// drop(guard);
    /// domain.cond_synchronize(&ctx, cookie);
    /// assert!(domain.poll(cookie));
    /// ```
    #[inline]
    #[track_caller]
    pub fn poll(&self, cookie: GpCookie) -> bool {
        let state = self.state();
        state.check_cookie(cookie);
        let seq = cookie.seq();
        // Only a grace period someone asked for (`start_poll`, a parked block, a waiter) or
        // one already started is driven here; a `get_state` cookie alone starts none, as
        // documented there.
        // SeqCst: as every load of `requested` (see `Worker::request`).
        let wanted =
            state.worker.requested.load(Ordering::SeqCst) >= seq || state.gp.seq.started() >= seq;
        if wanted {
            state.advance_grace_period(seq)
        } else {
            state.gp.seq.is_completed(seq)
        }
    }

    /// Waits for grace period `cookie` unless it has already completed.
    ///
    /// ```
    /// use rcu_core::{Domain, Sleepable};
    /// let domain = Domain::global();
    /// let ctx = Sleepable::enter();
    /// let cookie = domain.get_state();
    /// domain.synchronize_rcu(&ctx);
    /// domain.cond_synchronize(&ctx, cookie); // already elapsed: returns at once
    /// ```
    #[track_caller]
    pub fn cond_synchronize<C: MaySleep>(&self, ctx: &C, cookie: GpCookie) {
        ctx.validate();
        rcu_ctx::enforce::may_sleep("cond_synchronize");
        let state = self.state();
        state.check_cookie(cookie);
        if !state.gp.seq.is_completed(cookie.seq()) {
            self.before_waiting();
            state.wait_for(cookie.seq(), state.default_urgency());
        }
    }

    /// A snapshot of the domain's statistics.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// let domain = Domain::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// domain.kvfree_rcu(&ctx, Rcu::boxed([0u8; 32]));
    /// domain.rcu_barrier(&ctx);
    /// let stats = domain.stats();
    /// assert_eq!((stats.callbacks_queued, stats.callbacks_invoked), (1, 1));
    /// assert!(stats.gp_completed >= 1);
    /// ```
    pub fn stats(&self) -> DomainStats {
        let s = self.state();
        DomainStats {
            gp_seq: s.gp.seq.started(),
            gp_completed: s.gp.seq.completed(),
            gps_normal: Counters::get(&s.counters.gps_normal),
            gps_expedited: Counters::get(&s.counters.gps_expedited),
            readers: s.readers.registered() as u64,
            stalls: Counters::get(&s.counters.stalls),
            membarriers: Counters::get(&s.counters.membarriers),
            leaked_read_sections: Counters::get(&s.counters.leaked_read_sections),
            callbacks_queued: s.callbacks_queued(),
            callbacks_invoked: s.queues.invoked(),
            callbacks_pending: s.callbacks_pending(),
            callback_panics: s.queues.panics(),
            contained_panics: Counters::get(&s.counters.contained_panics),
            pending_bytes: s.queues.alloc.budget().pending() as u64,
            peak_pending_bytes: s.queues.alloc.budget().peak() as u64,
            budget_bytes: s.queues.alloc.budget().limit() as u64,
            gp_waiters: s.counters.gp_waiters(),
        }
    }

    /// Sends stall reports to `handler` instead of stderr (`None` restores the default).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu_core::Domain;
    ///
    /// Domain::global().set_stall_handler(Some(Arc::new(|report| eprintln!("STALL: {report}"))));
    /// Domain::global().set_stall_handler(None);
    /// ```
    pub fn set_stall_handler(&self, handler: Option<StallHandler>) {
        self.state().stall_sink.set(handler);
    }

    /// Changes how long a grace period waits for one reader before reporting a stall. As in
    /// [`DomainConfig::stall_timeout`], 584 years or more (`Duration::MAX` too) means never.
    ///
    /// # Panics
    /// At the caller, if `timeout` is zero (it would report every reader a grace period
    /// waits for).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::Domain;
    /// // e.g. while debugging a slow reader: report it sooner.
    /// Domain::global().set_stall_timeout(Duration::from_secs(2));
    /// Domain::global().set_stall_timeout(Duration::from_secs(21)); // back to the default
    /// ```
    #[track_caller]
    pub fn set_stall_timeout(&self, timeout: Duration) {
        assert!(
            !timeout.is_zero(),
            "rcu-core: Domain::set_stall_timeout(0): a zero stall timeout would report a stall \
             for every reader a grace period waits for (rule: the stall timeout is positive). \
             Fix: pass a positive duration; to never report stalls, pass a very long one such \
             as Duration::MAX"
        );
        // Relaxed: a setting, read at the start of each grace period.
        self.state().stall_timeout_ns.store(saturating_nanos(timeout), Ordering::Relaxed);
    }

    /// Checks before a caller waits for a grace period of this domain: not inside one of its
    /// read sections (which `rcu_ctx::enforce` already rules out for any section; this names
    /// the same-domain case), and the process set up.
    #[track_caller]
    fn before_waiting(&self) {
        reader::assert_outside_section(self.state());
        crate::runtime::process::init();
    }

    /// Starts the worker if this token may allocate and the worker is not running yet.
    fn ensure_worker<C: Context>(&self) {
        self.state.ensure_worker::<C>();
    }

    /// Entry checks of the deferred-reclamation calls: validation, and, for tokens that may
    /// allocate, the worker and this thread's registration (both allocate the first time).
    #[track_caller]
    #[inline]
    pub(crate) fn prepare<C: Context>(&self, ctx: &C, call: &'static str) -> Option<&Slot> {
        self.state.prepare(ctx, call)
    }

    /// Queues `f(obj, ctx)` to run after a grace period, on the domain's worker with an
    /// `Atomic` token. Works with every token and never fails: the object's embedded head
    /// carries it if no block can be had; under `Atomic` it never allocates, blocks or
    /// takes a lock, and is safe to call from a signal handler (see
    /// [`Domain::register_current_thread`]).
    ///
    /// # Panics
    /// When `ctx` claims more than the calling thread may do (a `Sleepable` or `NoReclaim`
    /// token used inside a read section or a scope it did not come from: checked in every
    /// build). `obj` is then leaked, never dropped: the caller may have unpublished it
    /// already, and a reader may still hold it.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{Domain, Rcu};
    ///
    /// fn release(obj: Box<Rcu<Vec<u8>>>, _ctx: &Atomic<'_>) {
    ///     assert_eq!(obj.len(), 3);
    ///     drop(obj); // the callback owns the object
    /// }
    /// let ctx = Sleepable::enter();
    /// Domain::global().call_rcu(&ctx, Rcu::boxed(vec![1, 2, 3]), release);
    /// Domain::global().rcu_barrier(&ctx); // `release` has run
    /// ```
    #[track_caller]
    pub fn call_rcu<C: Context, T: Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<Rcu<T>>,
        f: Callback<T>,
    ) {
        let obj = ManuallyDrop::new(obj);
        let slot = self.prepare(ctx, "call_rcu");
        let policy = self.state().policy_for::<C>(slot);
        let obj = ManuallyDrop::into_inner(obj);
        self.state().defer_headed_as(policy, slot, deferred::callback_entry(obj, f));
    }

    /// Queues the closure `f` to run after a grace period. Boxing the closure allocates, so
    /// this needs a token that may allocate; with `Atomic`, use [`Domain::call_rcu`].
    ///
    /// # Panics
    /// When `ctx` claims more than the calling thread may do (a `Sleepable` or `NoReclaim`
    /// token used inside a read section or a scope it did not come from: checked in every
    /// build). `f` is then leaked, never dropped: the caller may have unpublished it
    /// already, and a reader may still hold it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    ///
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let ctx = Sleepable::enter();
    /// let flag = ran.clone();
    /// rcu_core::Domain::global().call_rcu_fn(&ctx, move |_ctx| flag.store(true, Ordering::SeqCst));
    /// rcu_barrier(&ctx);
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    #[track_caller]
    pub fn call_rcu_fn<C: MayAlloc, F>(&self, ctx: &C, f: F)
    where
        F: FnOnce(&Atomic<'_>) + Send + 'static,
    {
        let f = ManuallyDrop::new(f);
        let slot = self.prepare(ctx, "call_rcu_fn");
        let policy = self.state().policy_for::<C>(slot);
        let f = ManuallyDrop::into_inner(f);
        self.state().defer_headed_as(policy, slot, deferred::closure_entry(f));
    }

    /// Drops `obj` after a grace period. Works with every token and never fails; under
    /// `Atomic` never allocates, blocks or takes a lock. Frees are batched in blocks and run
    /// in bulk on the worker.
    ///
    /// # Panics
    /// When `ctx` claims more than the calling thread may do (a `Sleepable` or `NoReclaim`
    /// token used inside a read section or a scope it did not come from: checked in every
    /// build). `obj` is then leaked, never dropped: the caller may have unpublished it
    /// already, and a reader may still hold it.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::Rcu;
    /// let ctx = Sleepable::enter();
    /// rcu_core::Domain::global().kvfree_rcu(&ctx, Rcu::boxed([0u64; 8]));
    /// ```
    #[track_caller]
    pub fn kvfree_rcu<C: Context, T: Send + 'static>(&self, ctx: &C, obj: Box<Rcu<T>>) {
        let obj = ManuallyDrop::new(obj);
        let slot = self.prepare(ctx, "kvfree_rcu");
        let policy = self.state().policy_for::<C>(slot);
        let obj = ManuallyDrop::into_inner(obj);
        self.state().defer_headed_as(policy, slot, deferred::free_entry(obj));
    }

    /// Drops any boxed `obj` after a grace period: any size and alignment, zero-sized or
    /// unsized (`Box<str>`, `Box<[T]>`, `Box<dyn Trait>`; a box of an unsized value is boxed
    /// once more, which allocates a word). Without an embedded head it needs a block; when
    /// none can be had it waits for a grace period and drops `obj` inline, so it needs a
    /// token that may sleep (the kernel's `kvfree_rcu_mightsleep`).
    ///
    /// # Panics
    /// When `ctx` claims more than the calling thread may do (a `Sleepable` or `NoReclaim`
    /// token used inside a read section or a scope it did not come from: checked in every
    /// build). `obj` is then leaked, never dropped: the caller may have unpublished it
    /// already, and a reader may still hold it.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let ctx = Sleepable::enter();
    /// rcu_core::Domain::global().kvfree_rcu_mightsleep(&ctx, Box::new(String::from("old")));
    /// ```
    #[track_caller]
    pub fn kvfree_rcu_mightsleep<C: MaySleep, T: ?Sized + Send + 'static>(
        &self,
        ctx: &C,
        obj: Box<T>,
    ) {
        let obj = ManuallyDrop::new(obj);
        let slot = self.prepare(ctx, "kvfree_rcu_mightsleep");
        let (entry, bytes) = deferred::headless_entry(ManuallyDrop::into_inner(obj));
        if let Err(entry) = self.state().defer_headless::<C>(slot, entry, bytes) {
            self.state().synchronize();
            // SAFETY: (1) made by `headless_entry::<T>` and not queued; a grace period has
            // passed since the caller unpublished it.
            drop(unsafe { deferred::headless_into_box::<T>(entry) });
        }
    }

    /// Waits until every callback and deferred free queued on this domain before the call,
    /// by any thread (exited ones included), has run. Needs a `Sleepable` token: it waits on
    /// other threads' progress.
    ///
    /// # Panics
    /// Inside a read section of this domain (it would wait for itself).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    ///
    /// static RAN: AtomicU32 = AtomicU32::new(0);
    /// fn count(_obj: Box<Rcu<()>>, _ctx: &Atomic<'_>) {
    ///     RAN.fetch_add(1, Ordering::Relaxed);
    /// }
    /// let domain = Domain::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// for _ in 0..10 {
    ///     domain.call_rcu(&ctx, Rcu::boxed(()), count);
    /// }
    /// domain.rcu_barrier(&ctx);
    /// assert_eq!(RAN.load(Ordering::Relaxed), 10);
    /// ```
    #[track_caller]
    pub fn rcu_barrier<C: MayReclaim>(&self, ctx: &C) {
        rcu_ctx::enforce::may_reclaim("rcu_barrier");
        let _ = self.prepare(ctx, "rcu_barrier");
        self.state().offline_for_executor();
        assert!(
            !crate::api::reader::in_read_section(self.state()),
            "rcu-core: rcu_barrier inside a read section of the same domain would wait for \
             itself forever (rule: no rcu_barrier inside a read section). The token types rule \
             this out except through a token the section did not borrow: one captured by an \
             RcuCell::update closure, a second root Sleepable, or a copy made with unsafe code. \
             Fix: end the read section first"
        );
        assert_outside_own_bracket(self.state(), "rcu_barrier");
        self.state().barrier();
    }

    /// Registers the calling thread with this domain now rather than on first use (which
    /// allocates). Do this before a thread's signal handlers use the domain: an unregistered
    /// thread's `Atomic` calls still work, through the embedded-head path.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, FallbackReason, Policy};
    /// let domain = Domain::new(DomainConfig::new());
    /// let mut ctx = Sleepable::enter();
    /// domain.register_current_thread(&ctx); // e.g. before installing a signal handler
    /// {
    ///     let spin = ctx.atomic(); // stands for the handler's `Atomic::assume()`
    ///     domain.kvfree_rcu(&spin, Rcu::boxed(1u32));
    /// }
    /// let stats = domain.alloc_stats();
    /// assert_eq!(stats.fallbacks_of(Policy::NoWait, FallbackReason::Unregistered), 0);
    /// domain.rcu_barrier(&ctx);
    /// ```
    #[track_caller]
    pub fn register_current_thread<C: MayAlloc>(&self, ctx: &C) {
        let _ = self.prepare(ctx, "register_current_thread");
    }

    /// The allocation side's statistics: blocks, pool, fallbacks by policy and reason.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, Policy};
    /// let domain = Domain::new(DomainConfig::new());
    /// let ctx = Sleepable::enter();
    /// domain.kvfree_rcu(&ctx, Rcu::boxed(0u64));
    /// let stats = domain.alloc_stats();
    /// assert!(stats.blocks_allocated + stats.pool_hits >= 1); // the item's block came from somewhere
    /// assert_eq!(stats.fallbacks_total(Policy::Reclaim), 0);
    /// domain.rcu_barrier(&ctx);
    /// ```
    pub fn alloc_stats(&self) -> AllocStats {
        self.state().queues.alloc.stats()
    }

    /// Makes this domain's block requests under `policy` fail as `config` says, so fallback
    /// paths run (tests).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, FallbackReason, FaultConfig, Policy};
    /// let domain = Domain::new(DomainConfig::new());
    /// domain.inject_faults(Policy::Reclaim, FaultConfig::every_nth(1)); // no block, ever
    /// let ctx = Sleepable::enter();
    /// domain.kvfree_rcu(&ctx, Rcu::boxed(1u8)); // still works: the embedded head carries it
    /// assert_eq!(domain.alloc_stats().fallbacks_of(Policy::Reclaim, FallbackReason::NoBlock), 1);
    /// domain.rcu_barrier(&ctx);
    /// ```
    pub fn inject_faults(&self, policy: Policy, config: FaultConfig) {
        self.state().queues.alloc.inject_faults(policy, config);
    }

    /// Changes how long queued items wait to be collected into a batch. Any value is valid;
    /// see [`DomainConfig::batch_delay`] for zero and very long delays.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rcu_core::{Domain, DomainConfig};
    /// let domain = Domain::new(DomainConfig::new());
    /// domain.set_batch_delay(Duration::from_millis(20)); // fewer, larger batches
    /// ```
    pub fn set_batch_delay(&self, delay: Duration) {
        self.state().queues.set_batch_delay(delay);
    }

    /// Changes the budget for pending reclamation, in bytes. Any value is valid, as in
    /// [`AllocConfig::budget_bytes`]: 0 means always over budget (`Sleepable` callers wait
    /// for the queue to drain, the other tokens fall back), `usize::MAX` means no budget.
    ///
    /// ```
    /// use rcu_core::{Domain, DomainConfig};
    /// let domain = Domain::new(DomainConfig::new());
    /// domain.set_budget(1 << 20);
    /// assert_eq!(domain.stats().budget_bytes, 1 << 20);
    /// ```
    pub fn set_budget(&self, bytes: usize) {
        self.state().queues.alloc.budget().set_limit(bytes);
    }
}

impl Drop for Domain {
    /// Only signals: the domain's worker runs what is queued and keeps serving cells and
    /// registered threads that still hold the state, then exits and frees it (see
    /// `worker`). Never waits, so a domain may be dropped anywhere, even in its own callback.
    fn drop(&mut self) {
        if let DomainRef::Owned(state) = &self.state {
            // Release: pairs with the Acquire in `is_live`: threads that see the domain dead
            // drop their registration.
            state.live.store(false, Ordering::Release);
            state.worker.request_stop();
            // The refill worker holds the state alive; it lets go once stopped.
            state.queues.alloc.request_stop_refill();
        }
    }
}

/// Panics if the calling thread's staging bracket in `state` is open, or if it leads the
/// domain's grace periods: the caller is a signal handler that interrupted the thread while
/// it queued a deferred free or led a grace period, and a barrier (whose collection waits for
/// that bracket, then for a grace period) could never end there.
#[track_caller]
pub(crate) fn assert_outside_own_bracket(state: &DomainState, call: &str) {
    if state.gp.led_here() {
        panic!(
            "rcu-core: {call} called from a signal handler that interrupted this thread while \
             it was leading a grace period of domain '{}': the barrier waits for grace periods \
             that only the interrupted frame can run (rule: no barrier in a signal handler; a \
             handler may only use what an Atomic token allows). Fix: record the request in \
             the handler and wait for the barrier outside it",
            state.name()
        );
    }
    if crate::api::reader::current_slot(state).is_some_and(|slot| slot.staging.is_open()) {
        panic!(
            "rcu-core: {call} called from a signal handler that interrupted this thread while \
             it was queueing deferred work in domain '{}': the barrier waits for that queueing \
             to finish, which cannot happen before the handler returns (rule: no barrier in a \
             signal handler; a handler may only use what an Atomic token allows). Fix: record \
             the request in the handler and wait for the barrier outside it",
            state.name()
        );
    }
}
