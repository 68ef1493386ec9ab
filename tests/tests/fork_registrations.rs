//! Issue 21, family 4 (DESIGN §5: RCU works after `fork()` in the child): fork keeps every
//! registration. Futures and their wakers, stall handlers and shrinkers registered before the
//! fork work in the child, and a domain made before the fork and dropped in the child stops
//! its threads there.
//!
//! - Defect 3: a future polled before the fork was never woken in the child: the child
//!   handler dropped every waker registration while the future believed itself registered
//!   (a poll with an unchanged waker does not register again), so an executor that waits for
//!   its waker waited for ever, although the grace period completed in the child.
//! - Defect 5: a domain dropped in a child kept its worker for ever: the child's domain state
//!   still counted the references of the parent's worker and refill threads, which do not
//!   exist in the child, so the restarted worker never found itself holding the last one.
//!
//! Each test forks once, in a child that reports through its exit status and a line written
//! straight to fd 2 (`rcu_tests::fork`), under a watchdog. The tests run one at a time, each
//! on a thread of its own that is joined before the next starts ([`run_serially`]): a fork
//! happens while only this test's threads (and the runtime's) run.
#![cfg(not(loom))]

mod common;
#[path = "common/failing_alloc.rs"]
mod failing_alloc;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{gettid, thread_names, wait_until, ReaderThread, PATIENCE};
use failing_alloc::{failing_blocks, FailBlocks};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Shrinker, StallReport};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::SpinLock;

/// A child that takes longer than this has hung. Above the sum of the child's own bounds
/// that one failure can follow, so that a failing child's message is seen.
const WATCHDOG: Duration = Duration::from_secs(90);
/// Bound on one wait inside a child for something that must happen: a watchdog meaning
/// hung, not a speed target.
const CHILD_PATIENCE: Duration = Duration::from_secs(30);
/// Bound on how long a dropped domain's threads may take to exit (normally milliseconds: a
/// stopping worker re-checks every 50 ms).
const EXIT_PATIENCE: Duration = Duration::from_secs(20);

/// Fails the child with a message.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs a test's body on a thread of its own, one test at a time, and joins that thread
/// before the next test may start (its exit, which hands its staged blocks to the workers,
/// must not overlap another test's fork).
fn run_serially(body: impl FnOnce() + Send + 'static) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let thread = std::thread::Builder::new().name("fk-test".into()).spawn(body);
    if let Err(panic) = thread.expect("spawn a test thread").join() {
        std::panic::resume_unwind(panic);
    }
}

/// Forks; the child runs `body`, whose error is written to fd 2. Fails the test unless the
/// child exits successfully within `WATCHDOG`.
///
/// Caller's promise (as `run_in_child`'s): `body` uses only rcu-core, allocation, atomics,
/// `/proc` and `raw_eprint`, and no reference another thread loaded under its read guard.
#[track_caller]
fn in_child(what: &str, body: impl FnOnce() -> Result<(), String>) {
    // SAFETY: (1) `body` does only what a child of a multi-threaded process may (the callers'
    // promise above: no std lock another thread may hold, no thread spawned); (2) neither
    // does it use another thread's references.
    let end = unsafe {
        run_in_child(WATCHDOG, || match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(())) => 0,
            Ok(Err(msg)) => {
                raw_eprint(&format!("fork child ({what}): {msg}\n"));
                1
            }
            Err(_) => {
                raw_eprint(&format!("fork child ({what}): panicked\n"));
                2
            }
        })
    };
    assert_eq!(end, ChildEnd::Exited(0), "the forked child ({what}) failed (see its message)");
}

/// Waits (at most `timeout`) until `cond` holds; true if it did.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

// ---------------------------------------------------------------------------------------
// Futures and wakers.

/// A waker that counts its wakes and unparks the thread that made it. SeqCst (both): test
/// bookkeeping shared with the worker that wakes it.
struct Flag {
    wakes: AtomicUsize,
    /// Wakes run on a domain's worker thread (`rcu-gp-*`).
    wakes_on_worker: AtomicUsize,
    woken: AtomicBool,
    thread: std::thread::Thread,
}

