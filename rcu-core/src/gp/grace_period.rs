//! The grace-period state machine: who runs a grace period, how it waits for readers, and how
//! concurrent callers share one.
//!
//! Grace periods are driven by their callers (and by the domain's worker for polled
//! requests): whoever finds no grace period in flight becomes the *leader* and runs grace
//! periods until its own cookie has completed; everyone else waits for a completion event and
//! re-checks. Every caller that arrived before a grace period started is served by it, so N
//! concurrent `synchronize_rcu` calls cost about one or two grace periods, not N.
//!
//! One grace period `g` (see `raw::protocol` for the words and `docs/design.md` for the
//! ordering argument):
//! 1. advance the sequence to `g` (AcqRel RMW);
//! 2. `heavy_barrier()`: membarrier, or a SeqCst fence in fence mode;
//! 3. for every reader word, wait until it no longer blocks `g` (Acquire loads);
//! 4. mark `g` completed (Release) and wake waiters.

use core::cell::Cell;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use crate::gp::srcu::SrcuMachine;
use crate::gp::stall::StallSink;
use crate::gp::stall::{StallCause, StallClock, StallReport};
use crate::raw::barrier::{heavy_barrier, uses_membarrier};
use crate::raw::protocol::GpSequence;
use crate::raw::srcu::drained;
use crate::read::flavor::ReaderFlavor;
use crate::read::registry::Registry;
use crate::read::registry::Slot;
use crate::stats::Counters;
use rcu_sys::EventCount;

/// How a grace period waits for readers that are still inside their sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Spin briefly, then sleep in growing steps up to a few milliseconds: cheap for the CPU.
    Normal,
    /// Spin, then sleep in short steps: lowest latency, more CPU.
    Expedited,
}

impl Urgency {
    fn max_sleep(self) -> Duration {
        match self {
            Urgency::Normal => Duration::from_millis(2),
            Urgency::Expedited => Duration::from_micros(50),
        }
    }

    /// The longest nap while a sleepable section holds a grace period: its reader may block
    /// for long, and the grace period should end soon after it stops (issue 25's target:
    /// within 2 ms of the last blocking guard's drop).
    fn max_sleep_srcu(self) -> Duration {
        self.max_sleep().min(Duration::from_micros(250))
    }
}

/// What a grace period needs from the domain it runs in: the readers to wait for, and where
/// its statistics and stall reports go. The domain's state provides it (`state/mod.rs`); this
/// module knows nothing else of a domain.
pub(crate) trait GpHost {
    /// The readers every grace period waits for.
    fn readers(&self) -> &Registry;
    /// Grace-period and stall counters.
    fn counters(&self) -> &Counters;
    /// Where stall reports go.
    fn stall_sink(&self) -> &StallSink;
    /// How long one reader may hold a grace period before a stall is reported.
    fn stall_timeout(&self) -> Duration;
    /// The domain's name, for reports.
    fn name(&self) -> &str;
    /// Callbacks queued and not yet run, for reports.
    fn pending_callbacks(&self) -> u64;
}

/// Defensive bound on one futex sleep. The wake-up protocol below is argued complete; the
/// bound only limits the damage of a bug in that argument to latency instead of a hang.
const MAX_EVENT_WAIT: Duration = Duration::from_millis(100);

/// The least a grace period must have cost (when others waited too) for the next leader to
/// yield before starting one (`GracePeriods::gather_sharers`). A yield costs scheduler round
/// trips (microseconds), so it pays only for grace periods dearer than those. On the 2-CPU
/// machine of docs/performance.md, 4 looping callers' grace periods cost about 15 us beside
/// a busy reader (one membarrier IPI; yielding cut their time by 2.4x), while with no reader
/// their calls took 1.3-5 us each, grace period included, and yielding never paid:
/// yielding whatever the cost took 28-33 ms for their 8000 calls against 16-42 ms without in
/// the same runs, and with this bound 12-13 ms against 10-24.
const GATHER_WORTH_NS: u64 = 5_000;

/// A domain's grace-period machinery.
#[derive(Debug)]
pub(crate) struct GracePeriods {
    pub(crate) seq: GpSequence,
    /// The sleepable flavours' index and scan state (unused by classic domains).
    pub(crate) srcu: SrcuMachine,
    /// 1 while a leader runs grace periods.
    leader: AtomicU32,
    /// Bumped after every completion; waiters sleep on it.
    done: EventCount,
    /// What the last grace period run while other threads waited cost its leader, in
    /// nanoseconds (see `gather_sharers`).
    contended_cost_ns: AtomicU64,
}

