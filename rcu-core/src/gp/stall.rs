//! Stall detection: what is reported when a reader holds up a grace period too long, and to
//! whom.

use core::cell::UnsafeCell;
use std::sync::Arc;

use rcu_sys::ForkLock;
use std::time::Duration;

/// A wait held up by one thread for longer than the domain's stall timeout: a grace period
/// waiting for a reader inside its read section, or a collection (and so `rcu_barrier`)
/// waiting for a thread to leave its staging bracket ([`StallCause`]).
///
/// ```
/// use std::time::Duration;
/// use rcu_core::{StallCause, StallReport};
/// let report = StallReport {
///     domain: "global".into(),
///     thread_name: Some("worker-3".into()),
///     tid: 4242,
///     blocked_for: Duration::from_millis(21_500),
///     gp_seq: 17,
///     pending_callbacks: 1000,
///     leaked_guard: false,
///     cause: StallCause::ReadSection,
/// };
/// let line = report.to_string(); // what the default handler prints on stderr
/// assert!(line.starts_with("rcu: grace period 17 of domain 'global' stalled for 21.500s"));
/// assert!(line.contains("'worker-3' (tid 4242)"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StallReport {
    /// Name of the domain ("global" for the global domain).
    pub domain: String,
    /// The blocking reader thread's name, if it has one.
    pub thread_name: Option<String>,
    /// The blocking reader thread's kernel thread id.
    pub tid: i32,
    /// How long the grace period has waited so far.
    pub blocked_for: Duration,
    /// The stalled grace period's sequence number.
    pub gp_seq: u64,
    /// Callbacks and deferred frees queued on the domain and not yet run.
    pub pending_callbacks: u64,
    /// True when the reader thread has exited inside the section, having leaked the guard
    /// together with its root `Sleepable`: the guard and references loaded through it may
    /// live for ever, so the section never ends and neither does this grace period.
    pub leaked_guard: bool,
    /// What the stalled wait waits for.
    pub cause: StallCause,
}

/// What a stalled wait waits for (see [`StallReport`]).
///
/// ```
/// use std::time::Duration;
/// use rcu_core::{StallCause, StallReport};
/// let report = StallReport {
///     domain: "global".into(),
///     thread_name: Some("main".into()),
///     tid: 7,
///     blocked_for: Duration::from_secs(22),
///     gp_seq: 40,
///     pending_callbacks: 3,
///     leaked_guard: false,
///     cause: StallCause::StagingBracket,
/// };
/// assert!(report.to_string().contains("staging bracket"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StallCause {
    /// A reader thread inside a read section holds up grace period `gp_seq`.
    ReadSection,
    /// A thread has not left its staging bracket (the few instructions that queue a deferred
    /// free into its block): a collection, and so `rcu_barrier`, waits for it. A bracket
    /// never blocks, so the thread was interrupted there by a signal handler that blocks
    /// (or it is stopped). `gp_seq` is the last grace period the domain started.
    StagingBracket,
    /// Sleepable (SRCU) read sections begun on the named thread hold up grace period
    /// `gp_seq`: its borrowed guards, or owned guards it made, which may since have moved to
    /// other threads or tasks.
    SleepableSection,
    /// A thread online in a QSBR domain (`QsbrDomain::online`) has not announced a quiescent
    /// state since grace period `gp_seq` began.
    QsbrOnline,
}

