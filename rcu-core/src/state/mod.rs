//! A domain's state: the parts every operation of the domain works on (its readers, grace
//! periods, deferred-work queues, worker controls, stall reporting, statistics), composed in
//! one value. The global domain's lives in a `static` (so the read path reaches it without
//! indirection); others' in an `Arc`. The parts know nothing of the state; the operations
//! that combine them live above it (`reclaim`, `runtime`), and the public `Domain` on top.
//!
//! The folder also holds the small parts that belong to no engine (worker controls
//! `worker`, the async waker registry `wait_async`, the process's `fork_epoch` and `ready`
//! flag, the list of live states `tracking`) and how threads attach to a domain
//! (`registration`, with its exit hook). May call `raw`, `queue`, `read`, `gp`, `setting`
//! and `stats`; this file imports only its parts, never `registration`. One call runs
//! upward, unseen by the import check: a registration's end hands the slot's staged work
//! over with `DomainState::adopt` (`reclaim::collection`). Publishes: `live`'s Acquire in
//! `is_live` (Release in `Domain`'s drop); worker wake-ups are a SeqCst store-buffering pair
//! (`Worker::request`, `wake_if` against `announce_sleep`); a waiter is pushed with an AcqRel
//! CAS then a SeqCst store of `fresh` (`AsyncWaiters::push`); tracked states with a Release
//! CAS for an Acquire walk (`tracking`); `ready::set_ready`'s Release for `is_ready`'s
//! Acquire.

pub(crate) mod fork_epoch;
pub(crate) mod ready;
pub(crate) mod registration;
pub(crate) mod tracking;
pub(crate) mod wait_async;
pub(crate) mod worker;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rcu_alloc::{AllocConfig, Shrinker};

use crate::gp::grace_period::{GpHost, GracePeriods, Urgency};
use crate::gp::stall::StallSink;
use crate::queue::queues::Queues;
use crate::read::flavor::ReaderFlavor;
use crate::read::registry::Registry;
use crate::setting::saturating_nanos;
use crate::state::wait_async::AsyncWaiters;
use crate::state::worker::Worker;
use crate::stats::Counters;

/// A grace-period number: the first grace period that begins after the cookie was taken.
/// Once it has completed, every reader that could have seen what was removed before the
/// cookie was taken has finished. Compare cookies of one domain only.
///
/// ```
/// use rcu_core::prelude::*;
/// let ctx = Sleepable::enter();
/// let cookie: GpCookie = get_state();
/// assert!(!poll(cookie));
/// synchronize_rcu(&ctx);
/// assert!(poll(cookie));
/// assert!(get_state() > cookie); // cookies of one domain are ordered
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpCookie {
    seq: u64,
    domain: u64,
}

