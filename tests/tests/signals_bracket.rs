//! Issue 21, defect 4, and family 3 (DESIGN §5.1: no wait on a runtime thread spins without
//! bound; a long one is reported, naming the thread and what it waits for).
//!
//! A signal handler that interrupts a thread inside a staging bracket (the few instructions
//! that queue a deferred free into its block), outside any read section, and then blocks,
//! holds up every collection of the domain, and so every `rcu_barrier`: a collection waits
//! for each bracket open at its heavy barrier to close. That wait must sleep (after a short
//! spin), not spin, and once it passes the domain's stall timeout it must be reported through
//! the domain's stall handler as `StallCause::StagingBracket`, naming the interrupted thread.
//! At 1acacce it spun in `Staging::wait_quiescent` (a `Backoff` that never sleeps) and
//! reported nothing. And a handler that calls `rcu_barrier` after interrupting a bracket can
//! only deadlock (the barrier's collection waits for that bracket, which cannot close before
//! the handler returns): the call must panic naming the rule instead.
//!
//! # Landing in a bracket
//! A target thread frees in a loop with a `Sleepable` token; another thread sends it
//! `SIGUSR1` until the handler finds itself inside a bracket. The handler knows it the way
//! the runtime does: it frees one pre-allocated object with `Atomic::assume()`, and a free
//! that finds the thread's bracket open falls back, counted as
//! `FallbackReason::Reentrant`. It also requires that the interrupted code was in no atomic
//! or no-reclaim scope (brackets that run callbacks inline run in one), so that a barrier's
//! own checks are the ones that answer.
//!
//! Reading the statistics (and panicking) allocates, which a handler may do only if it did not
//! interrupt the allocator: this binary's global allocator marks the thread while inside
//! `malloc`/`free` ([`MarkingAlloc`]), and the handler does nothing when it interrupted one.
//! (A bracket itself never allocates: every landing is outside the allocator.)
//!
//! How many signals a landing takes depends on the scheduler; the sender goes on until one
//! lands, bounded by [`LAND_LIMIT`]. Alone in its file: the handler and its statics are
//! process-wide.
#![cfg(not(loom))]
// ThreadSanitizer defers signals to its own safe points (a handler would never land inside a
// bracket) and reports the handler's allocations.
#![cfg(not(rcu_sanitizer = "thread"))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use common::{gettid, wait_until, Pending, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{thread_state, DomainConfig, FallbackReason, Policy, StallCause, StallReport};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::SpinLock;

/// The stall timeout of the domains here.
const STALL_TIMEOUT: Duration = Duration::from_millis(100);
/// Bound on the signal storm until a handler lands in a bracket. A landing takes a few
/// hundred signals at most on a quiet machine; a loaded one delivers them more slowly.
const LAND_LIMIT: Duration = Duration::from_secs(60);
/// Bound on how long a handler blocks (it is released long before, unless the test failed):
/// above the test's own waits while it blocks (`PATIENCE` each), so that they fail first.
const HANDLER_BOUND: Duration = Duration::from_secs(150);
/// How long the test watches the waiting worker's CPU time.
const WATCH: Duration = Duration::from_secs(1);
/// Objects the handler may free, one per run.
const PROBES: usize = 100_000;

// ---------------------------------------------------------------------------------------
// The allocator mark.

thread_local! {
    /// Nonzero while this thread is inside the global allocator.
    static IN_ALLOCATOR: Cell<u32> = const { Cell::new(0) };
}

/// `System`, with the calling thread marked while inside it (see the module docs).
struct MarkingAlloc;

/// Marks the thread for the guard's life.
struct Mark;

impl Mark {
    fn enter() -> Mark {
        let _ = IN_ALLOCATOR.try_with(|n| n.set(n.get() + 1));
        // SeqCst compiler fence: the mark is set before the allocator runs, as a signal
        // handler on this thread sees it (a compiler fence orders with handlers).
        compiler_fence(Ordering::SeqCst);
        Mark
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        // SeqCst compiler fence: as in `enter`, the other way round.
        compiler_fence(Ordering::SeqCst);
        let _ = IN_ALLOCATOR.try_with(|n| n.set(n.get() - 1));
    }
}