/// True on a domain's worker thread (named `rcu-gp-<domain>`). No allocation: a waker may run
/// in a fork child.
fn on_a_worker() -> bool {
    let mut name = [0u8; 16];
    rcu_sys::thread_name(&mut name);
    name.starts_with(b"rcu-gp-")
}

impl Flag {
    fn new() -> Arc<Flag> {
        Arc::new(Flag {
            wakes: AtomicUsize::new(0),
            wakes_on_worker: AtomicUsize::new(0),
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        })
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if on_a_worker() {
            self.wakes_on_worker.fetch_add(1, Ordering::SeqCst);
        }
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

type Fut = Box<dyn Future<Output = ()> + Send + Unpin>;

/// A future with the waker it is always polled with, as one task of an executor.
struct Task {
    what: String,
    fut: Fut,
    flag: Arc<Flag>,
    waker: Waker,
}

impl Task {
    /// Makes the task and polls it once: it must be pending (a reader holds what it waits for).
    fn pending(what: impl Into<String>, fut: Fut) -> Task {
        let flag = Flag::new();
        let waker = Waker::from(flag.clone());
        let mut task = Task { what: what.into(), fut, flag, waker };
        assert!(task.poll().is_pending(), "{}: ready although a reader holds it", task.what);
        task
    }

    fn poll(&mut self) -> Poll<()> {
        self.flag.woken.store(false, Ordering::SeqCst);
        Pin::new(&mut self.fut).poll(&mut TaskContext::from_waker(&self.waker))
    }

    /// Runs the task as an executor that polls only when woken: waits for a wake (at most
    /// `timeout` in all), polls, until ready. `Err` names what never came.
    fn run_to_completion(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            while !self.flag.woken.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "{}: its waker was never woken ({} wakes in {timeout:?})",
                        self.what,
                        self.flag.wakes()
                    ));
                }
                std::thread::park_timeout(left);
            }
            if self.poll().is_ready() {
                return Ok(());
            }
        }
    }
}

/// A `synchronize_rcu_async` and an `rcu_barrier_async` future of `domain`, each polled once
/// (pending: a reader holds the grace period; a free queued first makes the barrier's batch
/// need one).
fn two_tasks(domain: &Domain, ctx: &Sleepable, who: &str) -> [Task; 2] {
    let gp = Task::pending(
        format!("{who} synchronize_rcu_async of '{}'", domain.name()),
        Box::new(domain.synchronize_rcu_async()),
    );
    domain.kvfree_rcu(ctx, Rcu::boxed(0u64));
    let barrier = Task::pending(
        format!("{who} rcu_barrier_async of '{}'", domain.name()),
        Box::new(domain.rcu_barrier_async()),
    );
    [gp, barrier]
}

