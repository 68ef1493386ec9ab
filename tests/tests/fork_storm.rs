//! A storm of `fork()`s while other threads read, queue deferred work with every token,
//! change stall handlers, and create and drop domains (DESIGN §5: "works after fork() in the
//! child"). Every child must finish its RCU work within a watchdog's bound:
//! - an `Atomic`-only `start_poll` completes (the child restarts the workers that ran in the
//!   parent: an `Atomic` caller cannot start one);
//! - after `rcu_barrier` nothing is pending, so the budget no longer counts batches the
//!   parent's worker held (they do not exist in the child);
//! - creating and dropping domains and setting stall handlers never blocks on a lock some
//!   parent thread held at the fork (the runtime holds its locks across `fork()`).
//!
//! Alone in its file: only this test's threads run when it forks. Under AddressSanitizer the
//! parent keeps one domain instead of churning them (`CHURN_DOMAINS`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, StallReport};
use rcu_tests::fork::{describe_threads, raw_eprint, run_in_child, ChildEnd, SharedProgress};

/// Whether the parent creates and drops a domain per round, so that forks meet domains
/// being dropped and their threads exiting. Not under AddressSanitizer: its allocator is not
/// fork-safe against a thread that exits at the fork. A thread past its sanitizer teardown
/// frees its TLS through the allocator's fallback cache, under a mutex that ASan's fork
/// handler does not hold across `fork()` (LLVM 22: `__lsan::LockAllocator` locks the size
/// classes and the secondary, not the fallback mutex). A child forked meanwhile inherits it
/// locked: its next thread exit blocks on it while holding glibc's stack-cache lock, and the
/// next `pthread_create` blocks on that (seen under gdb: 1 child in about 12,000). Every
/// other stage churns.
const CHURN_DOMAINS: bool = !cfg!(rcu_sanitizer = "address");