impl GracePeriods {
    pub(crate) const fn new() -> Self {
        GracePeriods {
            seq: GpSequence::new(),
            srcu: SrcuMachine::new(),
            leader: AtomicU32::new(0),
            done: EventCount::new(),
            contended_cost_ns: AtomicU64::new(0),
        }
    }

    fn try_lead(&self) -> bool {
        // Acquire: pairs with the Release in `stop_leading`: the previous leader's grace
        // periods (and their completed marks) are visible to the new leader.
        self.leader.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    fn stop_leading(&self) {
        // SeqCst (Release in effect): orders the unlock before the event bump below in the
        // single total order that `wait_for_event` reasons about.
        self.leader.store(0, Ordering::SeqCst);
        self.signal_event();
    }

    fn signal_event(&self) {
        self.done.notify_all();
    }

    /// Sleeps until a completion event after the current leader's, or returns at once if no
    /// leader is running (the caller should then try to lead). The condition is "no leader,
    /// or an event since the key"; `stop_leading` clears the leader before its event, so the
    /// event count's argument (`rcu_sys::EventCount`) applies.
    fn wait_for_event(&self) {
        let key = self.done.key();
        let backoff = Backoff::new();
        loop {
            // SeqCst: ordered after the key's load and before the event count's waiter count
            // in the total order the event count's argument uses.
            if self.leader.load(Ordering::SeqCst) == 0 || self.done.key() != key {
                return;
            }
            if backoff.is_completed() {
                break;
            }
            backoff.snooze();
        }
        self.done.wait(key, Some(MAX_EVENT_WAIT));
    }

    /// Returns once grace period `cookie` has completed, leading grace periods as needed.
    ///
    /// # Panics
    /// If the calling thread leads this domain's grace periods already: the caller is a signal
    /// handler that interrupted the leader (or a stall handler that got past its atomic
    /// scope), and the role it waits for is held by the frame it interrupted.
    #[track_caller]
    pub(crate) fn wait_until_completed<H: GpHost + ?Sized>(
        &self,
        domain: &H,
        cookie: u64,
        urgency: Urgency,
    ) {
        if !self.seq.is_completed(cookie) && self.led_here() {
            panic!(
                "rcu-core: a wait for a grace period of domain '{}' on a thread that is leading \
                 that domain's grace periods (a signal handler that interrupted the leader): it \
                 would wait for the frame it interrupted, for ever (rule: a signal handler only \
                 does what an Atomic token allows). Fix: record the request in the handler and \
                 wait outside it, or use start_poll/poll",
                domain.name()
            );
        }
        loop {
            if self.seq.is_completed(cookie) {
                return;
            }
            if self.try_lead() {
                // Stops leading also when unwinding (a panic inside the grace period must not
                // leave the domain without a leader for ever).
                let _leading = Leading::new(self);
                if urgency == Urgency::Normal && self.seq.started() < cookie {
                    self.gather_sharers(domain);
                }
                while !self.seq.is_completed(cookie) {
                    self.run_one(domain, urgency);
                }
                return;
            }
            self.wait_for_event();
        }
    }

    /// Before a leader starts a fresh normal grace period: if other threads wait for grace
    /// periods too and they have been dear, gives up the CPU once, so that callers which
    /// share it with the leader (waiters just woken by the last completion, about to call
    /// again) take their cookies before `started` moves on, and this grace period serves
    /// them as well. Without it, on an oversubscribed CPU each caller ran grace periods alone
    /// in its time slice while the others waited for the CPU: 4 looping callers beside a busy
    /// reader on 2 CPUs ran one grace period per call (docs/design.md, "Grace periods").
    /// When the waiters run on CPUs of their own, `yield_now` returns at once. Expedited
    /// grace periods skip it (latency first), and so does a caller alone.
    fn gather_sharers<H: GpHost + ?Sized>(&self, domain: &H) {
        // The count includes this thread, unless it is the domain's worker (never counted:
        // it then takes two others to yield, which only makes the worker yield less).
        // Relaxed: a hint (see `contended_cost_ns`).
        if domain.counters().gp_waiters() > 1
            && self.contended_cost_ns.load(Ordering::Relaxed) >= GATHER_WORTH_NS
        {
            std::thread::yield_now();
        }
    }

    /// Returns true once grace period `cookie` has completed, advancing it meanwhile as far
    /// as it can without waiting: if no leader is running, it leads, starts (or resumes) the
    /// grace period, and completes it if no reader holds it up; otherwise it leaves it in
    /// progress for the next leader. Never blocks, never allocates, takes no lock (the
    /// leader role is only tried), async-signal-safe: what `poll` runs, so that a poller
    /// never waits for the worker to be scheduled to see a grace period that could end.
    /// Caller: after `process::init` (the heavy barrier's mode is decided).
    pub(crate) fn try_advance<H: GpHost + ?Sized>(&self, domain: &H, cookie: u64) -> bool {
        if self.seq.is_completed(cookie) {
            return true;
        }
        if !self.try_lead() {
            return false;
        }
        let _leading = Leading::new(self);
        let flavor = domain.readers().flavor();
        while !self.seq.is_completed(cookie) {
            let gp = self.start_or_resume(domain);
            // Sleepable domains have classic (non-blocking) sections too: `Domain::read_lock`
            // on their state, which cells and collections use inside their calls. Checked
            // first: a leader that gives up after the scans would scan again when it
            // resumes (safe, `gp::srcu`, but wasted).
            if domain.readers().iter().any(|slot| slot.word.blocks(gp)) {
                return false;
            }
            if flavor.is_srcu() && !self.srcu.drive(domain.readers(), |_, _| false) {
                return false;
            }
            self.finish(domain, gp, Urgency::Normal);
        }
        true
    }

    /// Starts the next grace period, or resumes the one a leader gave up on, with the barrier
    /// the domain's readers pair with: a SeqCst fence for the flavours whose every section
    /// entry fences (`ReaderFlavor::grace_periods_fence`), plus the heavy barrier while a
    /// QSBR executor worker is online; else the heavy barrier. Each membarrier is counted.
    /// Caller: the leader.
    fn start_or_resume<H: GpHost + ?Sized>(&self, domain: &H) -> u64 {
        let flavor = domain.readers().flavor();
        if flavor.grace_periods_fence() {
            self.seq.start_or_resume_with(|| {
                // SeqCst fence: pairs with the fence after each outermost entry of these
                // flavours' sections (store buffering; `Slot::set_owner`, `SrcuCounters`),
                // and with the one a QSBR executor worker issues after setting its online
                // flag (`QsbrDomain::read`): a flag not seen here was set by a thread whose
                // sections see everything before this fence.
                fence(Ordering::SeqCst);
                // QSBR executor workers online enter their sections without a fence: they
                // need the heavy barrier (`api::qsbr_thread`).
                if flavor == ReaderFlavor::Qsbr
                    && domain.readers().iter().any(|slot| slot.executor.is_online())
                {
                    heavy_barrier();
                    if uses_membarrier() {
                        Counters::bump(&domain.counters().membarriers);
                    }
                }
            })
        } else {
            self.seq.start_or_resume_with(|| {
                heavy_barrier();
                if uses_membarrier() {
                    Counters::bump(&domain.counters().membarriers);
                }
            })
        }
    }

    /// Runs exactly one grace period. Caller: the leader.
    fn run_one<H: GpHost + ?Sized>(&self, domain: &H, urgency: Urgency) {
        let contended = domain.counters().gp_waiters() > 1;
        let start = Instant::now();
        let mut clock = StallClock::new(domain.stall_timeout());
        let flavor = domain.readers().flavor();
        let gp = self.start_or_resume(domain);
        if flavor.is_srcu() {
            let done = self.srcu.drive(domain.readers(), |slot, index| {
                wait_for_srcu_reader(domain, slot, index, gp, start, &mut clock, urgency);
                true
            });
            debug_assert!(done, "rcu-core internal error: a waiting SRCU drive gave up");
        }
        // Sleepable domains too: see `try_advance`.
        for slot in domain.readers().iter() {
            wait_for_reader(domain, slot, gp, start, &mut clock, urgency);
        }
        self.finish(domain, gp, urgency);
        if contended {
            let cost = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // Relaxed: a hint for the next leader's `gather_sharers`; it orders nothing.
            self.contended_cost_ns.store(cost, Ordering::Relaxed);
        }
    }

    /// Completes grace period `gp`, which no reader holds up any more. Caller: the leader.
    fn finish<H: GpHost + ?Sized>(&self, domain: &H, gp: u64, urgency: Urgency) {
        self.seq.complete(gp);
        Counters::bump(match urgency {
            Urgency::Normal => &domain.counters().gps_normal,
            Urgency::Expedited => &domain.counters().gps_expedited,
        });
        self.signal_event();
    }

    /// True if the calling thread leads these grace periods right now.
    pub(crate) fn led_here(&self) -> bool {
        LEADING_HERE.with(|l| core::ptr::eq(l.get(), self))
    }

    /// In a forked child: no leader exists any more (unless the forking thread itself leads,
    /// forking from a stall handler: it goes on leading in the child) and nobody sleeps.
    pub(crate) fn reset_after_fork(&self) {
        if !self.led_here() {
            // Relaxed: the child has a single thread.
            self.leader.store(0, Ordering::Relaxed);
        }
        self.done.reset_after_fork();
    }
}

thread_local! {
    /// The grace periods the calling thread leads right now (null: none), for a fork child's
    /// repair (`reset_after_fork`). A thread leads one domain at a time, except for a
    /// `poll` nested in a stall handler: `Leading` restores the outer one.
    static LEADING_HERE: Cell<*const GracePeriods> = const { Cell::new(core::ptr::null()) };
}

/// The leader's role, given up on drop (return or unwind).
struct Leading<'a> {
    gp: &'a GracePeriods,
    /// What `LEADING_HERE` held before.
    outer: *const GracePeriods,
}