impl core::fmt::Display for StallReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.cause == StallCause::StagingBracket {
            return write!(
                f,
                "rcu: a collection of domain '{}' has waited {:.3}s for thread '{}' (tid {}) to \
                 leave its staging bracket; {} callbacks pending, and rcu_barrier waits too. A \
                 bracket never blocks: a signal handler that interrupted that thread inside the \
                 runtime is blocking (or the thread is stopped). Rule: signal handlers never \
                 block. Fix: make the handler return promptly (record the event and handle it \
                 outside the handler)",
                self.domain,
                self.blocked_for.as_secs_f64(),
                self.thread_name.as_deref().unwrap_or("<unnamed>"),
                self.tid,
                self.pending_callbacks
            );
        }
        if self.cause == StallCause::SleepableSection {
            return write!(
                f,
                "rcu: grace period {} of sleepable domain '{}' stalled for {:.3}s by read \
                 sections begun on thread '{}' (tid {}){}; {} callbacks pending. Its borrowed \
                 guards are on that thread; its owned guards (down_read) may have moved to \
                 other threads or tasks. Rule: a sleepable section may block, and holds up its \
                 own domain's grace periods meanwhile. Fix: find the guard held across a long \
                 wait (or dropped nowhere: leaked, or held by a task that never runs again) and \
                 drop it sooner, or raise the domain's stall timeout if the wait is expected",
                self.gp_seq,
                self.domain,
                self.blocked_for.as_secs_f64(),
                self.thread_name.as_deref().unwrap_or("<unnamed>"),
                self.tid,
                if self.leaked_guard { ", which exited with a guard leaked" } else { "" },
                self.pending_callbacks
            );
        }
        if self.cause == StallCause::QsbrOnline && !self.leaked_guard {
            return write!(
                f,
                "rcu: grace period {} of QSBR domain '{}' stalled for {:.3}s by thread '{}' \
                 (tid {}), online without a quiescent state; {} callbacks pending. Rule: an \
                 online thread announces quiescent states often and goes offline before it \
                 blocks. Fix: call quiescent_state() once per iteration of that thread's loop, \
                 and take it offline() around waits, sleeps and long computations",
                self.gp_seq,
                self.domain,
                self.blocked_for.as_secs_f64(),
                self.thread_name.as_deref().unwrap_or("<unnamed>"),
                self.tid,
                self.pending_callbacks
            );
        }
        write!(
            f,
            "rcu: grace period {} of domain '{}' stalled for {:.3}s by reader thread '{}' \
             (tid {}); {} callbacks pending. ",
            self.gp_seq,
            self.domain,
            self.blocked_for.as_secs_f64(),
            self.thread_name.as_deref().unwrap_or("<unnamed>"),
            self.tid,
            self.pending_callbacks
        )?;
        if self.leaked_guard {
            f.write_str(
                "That thread has exited inside the section: a read guard was leaked together \
                 with its root Sleepable (Box::leak), so the guard and references loaded \
                 through it may live for ever, and this grace period can never end. Rule: a \
                 read section ends when its guard is dropped. Fix: drop every guard on the \
                 thread that made it; never leak a root token or store a guard",
            )
        } else {
            f.write_str(
                "Rule: read sections are short and never block. Fix: find where that thread \
                 holds a ReadGuard (blocked, sleeping or looping inside the section) and end the \
                 section sooner; give long readers a domain of their own, or raise the domain's \
                 stall timeout if the wait is expected",
            )
        }
    }
}

/// Receives stall reports; called on the thread that drives the grace period.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use rcu_core::{Domain, StallHandler, StallReport};
///
/// static STALLS: AtomicU64 = AtomicU64::new(0);
/// let handler: StallHandler = Arc::new(|report: &StallReport| {
///     STALLS.fetch_add(1, Ordering::Relaxed);
///     eprintln!("{report}");
/// });
/// Domain::global().set_stall_handler(Some(handler));
/// Domain::global().set_stall_handler(None);
/// ```
pub type StallHandler = Arc<dyn Fn(&StallReport) + Send + Sync>;

/// Guards every domain's handler slot. One process-wide lock, so that the atfork prepare
/// handler can hold it across `fork()` (a lock held by a thread that does not exist in the
/// child would block the child's stall reports for ever).
static HANDLERS: ForkLock<()> = ForkLock::new(());

/// Where a domain's stall reports go: the default prints one line to stderr.
pub(crate) struct StallSink {
    /// Read and written only under `HANDLERS`.
    handler: UnsafeCell<Option<StallHandler>>,
}

// SAFETY: `handler` is only touched under `HANDLERS`; the handler itself is `Send + Sync`.
unsafe impl Sync for StallSink {}