// SAFETY: forwards every call to `System` unchanged; the mark only touches a thread-local
// `Cell` without destructor.
unsafe impl GlobalAlloc for MarkingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _mark = Mark::enter();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _mark = Mark::enter();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _mark = Mark::enter();
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _mark = Mark::enter();
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: MarkingAlloc = MarkingAlloc;

// ---------------------------------------------------------------------------------------
// The handler and its statics. SeqCst everywhere: test bookkeeping shared between the
// handler, the sender and the test, where the simplest order is the clearest.

/// What the handler does once it finds itself in a bracket.
const OFF: u8 = 0;
/// Block until `RELEASE` (at most `HANDLER_BOUND`).
const BLOCK: u8 = 1;
/// Call `rcu_barrier` of the domain, catching its panic.
const BARRIER: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(OFF);
/// The domain the handler frees into; null: the handler does nothing.
static DOMAIN: AtomicPtr<Domain> = AtomicPtr::new(ptr::null_mut());
static PROBE: [AtomicPtr<Rcu<Tracked>>; PROBES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; PROBES];
static NEXT_PROBE: AtomicUsize = AtomicUsize::new(0);

/// Handler runs, and those that interrupted the allocator (and did nothing).
static RUNS: AtomicU64 = AtomicU64::new(0);
static IN_ALLOCATOR_RUNS: AtomicU64 = AtomicU64::new(0);
/// Runs that found the bracket open, and those of them inside an atomic or no-reclaim scope.
static IN_BRACKET_RUNS: AtomicU64 = AtomicU64::new(0);
static IN_SCOPE_RUNS: AtomicU64 = AtomicU64::new(0);
/// Set by the run that acted (`MODE` was not `OFF`); `LANDED_TID` is its thread.
static LANDED: AtomicBool = AtomicBool::new(false);
static LANDED_TID: AtomicI32 = AtomicI32::new(0);
/// `BLOCK`: the test lets the handler return.
static RELEASE: AtomicBool = AtomicBool::new(false);
static HANDLER_TIMED_OUT: AtomicBool = AtomicBool::new(false);
/// Set when the acting run returns.
static HANDLER_RETURNED: AtomicBool = AtomicBool::new(false);
/// `BARRIER`: `Some(None)` if `rcu_barrier` returned, `Some(Some(message))` if it panicked.
static BARRIER_OUTCOME: SpinLock<Option<Option<String>>> = SpinLock::new(None);

extern "C" fn on_sigusr1(_signal: libc::c_int) {
    // Saved and restored: the interrupted code must not see the handler's syscalls change it.
    let errno = rcu_tests::errno::get();
    handle();
    rcu_tests::errno::set(errno);
}