impl<'a> Leading<'a> {
    /// Caller: has just won the leader's role of `gp`.
    fn new(gp: &'a GracePeriods) -> Self {
        Leading { gp, outer: LEADING_HERE.with(|l| l.replace(gp)) }
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        LEADING_HERE.with(|l| l.set(self.outer));
        self.gp.stop_leading();
    }
}

/// Waits until `slot` no longer holds up grace period `gp`, reporting stalls.
fn wait_for_reader<H: GpHost + ?Sized>(
    domain: &H,
    slot: &Slot,
    gp: u64,
    start: Instant,
    clock: &mut StallClock,
    urgency: Urgency,
) {
    let cause = match domain.readers().flavor() {
        ReaderFlavor::Qsbr => StallCause::QsbrOnline,
        _ => StallCause::ReadSection,
    };
    let waiting = ReaderWait { slot, gp, start, cause };
    waiting.until(domain, clock, urgency.max_sleep(), || !slot.word.blocks(gp));
}

/// Waits until the sleepable sections counted on `index` in `slot` are over (scan 1 or 2 of
/// grace period `gp`), reporting stalls.
fn wait_for_srcu_reader<H: GpHost + ?Sized>(
    domain: &H,
    slot: &Slot,
    index: usize,
    gp: u64,
    start: Instant,
    clock: &mut StallClock,
    urgency: Urgency,
) {
    let waiting = ReaderWait { slot, gp, start, cause: StallCause::SleepableSection };
    waiting.until(domain, clock, urgency.max_sleep_srcu(), || drained([&slot.srcu], index));
}