// No user code runs while `HANDLERS` is held (the old handler is dropped and the current one
// called outside it), so a panic cannot leave a slot half-written: as unwind-safe as the
// `Mutex` it replaces.
impl std::panic::RefUnwindSafe for StallSink {}

impl core::fmt::Debug for StallSink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StallSink")
    }
}

impl StallSink {
    pub(crate) const fn new() -> Self {
        StallSink { handler: UnsafeCell::new(None) }
    }

    pub(crate) fn set(&self, handler: Option<StallHandler>) {
        // SAFETY: under `HANDLERS`, the only access to `handler`.
        let old =
            HANDLERS.with(|_| core::mem::replace(unsafe { &mut *self.handler.get() }, handler));
        // Dropped outside the lock: a handler's drop is the user's code.
        drop(old);
    }

    /// The atfork prepare handler's half (see `HANDLERS`).
    pub(crate) fn hold_for_fork() {
        HANDLERS.hold_for_fork();
    }

    /// The atfork parent and child handlers' half.
    ///
    /// # Safety
    /// 1. `hold_for_fork` was called by this thread (or, in a child, by the thread it was
    ///    forked from) and not released since.
    pub(crate) unsafe fn release_after_fork() {
        // SAFETY: (1) is the caller's promise.
        unsafe { HANDLERS.release_after_fork() };
    }

    /// Hands `report` to the handler. The handler runs on the thread leading the stalled
    /// grace period, so it runs in an atomic scope: a blocking call inside it (say
    /// `synchronize_rcu` through a thread-local root, which would wait for the grace period
    /// that waits for the handler) panics instead of deadlocking. A panic is caught and
    /// reported here, its payload included (`contain`), and so is one in the handler's drop
    /// (our clone may be its last reference, if it was replaced meanwhile); the wait carries
    /// on. Returns true if the handler panicked (the caller counts it).
    pub(crate) fn report(&self, report: &StallReport) -> bool {
        // Clone out, so the handler runs without the lock held.
        // SAFETY: under `HANDLERS`, the only access to `handler`.
        let handler = HANDLERS.with(|_| unsafe { (*self.handler.get()).clone() });
        let Some(handler) = handler else {
            rcu_sys::stderr::report_line(&report.to_string());
            return false;
        };
        // The handler, its drop and its panics' payloads all run in one atomic scope: any of
        // them that waited for a grace period or a barrier would wait for the thread that
        // runs it (the leader of the stalled grace period, or the worker); inside the scope
        // such a call panics (every build), contained here.
        // SAFETY: (1) dropped at the end of this function, after every use below; (2) the
        // handler's scopes are values it drops before returning (or unwinds through).
        let atomic = unsafe { rcu_ctx::Atomic::assume() };
        let outcome = rcu_sys::contain::contain(|| handler(report));
        let dropped = rcu_sys::contain::contain(move || drop(handler));
        drop(atomic);
        let panicked = outcome.is_none() || dropped.is_none();
        if panicked {
            rcu_sys::stderr::report_line(&format!(
                "rcu-core: the stall handler of domain '{}' panicked (see the message above); \
                 the report was: {report}. Rule: a stall handler runs in an atomic scope on the \
                 thread leading the grace period; it must not block or panic. Fix: only record \
                 or print the report there",
                report.domain
            ));
        }
        panicked
    }
}

/// When to report next: after the timeout, then at doubling intervals, so a long stall
/// produces a handful of lines rather than a flood.
#[derive(Debug)]
pub(crate) struct StallClock {
    next_report: Duration,
}

impl StallClock {
    pub(crate) fn new(timeout: Duration) -> Self {
        StallClock { next_report: timeout }
    }

    /// True if a report is due at `elapsed`; advances the clock when it is.
    pub(crate) fn due(&mut self, elapsed: Duration) -> bool {
        if elapsed < self.next_report {
            return false;
        }
        self.next_report = self.next_report.saturating_mul(2).max(elapsed);
        true
    }
}