/// Forks in the storm. Each child takes a few milliseconds.
const FORKS: usize = 300;
/// A child that takes longer than this has hung. Above the child's own bounds, so that a
/// failing child's message is seen.
const WATCHDOG: Duration = Duration::from_secs(90);
/// Bound on one wait inside a child: a watchdog meaning hung, not a speed target.
const CHILD_PATIENCE: Duration = Duration::from_secs(30);

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > CHILD_PATIENCE {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

macro_rules! check {
    ($cond:expr, $msg:expr) => {
        if !$cond {
            return Err($msg);
        }
    };
}

fn drop_it(obj: Box<Rcu<u64>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// How far a child got (`SharedProgress`), for the report of one that hangs.
#[derive(Clone, Copy, Debug)]
enum Step {
    NotStarted = 0,
    Started,
    AtomicWorkDone,
    LoopDone,
    Synchronized,
    Expedited,
    GlobalBarrier,
    PrivateBarrier,
    StallHandlerSet,
    FreshQueued,
    FreshBarrier,
    Done,
    /// `Loop + i`: in iteration `i` of the loop of frees.
    Loop = 1_000_000,
}

impl Step {
    const ALL: [Step; 12] = [
        Step::NotStarted,
        Step::Started,
        Step::AtomicWorkDone,
        Step::LoopDone,
        Step::Synchronized,
        Step::Expedited,
        Step::GlobalBarrier,
        Step::PrivateBarrier,
        Step::StallHandlerSet,
        Step::FreshQueued,
        Step::FreshBarrier,
        Step::Done,
    ];

    /// The step a recorded value names (the last one completed, or the loop's iteration).
    fn describe(value: u64) -> String {
        if value >= Step::Loop as u64 {
            return format!("in the loop of frees, iteration {}", value - Step::Loop as u64);
        }
        Step::ALL
            .iter()
            .find(|s| **s as u64 == value)
            .map_or_else(|| format!("unknown ({value})"), |s| format!("{s:?} done"))
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        // SeqCst: a plain flag checked by the child's body.
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The child's work, in an order that tests the restart first: nothing before the `Atomic`
/// polls could have started a worker. Records its steps in `progress` (`Step`), so that a hung
/// child's report says where it stopped.
fn child_body(
    domain: &Domain,
    cell: &RcuCell<u64>,
    progress: SharedProgress,
) -> Result<(), &'static str> {
    let step = |s: Step| progress.set(s as u64);
    let mut ctx = Sleepable::enter();
    step(Step::Started);
    let freed = [Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))];
    let objects = freed.clone().map(|f| Rcu::boxed(SetOnDrop(f)));
    {
        let spin = ctx.atomic();
        let [global_obj, private_obj] = objects;
        kvfree_rcu(&spin, global_obj);
        domain.kvfree_rcu(&spin, private_obj);
        let global = start_poll(&spin);
        let private = domain.start_poll(&spin);
        check!(wait_until(|| poll(global)), "global: an Atomic start_poll never completed");
        check!(
            wait_until(|| domain.poll(private)),
            "private: an Atomic start_poll never completed"
        );
        // `poll` can complete a grace period itself; only a worker runs the frees.
        // SeqCst: as in `SetOnDrop`.
        check!(
            wait_until(|| freed[0].load(Ordering::SeqCst)),
            "global: the worker was not restarted (an Atomic kvfree_rcu never ran)"
        );
        check!(
            wait_until(|| freed[1].load(Ordering::SeqCst)),
            "private: the worker was not restarted (an Atomic kvfree_rcu never ran)"
        );
        step(Step::AtomicWorkDone);
    }
    {
        let guard = domain.read_lock(&mut ctx);
        check!(*cell.load(&guard) >= 1, "the cell's value is wrong");
    }
    for i in 0..2_000u64 {
        progress.set(Step::Loop as u64 + i);
        cell.set(&ctx, i + 1);
        domain.kvfree_rcu(&ctx, Rcu::boxed(i));
        kvfree_rcu(&ctx.no_reclaim(), Rcu::boxed(i));
        call_rcu(&ctx.atomic(), Rcu::boxed(i), drop_it);
    }
    step(Step::LoopDone);
    synchronize_rcu(&ctx);
    step(Step::Synchronized);
    domain.synchronize_rcu_expedited(&ctx);
    step(Step::Expedited);
    rcu_barrier(&ctx);
    step(Step::GlobalBarrier);
    domain.rcu_barrier(&ctx);
    step(Step::PrivateBarrier);
    check!(domain.stats().pending_bytes == 0, "private: the budget still counts lost batches");
    check!(
        Domain::global().stats().pending_bytes == 0,
        "global: the budget still counts lost batches"
    );
    domain.set_stall_handler(Some(Arc::new(|_: &StallReport| ())));
    step(Step::StallHandlerSet);
    let fresh = Domain::new(DomainConfig::new().name("storm-child"));
    fresh.kvfree_rcu(&ctx, Rcu::boxed(7u64));
    step(Step::FreshQueued);
    fresh.rcu_barrier(&ctx);
    step(Step::FreshBarrier);
    drop(fresh);
    step(Step::Done);
    Ok(())
}

/// Forks, runs `child_body` in the child, and waits for it with a watchdog.
fn fork_and_run(domain: &Domain, cell: &RcuCell<u64>, progress: SharedProgress) -> ChildEnd {
    progress.set(Step::NotStarted as u64);
    // SAFETY: (1) the child only runs `child_body`: rcu-core calls, allocation and
    // `raw_eprint` and /proc reads; (2) it reads only the cell, through its own read guard.
    unsafe {
        run_in_child(WATCHDOG, || match child_body(domain, cell, progress) {
            Ok(()) => 0,
            Err(msg) => {
                raw_eprint(&format!(
                    "fork storm child: {msg}\n  global: {:?}\n  private: {:?}\n  threads:\n{}",
                    Domain::global().stats(),
                    domain.stats(),
                    describe_threads(std::process::id() as libc::pid_t)
                ));
                1
            }
        })
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn hundreds_of_forks_while_threads_read_queue_and_churn_domains() {
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("storm").alloc(AllocConfig::new().budget_bytes(256 << 10)),
    ));
    let cell = Arc::new(RcuCell::new_in(&domain, 1u64));
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx));
    drop(domain.read_lock(&mut ctx));

    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for r in 0..2 {
        let (domain, cell, stop, work) = (domain.clone(), cell.clone(), stop.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            domain.register_current_thread(&ctx);
            // Relaxed (all in this test): stop flags and progress counters.
            while !stop.load(Ordering::Relaxed) {
                let g = read_lock(&mut ctx);
                let inner = domain.read_lock_nested(g.ctx());
                assert!(*cell.load(&inner) >= 1);
                drop(inner);
                drop(g);
                if r == 1 {
                    kvfree_rcu(&ctx.atomic(), Rcu::boxed(r));
                    domain.kvfree_rcu(&ctx.no_reclaim(), Rcu::boxed(r));
                    cell.set(&ctx, 2);
                }
                work.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (domain, stop, work) = (domain.clone(), stop.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            // See `CHURN_DOMAINS`: one domain, kept, when its threads may not exit.
            let kept = (!CHURN_DOMAINS)
                .then(|| Arc::new(Domain::new(DomainConfig::new().name("storm-churn"))));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let churn = match &kept {
                    Some(kept) => kept.clone(),
                    None => Arc::new(Domain::new(DomainConfig::new().name("storm-churn"))),
                };
                churn.kvfree_rcu(&ctx, Rcu::boxed(n));
                churn.set_stall_handler(Some(Arc::new(|_: &StallReport| ())));
                drop(churn);
                domain.set_stall_handler(if n % 2 == 0 {
                    Some(Arc::new(|_: &StallReport| ()))
                } else {
                    None
                });
                synchronize_rcu(&ctx);
                n += 1;
                work.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let mut failures = Vec::new();
    let progress = SharedProgress::new();
    let mut took = Vec::with_capacity(FORKS);
    for i in 0..FORKS {
        let start = Instant::now();
        let end = fork_and_run(&domain, &cell, progress);
        took.push(start.elapsed());
        match end {
            ChildEnd::Exited(0) => {}
            end => failures.push(format!(
                "fork {i}: {end:?} (watchdog {WATCHDOG:?}), last step {}",
                Step::describe(progress.get())
            )),
        }
    }
    took.sort();
    eprintln!(
        "children took: median {:?}, p99 {:?}, max {:?}",
        took[FORKS / 2],
        took[FORKS * 99 / 100],
        took[FORKS - 1]
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(work.load(Ordering::Relaxed) > 0, "the parent's threads never ran");
    assert!(failures.is_empty(), "{} of {FORKS} children failed: {failures:?}", failures.len());
    domain.rcu_barrier(&ctx);
}