/// Defect 3, and wakers of other threads' futures: the forking thread and an executor thread
/// each poll a `synchronize_rcu_async` and an `rcu_barrier_async` future of the global and a
/// private domain while readers hold their grace periods. In the child (where the readers and
/// the executor thread do not exist), every registration is woken once its target is
/// reached, so the forking thread's futures complete with the wakers they were polled with,
/// and none of those wakers (the executor thread's included: its executor does not exist in
/// the child) runs on a worker, where one that takes a lock a dead thread held would wedge it
/// (`red21_fork_wakes_dead_executor.rs`, `red3_fork_kept_waker_wedges.rs`). In the parent,
/// all of them complete once the readers leave.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn futures_polled_before_fork_are_woken_in_the_child() {
    run_serially(|| {
        let domain = Arc::new(Domain::new(DomainConfig::new().name("fk-futures")));
        let ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        Domain::global().register_current_thread(&ctx);
        let mut readers = [
            ReaderThread::spawn(Domain::global(), "fk-greader"),
            ReaderThread::spawn(domain.clone(), "fk-reader"),
        ];
        for reader in &mut readers {
            reader.enter();
        }
        let domains: [&Domain; 2] = [Domain::global(), &domain];
        let mut mine: Vec<Task> =
            domains.iter().flat_map(|d| two_tasks(d, &ctx, "the forking thread's")).collect();

        // The executor thread: polls its futures before the fork, finishes them after.
        let (polled_tx, polled) = mpsc::channel();
        let (finish_tx, finish) = mpsc::channel::<()>();
        let executor = std::thread::Builder::new()
            .name("fk-executor".into())
            .spawn({
                let domain = domain.clone();
                move || {
                    let ctx = Sleepable::enter();
                    let domains: [&Domain; 2] = [Domain::global(), &domain];
                    let mut tasks: Vec<Task> =
                        domains.iter().flat_map(|d| two_tasks(d, &ctx, "the executor's")).collect();
                    polled_tx
                        .send(tasks.iter().map(|t| t.flag.clone()).collect::<Vec<_>>())
                        .unwrap();
                    drop(ctx);
                    let _ = finish.recv();
                    tasks.iter_mut().try_for_each(|t| t.run_to_completion(PATIENCE))
                }
            })
            .expect("spawn the executor");
        let theirs: Vec<Arc<Flag>> = polled.recv_timeout(PATIENCE).expect("the executor polled");

        in_child("futures polled before the fork", || {
            for task in &mut mine {
                task.run_to_completion(CHILD_PATIENCE)?;
            }
            // The executor thread does not exist here, nor does its executor; its targets
            // were asked for before the fork, so its wakes come too (a wake is never lost),
            // on a thread of their own.
            let deadline = Instant::now() + CHILD_PATIENCE;
            for (i, flag) in theirs.iter().enumerate() {
                while !flag.woken.load(Ordering::SeqCst) {
                    check!(
                        Instant::now() < deadline,
                        "the executor thread's waker {i} (registered before the fork) was never \
                         run in the child ({CHILD_PATIENCE:?})"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            for (i, flag) in theirs.iter().chain(mine.iter().map(|t| &t.flag)).enumerate() {
                check!(
                    flag.wakes_on_worker.load(Ordering::SeqCst) == 0,
                    "waker {i}, registered before the fork, was run on the child's worker"
                );
            }
            Ok(())
        });

        // The parent: everything completes once the readers leave.
        for reader in &mut readers {
            reader.exit();
        }
        for task in &mut mine {
            task.run_to_completion(PATIENCE).expect("the forking thread's futures in the parent");
        }
        finish_tx.send(()).unwrap();
        executor.join().expect("the executor").expect("the executor's futures in the parent");
    });
}

/// A barrier future whose collection the parent's worker had made (and held, waiting for a
/// reader's grace period) when the process forked: the child has lost that batch (the
/// parent's worker held it), and its worker must still complete the barrier's generation.
/// With a batch delay of "never", nothing but a barrier or the budget makes the child's worker
/// collect again, so the future's own request must.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_barrier_future_whose_batch_the_parent_worker_held_completes_in_the_child() {
    static HELD: AtomicUsize = AtomicUsize::new(0);
    run_serially(|| {
        let domain = Arc::new(Domain::new(
            DomainConfig::new()
                .name("fk-lost")
                .batch_delay(Duration::MAX)
                .stall_timeout(Duration::from_millis(50)),
        ));
        // A stall report names the reader while the worker leads the grace period of the
        // barrier's batch: the collection has been made, and the worker holds the batch.
        HELD.store(0, Ordering::SeqCst);
        domain.set_stall_handler(Some(Arc::new(|_: &StallReport| {
            // SeqCst: read by the test.
            HELD.fetch_add(1, Ordering::SeqCst);
        })));
        let ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        let mut reader = ReaderThread::spawn(domain.clone(), "fk-reader");
        reader.enter();
        domain.kvfree_rcu(&ctx, Rcu::boxed(0u64));
        let mut task =
            Task::pending("an rcu_barrier_async future", Box::new(domain.rcu_barrier_async()));
        assert!(
            wait_until(PATIENCE, || HELD.load(Ordering::SeqCst) > 0),
            "the worker never waited for the barrier's batch's grace period"
        );
        in_child("a barrier future whose batch the parent's worker held", || {
            task.run_to_completion(CHILD_PATIENCE)
        });
        reader.exit();
        domain.set_stall_handler(None);
        domain.rcu_barrier(&ctx);
    });
}

// ---------------------------------------------------------------------------------------
// Stall handlers.

/// The reader thread (tid, name) each stall report seen by the handlers set before the fork
/// named. (A `SpinLock`: only the reporting worker and the test thread take it, never across
/// the fork, since nothing stalls in the parent.)
static REPORTED: SpinLock<Vec<(i32, Option<String>)>> = SpinLock::new(Vec::new());

/// Sets stall handlers (and a short stall timeout) on the global domain and a private one,
/// then forks: in the child, the child's own thread holds a grace period of each domain that
/// the child's worker leads, and `expect` checks the report the handler set before the fork
/// receives (the reader's tid and name; `expect` is given the child's tid too).
fn stall_reports_in_a_child(
    what: &str,
    expect: impl Fn(&Domain, (i32, Option<String>), i32) -> Result<(), String>,
) {
    let timeout = Duration::from_millis(50);
    let domain = Domain::new(DomainConfig::new().name("fk-stall").stall_timeout(timeout));
    let global = Domain::global();
    global.set_stall_timeout(timeout);
    let handler = || -> rcu_core::StallHandler {
        Arc::new(|report: &StallReport| {
            let seen = (report.tid, report.thread_name.clone());
            REPORTED.with(|r| r.push(seen));
        })
    };
    domain.set_stall_handler(Some(handler()));
    global.set_stall_handler(Some(handler()));
    let mut ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    global.register_current_thread(&ctx);
    // Both workers run (they are restarted in the child).
    global.rcu_barrier(&ctx);

    in_child(what, || {
        for d in [global, &domain] {
            let before = REPORTED.with(|r| r.len());
            let guard = d.read_lock(&mut ctx);
            let cookie = d.start_poll(guard.ctx());
            let reported = wait_for(CHILD_PATIENCE, || REPORTED.with(|r| r.len()) > before);
            drop(guard);
            check!(
                reported,
                "'{}': no stall report reached the handler set before the fork",
                d.name()
            );
            let report = REPORTED.with(|r| r[before].clone());
            expect(d, report, gettid())?;
            check!(wait_for(CHILD_PATIENCE, || d.poll(cookie)), "'{}': no grace period", d.name());
        }
        Ok(())
    });
    global.set_stall_handler(None);
    global.set_stall_timeout(Duration::from_secs(21));
}

/// Stall handlers (and stall timeouts) set before the fork report in the child, naming the
/// child's thread that holds the grace period up.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn stall_handlers_set_before_fork_report_in_the_child() {
    run_serially(|| {
        stall_reports_in_a_child("stall handlers set before the fork", |d, (_, name), _| {
            check!(
                name.as_deref() == Some("fk-test"),
                "'{}': the report named thread {name:?}, not the child's 'fk-test'",
                d.name()
            );
            Ok(())
        });
    });
}