/// A grace period waiting for one slot's readers.
struct ReaderWait<'a> {
    slot: &'a Slot,
    gp: u64,
    /// When the grace period began waiting (stall reports count from it).
    start: Instant,
    cause: StallCause,
}

impl ReaderWait<'_> {
    /// Spins, then naps in growing steps up to `max_sleep`, until `done`; reports stalls.
    fn until<H: GpHost + ?Sized>(
        &self,
        domain: &H,
        clock: &mut StallClock,
        max_sleep: Duration,
        done: impl Fn() -> bool,
    ) {
        if done() {
            return;
        }
        let backoff = Backoff::new();
        let mut sleep = Duration::from_micros(1);
        while !done() {
            if !backoff.is_completed() {
                backoff.snooze();
            } else {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(max_sleep);
            }
            let elapsed = self.start.elapsed();
            if clock.due(elapsed) {
                Counters::bump(&domain.counters().stalls);
                let panicked = domain.stall_sink().report(&StallReport {
                    domain: domain.name().to_owned(),
                    thread_name: self.slot.name(),
                    tid: self.slot.tid(),
                    blocked_for: elapsed,
                    gp_seq: self.gp,
                    pending_callbacks: domain.pending_callbacks(),
                    leaked_guard: self.slot.is_abandoned(),
                    cause: self.cause,
                });
                if panicked {
                    Counters::bump(&domain.counters().contained_panics);
                }
            }
        }
    }
}