fn handle() {
    RUNS.fetch_add(1, Ordering::SeqCst);
    let mode = MODE.load(Ordering::SeqCst);
    if mode == OFF {
        return;
    }
    if IN_ALLOCATOR.with(Cell::get) != 0 {
        IN_ALLOCATOR_RUNS.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let domain = DOMAIN.load(Ordering::SeqCst);
    if domain.is_null() {
        return;
    }
    // SAFETY: the test clears DOMAIN (and stops the sender) before the domain goes away, and
    // the handler runs only on the target thread (pthread_kill), which the test joins first.
    let domain = unsafe { &*domain };
    let i = NEXT_PROBE.fetch_add(1, Ordering::SeqCst);
    let Some(slot) = PROBE.get(i) else { return };
    let probe = slot.swap(ptr::null_mut(), Ordering::SeqCst);
    if probe.is_null() {
        return;
    }
    // SAFETY: from `Box::into_raw` in `fill_probes`, taken once (swapped out).
    let probe = unsafe { Box::from_raw(probe) };
    // Not inside the allocator (checked above): reading the statistics may allocate.
    let before = reentrant_fallbacks(domain);
    {
        // SAFETY: (1) dropped at the end of this block, before the handler returns; (2) no
        // scope is opened meanwhile.
        let ctx = unsafe { Atomic::assume() };
        domain.kvfree_rcu(&ctx, probe);
    }
    if reentrant_fallbacks(domain) == before {
        return; // the bracket was closed
    }
    IN_BRACKET_RUNS.fetch_add(1, Ordering::SeqCst);
    if !thread_state::snapshot().may_reclaim() {
        IN_SCOPE_RUNS.fetch_add(1, Ordering::SeqCst);
        return;
    }
    // The first landing acts; later signals find MODE off.
    if MODE.compare_exchange(mode, OFF, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        return;
    }
    LANDED_TID.store(gettid(), Ordering::SeqCst);
    LANDED.store(true, Ordering::SeqCst);
    match mode {
        BLOCK => {
            let start = Instant::now();
            while !RELEASE.load(Ordering::SeqCst) {
                if start.elapsed() > HANDLER_BOUND {
                    HANDLER_TIMED_OUT.store(true, Ordering::SeqCst);
                    break;
                }
                let nap = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
                // SAFETY: nanosleep is async-signal-safe; `nap` is a valid timespec.
                unsafe { libc::nanosleep(&nap, ptr::null_mut()) };
            }
        }
        _ => {
            let refused = "called from a signal handler that interrupted";
            let outcome = rcu_tests::quiet::expect_panic_quietly(refused, || {
                let ctx = Sleepable::enter();
                domain.rcu_barrier(&ctx);
            });
            let outcome = outcome.err().map(|payload| message_of(&*payload));
            BARRIER_OUTCOME.with(|o| *o = Some(outcome));
        }
    }
    HANDLER_RETURNED.store(true, Ordering::SeqCst);
}

fn reentrant_fallbacks(domain: &Domain) -> u64 {
    domain.alloc_stats().fallbacks_of(Policy::NoWait, FallbackReason::Reentrant)
}

fn message_of(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Installs the handler (once), and the panic hook and report sink that keep the provoked
/// panics and their reports out of the output; one test at a time, as the statics are shared.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        rcu_tests::quiet::quiet_payloads(|payload| payload.is::<PanickyPayload>());
        rcu_tests::quiet::quiet_reports("the stall handler of domain 'sb-panic' panicked");
        rcu_tests::install_signal_handler(libc::SIGUSR1, on_sigusr1);
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fills the probe pool with fresh tracked objects and resets the handler's statics.
fn arm(domain: &Domain, mode: u8, log: &'static DropLog) {
    for slot in &PROBE {
        let old = slot.swap(Box::into_raw(Rcu::boxed(log.track())), Ordering::SeqCst);
        assert!(old.is_null());
    }
    NEXT_PROBE.store(0, Ordering::SeqCst);
    for counter in [&RUNS, &IN_ALLOCATOR_RUNS, &IN_BRACKET_RUNS, &IN_SCOPE_RUNS] {
        counter.store(0, Ordering::SeqCst);
    }
    for flag in [&LANDED, &RELEASE, &HANDLER_TIMED_OUT, &HANDLER_RETURNED] {
        flag.store(false, Ordering::SeqCst);
    }
    BARRIER_OUTCOME.with(|o| *o = None);
    DOMAIN.store(domain as *const Domain as *mut Domain, Ordering::SeqCst);
    MODE.store(mode, Ordering::SeqCst);
}

/// Turns the handler off and takes back (drops) the probes it did not use.
fn disarm() {
    MODE.store(OFF, Ordering::SeqCst);
    DOMAIN.store(ptr::null_mut(), Ordering::SeqCst);
    for slot in &PROBE {
        let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: from `Box::into_raw` in `arm`, never freed (swapped out once).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// What the handler's statistics say, for messages.
fn handler_stats() -> String {
    format!(
        "{} handler runs: {} interrupted the allocator, {} found a bracket open ({} of them \
         inside a scope)",
        RUNS.load(Ordering::SeqCst),
        IN_ALLOCATOR_RUNS.load(Ordering::SeqCst),
        IN_BRACKET_RUNS.load(Ordering::SeqCst),
        IN_SCOPE_RUNS.load(Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------------------------------
// The target and the sender.

/// A thread that frees with a `Sleepable` token in a loop until stopped, and a thread that
/// sends it `SIGUSR1` until a handler run acts (or `LAND_LIMIT`). The sender is stopped and
/// joined before the target is told to stop, so it never signals a thread that has ended.
struct Storm {
    stop_sender: Arc<AtomicBool>,
    stop_target: Arc<AtomicBool>,
    target: Option<std::thread::JoinHandle<u64>>,
    sender: Option<std::thread::JoinHandle<u64>>,
    target_tid: i32,
}

impl Storm {
    fn start(domain: &Arc<Domain>, name: &str) -> Storm {
        let (stop_sender, stop_target) = (Arc::default(), Arc::<AtomicBool>::default());
        let (ready_tx, ready) = mpsc::channel();
        let target = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn({
                let (domain, stop) = (domain.clone(), stop_target.clone());
                move || {
                    let ctx = Sleepable::enter();
                    // The handler's `Atomic` free must find the thread registered.
                    domain.register_current_thread(&ctx);
                    // SAFETY: pthread_self has no preconditions.
                    ready_tx.send((gettid(), unsafe { libc::pthread_self() })).unwrap();
                    let mut freed = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        domain.kvfree_rcu(&ctx, Rcu::boxed(freed));
                        freed += 1;
                    }
                    freed
                }
            })
            .expect("spawn the target thread");
        let (target_tid, pthread) = ready.recv_timeout(PATIENCE).expect("the target started");
        let sender = std::thread::Builder::new()
            .name("sb-sender".into())
            .spawn({
                let stop: Arc<AtomicBool> = Arc::clone(&stop_sender);
                move || {
                    let start = Instant::now();
                    let mut sent = 0u64;
                    while !LANDED.load(Ordering::SeqCst)
                        && !stop.load(Ordering::SeqCst)
                        && start.elapsed() < LAND_LIMIT
                    {
                        // SAFETY: `pthread` is the target thread, which is told to stop only
                        // after this thread was joined (`Storm::finish`, `Storm::drop`).
                        let rc = unsafe { libc::pthread_kill(pthread, libc::SIGUSR1) };
                        assert_eq!(rc, 0);
                        sent += 1;
                        // Let the handler run before the next signal (a signal sent while
                        // one is pending is merged with it), without giving up the CPU.
                        let runs = RUNS.load(Ordering::SeqCst);
                        let spin = Instant::now();
                        while RUNS.load(Ordering::SeqCst) == runs
                            && spin.elapsed() < Duration::from_micros(50)
                        {
                            std::hint::spin_loop();
                        }
                        if RUNS.load(Ordering::SeqCst) == runs {
                            std::thread::yield_now();
                        }
                    }
                    sent
                }
            })
            .expect("spawn the sender");
        Storm { stop_sender, stop_target, target: Some(target), sender: Some(sender), target_tid }
    }

    /// Stops the sender, then the target (after its handler returned); returns (signals sent,
    /// frees the target made).
    fn finish(mut self) -> (u64, u64) {
        self.stop_sender.store(true, Ordering::SeqCst);
        let sent = self.sender.take().expect("running").join().expect("the sender");
        self.stop_target.store(true, Ordering::SeqCst);
        let freed = self.target.take().expect("running").join().expect("the target");
        (sent, freed)
    }
}

impl Drop for Storm {
    /// A failing test: lets the handler and both threads end (the sender joined first, so
    /// that nothing signals a thread that has gone). A target stuck in its handler (the
    /// deadlock a failing test found) is left behind rather than joined: the test fails
    /// instead of hanging.
    fn drop(&mut self) {
        RELEASE.store(true, Ordering::SeqCst);
        self.stop_sender.store(true, Ordering::SeqCst);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        self.stop_target.store(true, Ordering::SeqCst);
        if let Some(target) = self.target.take() {
            if wait_until(PATIENCE, || target.is_finished()) {
                let _ = target.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// CPU time.

/// The CPU time thread `tid` of this process has used: `/proc/self/task/TID/schedstat`'s
/// first field (nanoseconds on the CPU, exact), or, where the kernel lacks it, `stat`'s
/// utime + stime (clock ticks).
fn cpu_time(tid: i32) -> Duration {
    let task = format!("/proc/self/task/{tid}");
    if let Ok(schedstat) = std::fs::read_to_string(format!("{task}/schedstat")) {
        if let Some(ns) = schedstat.split_whitespace().next().and_then(|n| n.parse().ok()) {
            return Duration::from_nanos(ns);
        }
    }
    let stat = std::fs::read_to_string(format!("{task}/stat")).expect("the thread's stat");
    // Fields after the command (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// The kernel thread id of this process's thread called `name` (truncated to 15 bytes).
fn task_named(name: &str) -> Option<i32> {
    let name = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim_end() == name).then(|| task.file_name().to_str()?.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Stall reports with the thread each was made on.
type Reports = Arc<SpinLock<Vec<(i32, StallReport)>>>;

/// A blocking handler inside a bracket: the collection that a concurrent `rcu_barrier` needs
/// waits for the bracket, sleeping (its CPU time over a second of it stays a fraction of the
/// second), and reports a `StagingBracket` stall naming the target thread through the
/// domain's handler. Once the handler returns, the barrier returns. With `handler_panics`,
/// the stall handler panics (its payload's drop too) on that report: contained and counted
/// (issue 22, defect 6, for this report's path), and the same holds.
fn blocked_bracket(name: &'static str, handler_panics: bool) {
    let _serial = serial();
    let domain = Arc::new(Domain::new(DomainConfig::new().name(name).stall_timeout(STALL_TIMEOUT)));
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    domain.set_stall_handler(Some(Arc::new(move |report: &StallReport| {
        sink.with(|r| r.push((gettid(), report.clone())));
        if handler_panics {
            std::panic::panic_any(PanickyPayload);
        }
    })));
    let worker = format!("rcu-gp-{name}");
    assert!(wait_until(PATIENCE, || task_named(&worker).is_some()), "no thread {worker}");
    let worker_tid = task_named(&worker).expect("checked above");
    let before = domain.stats();
    let log = DropLog::new(PROBES);
    arm(&domain, BLOCK, log);
    let storm = Storm::start(&domain, "sb-target");
    let landed = wait_until(LAND_LIMIT + PATIENCE, || LANDED.load(Ordering::SeqCst));
    assert!(landed, "no signal landed in a bracket within {LAND_LIMIT:?}: {}", handler_stats());
    assert_eq!(LANDED_TID.load(Ordering::SeqCst), storm.target_tid);

    // The target is inside its bracket, in the handler, for as long as the test wants.
    let barrier_domain = domain.clone();
    let mut barrier =
        Pending::spawn("sb-barrier", move || barrier_domain.rcu_barrier(&Sleepable::enter()));
    let cpu_before = cpu_time(worker_tid);
    let watch_start = Instant::now();
    std::thread::sleep(WATCH);
    let worker_cpu = cpu_time(worker_tid) - cpu_before;
    let watched = watch_start.elapsed();
    let staging = |r: &(i32, StallReport)| r.1.cause == StallCause::StagingBracket;
    let reported = wait_until(PATIENCE, || reports.with(|r| r.iter().any(staging)));
    let first = reports.with(|r| r.iter().find(|r| staging(r)).cloned());
    let all_reports = reports.with(|r| r.clone());
    assert!(
        reported,
        "no StagingBracket stall report within {:?} while rcu_barrier waited for a bracket \
         held open by a blocking signal handler (reports: {all_reports:?}); the worker used \
         {worker_cpu:?} of CPU in {watched:?}",
        WATCH + PATIENCE
    );
    let (reporter, report) = first.expect("checked above");
    assert!(!barrier.is_done(), "rcu_barrier returned while the bracket was open");

    // Who and what.
    assert_eq!(report.tid, storm.target_tid, "{report:?}");
    assert_eq!(report.thread_name.as_deref(), Some("sb-target"), "{report:?}");
    assert_eq!(report.domain, name);
    assert!(report.blocked_for >= STALL_TIMEOUT, "{report:?}");
    assert!(report.to_string().contains("staging bracket"), "{report}");
    assert_eq!(reporter, worker_tid, "the report was not made by the waiting worker");

    // Sleeping, not spinning. A thread that sleeps accrues CPU time only per wake-up: its
    // naps are 1 ms once it has waited a few microseconds, so at most ~1000 wake-ups a second,
    // each a system call and a few loads (microseconds, tens in a debug build on a slow
    // machine): tens of milliseconds per second at worst. Load cannot add CPU time to a
    // sleeping thread, it only delays its wake-ups; schedstat's time is exact (not sampled).
    // A spinning waiter takes whatever CPU it gets: most of the second beside CI's CPU hogs.
    assert!(
        worker_cpu * 4 <= watched,
        "the worker waiting for the bracket used {worker_cpu:?} of CPU in {watched:?}: it \
         spins instead of sleeping"
    );

    RELEASE.store(true, Ordering::SeqCst);
    barrier.join("rcu_barrier once the signal handler left the bracket");
    assert!(wait_until(PATIENCE, || HANDLER_RETURNED.load(Ordering::SeqCst)));
    assert!(!HANDLER_TIMED_OUT.load(Ordering::SeqCst), "the handler was never released");
    let (sent, freed) = storm.finish();
    let after = domain.stats();
    println!(
        "{name}: {sent} signals, {}; the target freed {freed}; the worker used {worker_cpu:?} \
         of CPU in {watched:?} waiting; first report after {:?}; {} stalls",
        handler_stats(),
        report.blocked_for,
        after.stalls - before.stalls
    );
    let reports_seen = reports.with(|r| r.len()) as u64;
    assert!(after.stalls - before.stalls >= reports_seen, "{after:?}");
    if handler_panics {
        assert!(
            after.contained_panics - before.contained_panics >= reports_seen,
            "the stall handler's panics were not counted: {after:?}"
        );
        let needle = format!("the stall handler of domain '{name}' panicked");
        let at_least = usize::from(reports_seen > 0);
        assert!(
            rcu_tests::quiet::wait_for_reports(&needle, at_least, PATIENCE),
            "the stall handler's panics were not reported"
        );
    }
    disarm();
    domain.rcu_barrier(&Sleepable::enter());
    log.assert_all_freed_once();
}

/// A stall handler's panic payload whose drop panics.
struct PanickyPayload;

impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("a stall handler's payload's drop panics (on purpose)");
    }
}

#[test]
fn a_handler_blocking_in_a_bracket_is_reported_and_waited_for_asleep() {
    blocked_bracket("sb-block", false);
}

#[test]
fn a_panicking_stall_handler_for_a_bracket_stall_is_contained() {
    blocked_bracket("sb-panic", true);
}

/// A handler that interrupted a bracket and calls `rcu_barrier` (with a root it may acquire:
/// the interrupted code was in no scope) gets a panic naming the rule at once; at 1acacce it
/// deadlocked (the barrier's collection waits for the bracket the handler interrupted).
#[test]
fn rcu_barrier_in_a_handler_that_interrupted_a_bracket_panics_naming_the_rule() {
    let _serial = serial();
    let domain = Arc::new(Domain::new(DomainConfig::new().name("sb-barrier")));
    let log = DropLog::new(PROBES);
    arm(&domain, BARRIER, log);
    let storm = Storm::start(&domain, "sb-target");
    let landed = wait_until(LAND_LIMIT + PATIENCE, || LANDED.load(Ordering::SeqCst));
    assert!(landed, "no signal landed in a bracket within {LAND_LIMIT:?}: {}", handler_stats());
    let returned = wait_until(PATIENCE, || HANDLER_RETURNED.load(Ordering::SeqCst));
    assert!(
        returned,
        "rcu_barrier called in a handler that interrupted a bracket neither returned nor \
         panicked within {PATIENCE:?}: a deadlock (its collection waits for that bracket)"
    );
    let outcome = BARRIER_OUTCOME.with(|o| o.clone()).expect("the handler recorded it");
    let message = outcome.expect("rcu_barrier returned instead of refusing the call");
    assert!(
        message.contains("rcu_barrier called from a signal handler that interrupted this thread")
            && message.contains("rule: no barrier in a signal handler")
            && message.contains("sb-barrier"),
        "{message}"
    );
    let (sent, freed) = storm.finish();
    println!("sb-barrier: {sent} signals, {}; the target freed {freed}", handler_stats());
    disarm();
    // The domain is unharmed.
    let ctx = Sleepable::enter();
    let mut barrier = Pending::spawn("sb-after", {
        let domain = domain.clone();
        move || domain.rcu_barrier(&Sleepable::enter())
    });
    assert!(barrier.wait_timeout(PATIENCE), "rcu_barrier after the refused one never returned");
    domain.rcu_barrier(&ctx);
    log.assert_all_freed_once();
}