/// A stall report in the child names the blocking thread by its id in the child. At cee4677
/// it names the id the thread had in the parent: a slot records its owner's tid when it is
/// claimed, and the child handler keeps the forking thread's slot as it was.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn stall_reports_in_a_child_name_the_thread_by_its_tid_in_the_child() {
    run_serially(|| {
        stall_reports_in_a_child("the tid in a child's stall report", |d, (tid, _), me| {
            check!(tid == me, "'{}': the report named tid {tid}, not the child's {me}", d.name());
            Ok(())
        });
    });
}

// ---------------------------------------------------------------------------------------
// Shrinkers.

/// A shrinker that counts its calls. SeqCst (both): test bookkeeping.
#[derive(Default)]
struct CountingShrinker {
    counts: AtomicUsize,
    scans: AtomicUsize,
}

impl Shrinker for CountingShrinker {
    fn count(&self) -> usize {
        self.counts.fetch_add(1, Ordering::SeqCst);
        1
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        self.scans.fetch_add(1, Ordering::SeqCst);
        nr_to_scan
    }
}

/// A shrinker registered before the fork is asked in the child, when a `Sleepable` free
/// there finds the global allocator really failing (the runtime's own pools and the
/// registry's lock came through the fork too).
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn shrinkers_registered_before_fork_run_in_the_child() {
    run_serially(|| {
        let shrinker = Arc::new(CountingShrinker::default());
        let handle = rcu_core::register_shrinker(shrinker.clone());
        let domain = Domain::new(DomainConfig::new().name("fk-shrink").alloc(failing_blocks()));
        let ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);

        in_child("shrinkers registered before the fork", || {
            let before = domain.alloc_stats();
            let freed = Arc::new(AtomicBool::new(false));
            let flag = freed.clone();
            {
                let _fail = FailBlocks::on();
                // SeqCst: checked after rcu_barrier.
                domain.call_rcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
            }
            let after = domain.alloc_stats();
            check!(
                after.alloc_failures_real > before.alloc_failures_real,
                "the allocator did not fail: {after:?}"
            );
            check!(after.shrinker_calls > before.shrinker_calls, "no shrinker ran: {after:?}");
            let (counts, scans) =
                (shrinker.counts.load(Ordering::SeqCst), shrinker.scans.load(Ordering::SeqCst));
            check!(counts > 0 && scans > 0, "the shrinker was not asked ({counts}, {scans})");
            domain.rcu_barrier(&ctx);
            check!(freed.load(Ordering::SeqCst), "the callback queued meanwhile never ran");
            Ok(())
        });
        drop(handle);
    });
}