impl GpCookie {
    /// The grace-period sequence number this cookie waits for.
    ///
    /// ```
    /// use rcu_core::Domain;
    /// let domain = Domain::global();
    /// let cookie = domain.get_state();
    /// assert_eq!(cookie.seq(), domain.stats().gp_seq + 1); // the next grace period
    /// ```
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// The shared state of one domain. The global domain's lives in a `static` (so the read path
/// reaches it without indirection); others' in an `Arc`.
#[derive(Debug)]
pub(crate) struct DomainState {
    /// Unique for the life of the process (a `u64` counter: never wraps).
    pub(crate) id: u64,
    name: Cow<'static, str>,
    pub(crate) gp: GracePeriods,
    pub(crate) readers: Registry,
    pub(crate) counters: Counters,
    pub(crate) stall_sink: StallSink,
    pub(crate) stall_timeout_ns: AtomicU64,
    expedited: AtomicBool,
    pub(crate) worker: Worker,
    pub(crate) queues: Queues,
    /// Wakers of the async futures, woken by the worker (`wait_async`, `async_wake`).
    pub(crate) async_waiters: AsyncWaiters,
    /// False once the owning `Domain` has been dropped.
    pub(crate) live: AtomicBool,
    /// Strong references held by this domain's runtime threads (`worker_thread::ThreadRef`).
    pub(crate) runtime_refs: AtomicUsize,
}

pub(crate) static GLOBAL_STATE: DomainState = DomainState::new(
    0,
    Cow::Borrowed("global"),
    DEFAULT_STALL_TIMEOUT,
    false,
    Queues::new(AllocConfig::new(), DEFAULT_BATCH_DELAY),
    ReaderFlavor::Classic,
);

/// As the kernel's default `rcu_cpu_stall_timeout`.
pub(crate) const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(21);

/// Long enough to batch a burst of frees, short enough that memory comes back promptly.
pub(crate) const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(5);

/// A domain's block pool as a shrinker (DESIGN §4: the runtime's own caches are shrinkers
/// too). The global domain's is registered once by `process::init`; others' by `Domain::new`.
pub(crate) struct PoolShrinker(pub(crate) Weak<DomainState>);

impl Shrinker for PoolShrinker {
    fn count(&self) -> usize {
        self.0.upgrade().map_or(0, |s| s.queues.alloc.count())
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        self.0.upgrade().map_or(0, |s| s.queues.alloc.scan(nr_to_scan))
    }
}

/// The global domain's pool as a shrinker.
pub(crate) struct GlobalPoolShrinker;

impl Shrinker for GlobalPoolShrinker {
    fn count(&self) -> usize {
        GLOBAL_STATE.queues.alloc.count()
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        GLOBAL_STATE.queues.alloc.scan(nr_to_scan)
    }
}

impl DomainState {
    /// Takes the configuration in parts: a `const fn` cannot drop a `DomainConfig`.
    pub(crate) const fn new(
        id: u64,
        name: Cow<'static, str>,
        stall_timeout: Duration,
        expedited: bool,
        queues: Queues,
        flavor: ReaderFlavor,
    ) -> Self {
        DomainState {
            id,
            name,
            gp: GracePeriods::new(),
            readers: Registry::new(flavor),
            counters: Counters::new(),
            stall_sink: StallSink::new(),
            stall_timeout_ns: AtomicU64::new(saturating_nanos(stall_timeout)),
            expedited: AtomicBool::new(expedited),
            worker: Worker::new(),
            queues,
            async_waiters: AsyncWaiters::new(),
            live: AtomicBool::new(true),
            runtime_refs: AtomicUsize::new(0),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn stall_timeout(&self) -> Duration {
        // Relaxed: a setting; any recent value will do.
        Duration::from_nanos(self.stall_timeout_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn is_live(&self) -> bool {
        // Acquire: pairs with the Release in `Domain::drop`.
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn default_urgency(&self) -> Urgency {
        // Relaxed: a setting.
        if self.expedited.load(Ordering::Relaxed) {
            Urgency::Expedited
        } else {
            Urgency::Normal
        }
    }

    /// `synchronize_rcu` at the domain's default urgency.
    #[track_caller]
    pub(crate) fn synchronize(&self) {
        self.wait_for(self.gp.seq.cookie(), self.default_urgency());
    }

    pub(crate) fn cookie(&self) -> GpCookie {
        GpCookie { seq: self.gp.seq.cookie(), domain: self.id }
    }

    #[track_caller]
    pub(crate) fn check_cookie(&self, cookie: GpCookie) {
        assert!(
            cookie.domain == self.id,
            "rcu-core: a GpCookie of one domain used with another (domain '{}'): a cookie \
             names a grace period of the domain that issued it, and means nothing to another \
             (rule: one cookie, one domain). Fix: poll or cond_synchronize on the domain whose \
             get_state/start_poll returned it (the free functions use Domain::global())",
            self.name()
        );
    }

    /// Waits for grace period `cookie`. Caller: a thread that may sleep, outside any read
    /// section of this domain (the public calls check it, `rcu_ctx::enforce` in every build
    /// and `reader::assert_outside_section`), after `process::init`.
    ///
    /// # Panics
    /// Inside a read section of this domain, whatever the callers checked before: every
    /// internal wait (backpressure, a headless free's fallback) ends here, and waiting would
    /// never end.
    #[track_caller]
    pub(crate) fn wait_for(&self, cookie: u64, urgency: Urgency) {
        if !self.gp.seq.is_completed(cookie) {
            self.offline_for_executor();
            self.assert_caller_outside_sections();
        }
        let _counted = self.counters.waiting();
        self.gp.wait_until_completed(self, cookie, urgency);
    }

    /// Before a wait for one of this domain's grace periods (`wait_for`, `rcu_barrier`, a
    /// grace-period future's poll) and before an explicit `QsbrDomain::online`: a QSBR
    /// executor worker online here goes offline (`api::qsbr_thread`), so that the grace
    /// periods it waits for (and those while it holds an explicit handle, whose entries
    /// fence) do not pay membarrier for it. Inside a `read` closure it stays online (its
    /// section entered without a fence), and the caller's check refuses the wait as one
    /// inside a section.
    pub(crate) fn offline_for_executor(&self) {
        if self.readers.flavor() == ReaderFlavor::Qsbr {
            if let Some(slot) = registration::find_slot(self) {
                // SAFETY: a registered slot lives as long as its domain's state, which
                // `self` borrows.
                unsafe { &*slot }.end_executor_online();
            }
        }
    }

    /// Panics if the calling thread is inside a read section of this domain: the check every
    /// internal wait for a grace period makes first (see `Registry::caller_in_section`).
    #[track_caller]
    pub(crate) fn assert_caller_outside_sections(&self) {
        if self.readers.caller_in_section() {
            panic!(
                "rcu-core: a wait for a grace period of domain '{}' on a thread inside one of \
                 its read sections would wait for itself forever (rule: nothing waits for a \
                 grace period inside a read section of the same domain). A token that claims \
                 more than the thread may do reached a call that waits (a smuggled root \
                 Sleepable, or one whose checks were defeated). Fix: end the read section \
                 first, or use a call that never waits (kvfree_rcu with the section's token)",
                self.name()
            );
        }
    }

    /// Wakes this domain's worker if it sleeps (see `Worker::wake_if_sleeping`).
    pub(crate) fn wake_worker(&self) {
        self.worker.wake_if_sleeping();
    }

    /// Pending items: queued and not yet run.
    pub(crate) fn callbacks_pending(&self) -> u64 {
        let queued = self.callbacks_queued();
        queued.saturating_sub(self.queues.invoked())
    }

    /// Items queued so far.
    pub(crate) fn callbacks_queued(&self) -> u64 {
        self.readers.iter().map(|s| s.staging.queued()).sum::<u64>()
            + self.queues.queued_intrusive()
    }
}

impl GpHost for DomainState {
    fn readers(&self) -> &Registry {
        &self.readers
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn stall_sink(&self) -> &StallSink {
        &self.stall_sink
    }

    fn stall_timeout(&self) -> Duration {
        DomainState::stall_timeout(self)
    }

    fn name(&self) -> &str {
        DomainState::name(self)
    }

    fn pending_callbacks(&self) -> u64 {
        self.callbacks_pending()
    }
}

/// A counted reference to a domain's state: held by `Domain`, its worker and its cells.
#[derive(Debug, Clone)]
pub(crate) enum DomainRef {
    Global(&'static DomainState),
    Owned(Arc<DomainState>),
}

impl core::ops::Deref for DomainRef {
    type Target = DomainState;
    fn deref(&self) -> &DomainState {
        match self {
            DomainRef::Global(s) => s,
            DomainRef::Owned(s) => s,
        }
    }
}