// ---------------------------------------------------------------------------------------
// Dropped domains.

/// The names of `domain_name`'s threads (as the kernel shows them: 15 bytes at most).
fn threads_of(domain_name: &str) -> [String; 2] {
    [format!("rcu-gp-{domain_name}"), format!("rcu-refill-{domain_name}")]
        .map(|name| name[..name.len().min(15)].to_owned())
}

/// Which of `threads` still run in this process.
fn still_running(threads: &[String]) -> Vec<String> {
    let names = thread_names();
    threads.iter().filter(|t| names.contains(t)).cloned().collect()
}

/// Defect 5: a domain made and used before the fork, dropped in the child, stops its
/// (restarted) worker and refill threads there, as a never-forked domain does (the control)
/// and as the parent's copy does when dropped in the parent.
#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_domain_dropped_in_a_child_stops_its_threads() {
    run_serially(|| {
        let ctx = Sleepable::enter();
        // The control: never forked. Its threads end once it is dropped.
        let control = Domain::new(DomainConfig::new().name("fk-ctl"));
        control.kvfree_rcu(&ctx, Rcu::boxed(1u64));
        control.rcu_barrier(&ctx);
        let control_threads = threads_of("fk-ctl");
        assert!(
            wait_until(PATIENCE, || still_running(&control_threads).len() == 2),
            "the control's threads never ran: {:?}",
            thread_names()
        );
        drop(control);
        assert!(
            wait_until(EXIT_PATIENCE, || still_running(&control_threads).is_empty()),
            "a dropped, never-forked domain's threads still run: {:?}",
            still_running(&control_threads)
        );

        let domain = Domain::new(DomainConfig::new().name("fk-drop"));
        domain.kvfree_rcu(&ctx, Rcu::boxed(2u64));
        domain.rcu_barrier(&ctx);
        let threads = threads_of("fk-drop");
        assert!(
            wait_until(PATIENCE, || still_running(&threads).len() == 2),
            "the domain's threads never ran: {:?}",
            thread_names()
        );
        // The child drops the domain it got through the fork; the parent drops its own when
        // `in_child` returns (the closure owning it is dropped unrun in the parent).
        in_child("a domain dropped in the child", move || {
            check!(
                wait_for(CHILD_PATIENCE, || still_running(&threads).len() == 2),
                "the child did not restart the domain's threads: {:?}",
                thread_names()
            );
            domain.kvfree_rcu(&ctx, Rcu::boxed(3u64));
            drop(domain);
            check!(
                wait_for(EXIT_PATIENCE, || still_running(&threads).is_empty()),
                "{EXIT_PATIENCE:?} after the child dropped the domain its threads still run: \
                 {:?}",
                still_running(&threads)
            );
            Ok(())
        });
        let threads = threads_of("fk-drop");
        assert!(
            wait_until(EXIT_PATIENCE, || still_running(&threads).is_empty()),
            "the parent's copy of the domain, dropped, still runs threads: {:?}",
            still_running(&threads)
        );
    });
}
