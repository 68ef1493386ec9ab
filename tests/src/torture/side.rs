//! The side tests that run alongside readers and the writer: counted callback traffic and
//! tracked deferred frees from the updaters, barrier rounds, the forward-progress flood and
//! the stall test. Under the sleepable flavors they go through the `*_srcu` calls
//! (`call_srcu`, `srcu_barrier`), and the stall test holds an owned guard of a sleepable
//! domain; under the QSBR flavors, through the `QsbrDomain`'s calls, and the stall test
//! keeps a thread online without quiescent states.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{
    Domain, DomainConfig, Fast, Plain, QsbrDomain, SrcuFlavor, SrcuStruct, StallCause,
    StallHandler, StallReport,
};

use super::config::TokenKind;
use super::flavor::Srcu;
use super::frees::{self, Target};
use super::report::{Check, Counters};
use super::rng::Rng;
use super::Shared;

/// A queued object that counts itself out when it is dropped (after its grace period).
struct Counted {
    shared: Arc<Shared>,
    _payload: [u64; 6],
}

impl Drop for Counted {
    fn drop(&mut self) {
        Counters::bump(&self.shared.counters.cb_done);
    }
}

fn drop_callback(obj: Box<Rcu<Counted>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// An updater: queues counted `call_rcu` traffic and tracked deferred frees (`frees.rs`) with
/// each token in turn. It starts with one free of every mode on each of its lanes, so that
/// every token, kind and domain is covered however short the run.
pub fn updater(id: u64, shared: &Arc<Shared>, stop: &AtomicBool) {
    let config = &shared.config;
    let mut ctx = Sleepable::enter();
    let mut rng = Rng::new(config.seed, 200 + id);
    let lanes: Vec<_> = shared.frees.lanes_of(id).collect();
    for lane in &lanes {
        for _ in shared.frees.modes() {
            frees::queue_next(shared, lane, &mut ctx, stop);
        }
    }
    let mut n = 0u64;
    // Relaxed: a stop flag.
    while !stop.load(Ordering::Relaxed) {
        if rng.one_in(2) {
            let token = config.tokens[(n % config.tokens.len() as u64) as usize];
            let obj = Rcu::boxed(Counted { shared: shared.clone(), _payload: [n; 6] });
            Counters::bump(&shared.counters.cb_queued);
            match token {
                TokenKind::Sleepable => shared.flavor.call_rcu(&ctx, obj, drop_callback),
                TokenKind::NoReclaim => {
                    shared.flavor.call_rcu(&ctx.no_reclaim(), obj, drop_callback)
                }
                TokenKind::Atomic => shared.flavor.call_rcu(&ctx.atomic(), obj, drop_callback),
                TokenKind::Section => shared.flavor.in_section(&mut ctx, |section| {
                    shared.flavor.call_rcu(section, obj, drop_callback)
                }),
            }
        } else {
            frees::queue_next(shared, lanes[(n % lanes.len() as u64) as usize], &mut ctx, stop);
        }
        n += 1;
        if n % 256 == 0 {
            // Leave the CPUs to readers and the writer now and then: the point is traffic
            // alongside them, not starving them.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// `call_rcu_fn` on `target`'s domain (the busted fake runs `f` at once).
fn call_fn(
    shared: &Shared,
    target: Target,
    ctx: &Sleepable,
    f: impl FnOnce(&Atomic<'_>) + Send + 'static,
) {
    match target {
        Target::Own => shared.flavor.call_rcu_fn(ctx, f),
        Target::Global => Domain::global().call_rcu_fn(ctx, f),
    }
}

/// `rcu_barrier` on `target`'s domain.
pub fn barrier(shared: &Shared, target: Target, ctx: &Sleepable) {
    match target {
        Target::Own => shared.flavor.barrier(ctx),
        Target::Global => Domain::global().rcu_barrier(ctx),
    }
}

/// Barrier rounds, on each domain the updaters queue on: each snapshots how far the
/// tracked frees were queued, posts callbacks, calls `rcu_barrier`, and checks that all the
/// callbacks have run and every tracked value queued before it was dropped and deallocated.
pub fn barrier_rounds(shared: &Arc<Shared>, stop: &AtomicBool) {
    const PER_ROUND: u64 = 64;
    let ctx = Sleepable::enter();
    // Relaxed: a stop flag.
    while !stop.load(Ordering::Relaxed) {
        for &target in shared.frees.targets() {
            let snapshot = shared.frees.snapshot(target);
            let ran = Arc::new(AtomicU64::new(0));
            for _ in 0..PER_ROUND {
                let ran = ran.clone();
                call_fn(shared, target, &ctx, move |_| {
                    // Relaxed: read after rcu_barrier, which orders it.
                    ran.fetch_add(1, Ordering::Relaxed);
                });
            }
            barrier(shared, target, &ctx);
            // Relaxed: rcu_barrier has ordered every callback before its return.
            let done = ran.load(Ordering::Relaxed);
            if done != PER_ROUND {
                shared.counters.fail_check(
                    Check::Barrier,
                    format!(
                        "rcu_barrier returned with {done} of {PER_ROUND} callbacks posted \
                         before it run"
                    ),
                );
            }
            shared.frees.judge_round(target, &snapshot, &shared.flavor, &shared.counters);
        }
        Counters::bump(&shared.counters.barriers);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drop_flood(obj: Box<Rcu<[u64; 8]>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// Forward progress: a `call_rcu` (`call_srcu`) flood from a `Sleepable` context; grace
/// periods must keep completing, callbacks keep running, and pending memory stay near the
/// budget.
pub fn forward_progress(shared: &Arc<Shared>, stop: &AtomicBool) {
    let flavor = &shared.flavor;
    let Some(before) = flavor.stats() else { return };
    let ctx = Sleepable::enter();
    let start = Instant::now();
    let mut queued = 0u64;
    // Relaxed: a stop flag.
    while start.elapsed() < shared.config.flood && !stop.load(Ordering::Relaxed) {
        for _ in 0..1000 {
            flavor.call_rcu(&ctx, Rcu::boxed([0u64; 8]), drop_flood);
        }
        queued += 1000;
    }
    flavor.barrier(&ctx);
    let after = flavor.stats().expect("the flavor had statistics before the flood");
    let gps = after.gp_completed - before.gp_completed;
    let invoked = after.callbacks_invoked - before.callbacks_invoked;
    if gps < 2 {
        shared.counters.fail_check(
            Check::ForwardProgress,
            format!("forward progress: only {gps} grace periods during the flood"),
        );
    }
    if invoked < queued {
        shared.counters.fail_check(
            Check::ForwardProgress,
            format!("forward progress: {invoked} of {queued} flood callbacks ran"),
        );
    }
    // Sleepable callers wait once pending memory reaches the budget; every other thread can
    // be at most about one block of objects past it. Generous slack: other traffic runs too.
    let slack = 4 * (1 << 20);
    if after.peak_pending_bytes > after.budget_bytes + slack {
        shared.counters.fail_check(
            Check::ForwardProgress,
            format!(
                "forward progress: pending memory peaked at {} bytes, budget {}",
                after.peak_pending_bytes, after.budget_bytes
            ),
        );
    }
}

/// Stall test: a reader of a private domain holds its section past the stall timeout while
/// another thread waits for a grace period; the stall must be reported. Under the sleepable
/// flavors the domain is a sleepable one of the same reader flavour, and the section an owned
/// guard made on one thread (`torture-maker`) and held on another: the report must name
/// the thread that made it.
///
/// Under the QSBR flavors the domain is a QSBR one and the reader a thread online without
/// quiescent states: a report must say so (`StallCause::QsbrOnline`).
///
/// The reader stays inside until the report has come, not for a fixed time: the waiting
/// thread may start its grace period late on a loaded machine, and a fixed hold could end
/// before that grace period had waited the timeout. A generous bound keeps a missing report
/// from hanging the run.
pub fn stall(shared: &Arc<Shared>) {
    if shared.flavor.is_fake() {
        return;
    }
    let config =
        DomainConfig::new().name("torture-stall").stall_timeout(shared.config.stall_timeout);
    if shared.flavor.is_qsbr() {
        return stall_qsbr(shared, QsbrDomain::new(config));
    }
    match shared.flavor.reader_srcu() {
        None => stall_classic(shared, Domain::new(config)),
        Some(Srcu::Fast(_)) => stall_srcu(shared, SrcuStruct::<Fast>::new(config)),
        Some(Srcu::Plain(_)) => stall_srcu(shared, SrcuStruct::<Plain>::new(config)),
    }
}

/// What the stall handler saw.
#[derive(Debug, Default)]
struct Reports {
    /// Reports made.
    count: AtomicU64,
    /// Reports that named the thread `MAKER`.
    named_maker: AtomicU64,
    /// Reports of a thread online in a QSBR domain (`StallCause::QsbrOnline`).
    qsbr_online: AtomicU64,
    /// The first report, for the failure message.
    first: crate::SpinLock<Option<String>>,
}

impl Reports {
    fn handler(self: &Arc<Self>) -> StallHandler {
        let reports = self.clone();
        Arc::new(move |r: &StallReport| {
            // Relaxed (both): counts; the holder polls `count` for progress, the final reads
            // follow the joins.
            if r.thread_name.as_deref() == Some(MAKER) {
                reports.named_maker.fetch_add(1, Ordering::Relaxed);
            }
            if r.cause == StallCause::QsbrOnline {
                reports.qsbr_online.fetch_add(1, Ordering::Relaxed);
            }
            reports.first.with(|first| {
                first.get_or_insert_with(|| format!("{r}"));
            });
            reports.count.fetch_add(1, Ordering::Relaxed);
        })
    }

    fn count(&self) -> u64 {
        // Relaxed: see `handler`.
        self.count.load(Ordering::Relaxed)
    }

    /// Holds the caller's section until a report came or `limit` passed.
    fn wait(&self, limit: Duration) {
        let start = Instant::now();
        while self.count() == 0 && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The sleepable stall test's guard maker. Reports name threads as the system does, in at
/// most 15 bytes on Linux: so is this name.
const MAKER: &str = "torture-maker";

fn hold_limit(shared: &Shared) -> Duration {
    shared.config.stall_timeout * 3 + Duration::from_secs(5)
}

fn stall_classic(shared: &Shared, domain: Domain) {
    let reports = Arc::new(Reports::default());
    domain.set_stall_handler(Some(reports.handler()));
    let (domain, limit, seen) = (&domain, hold_limit(shared), &*reports);
    std::thread::scope(|s| {
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let holder = std::thread::Builder::new()
            .name("torture-stall-reader".into())
            .spawn_scoped(s, move || {
                let mut ctx = Sleepable::enter();
                let _guard = domain.read_lock(&mut ctx);
                let _ = entered_tx.send(());
                seen.wait(limit);
            })
            .expect("spawn stall reader");
        let _ = entered_rx.recv();
        domain.synchronize_rcu(&Sleepable::enter());
        if holder.join().is_err() {
            shared.counters.fail("the stall test's reader panicked");
        }
    });
    judge_stall(shared, &reports, Expect::Any);
}

fn stall_qsbr(shared: &Shared, domain: QsbrDomain) {
    let reports = Arc::new(Reports::default());
    domain.set_stall_handler(Some(reports.handler()));
    let (domain, limit, seen) = (&domain, hold_limit(shared), &*reports);
    std::thread::scope(|s| {
        let (online_tx, online_rx) = std::sync::mpsc::channel();
        let holder = std::thread::Builder::new()
            .name("torture-stall-reader".into())
            .spawn_scoped(s, move || {
                let mut ctx = Sleepable::enter();
                let _online = domain.online(&mut ctx);
                let _ = online_tx.send(());
                seen.wait(limit); // online, and no quiescent state
            })
            .expect("spawn stall reader");
        let _ = online_rx.recv();
        domain.synchronize_rcu(&Sleepable::enter());
        if holder.join().is_err() {
            shared.counters.fail("the stall test's reader panicked");
        }
    });
    judge_stall(shared, &reports, Expect::QsbrOnline);
}

fn stall_srcu<F: SrcuFlavor>(shared: &Shared, srcu: SrcuStruct<F>) {
    let reports = Arc::new(Reports::default());
    srcu.set_stall_handler(Some(reports.handler()));
    let (srcu, limit, seen) = (&srcu, hold_limit(shared), &*reports);
    std::thread::scope(|s| {
        let (guard_tx, guard_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let maker = std::thread::Builder::new()
            .name(MAKER.into())
            .spawn_scoped(s, move || {
                let _ = guard_tx.send(srcu.down_read(&Sleepable::enter()));
                // Stays alive, so that the report finds it by name, until the wait is over.
                let _ = done_rx.recv();
            })
            .expect("spawn stall guard maker");
        let holder = std::thread::Builder::new()
            .name("torture-stall-holder".into())
            .spawn_scoped(s, move || {
                let Ok(guard) = guard_rx.recv() else { return };
                let _ = entered_tx.send(());
                seen.wait(limit);
                guard.up_read();
            })
            .expect("spawn stall guard holder");
        if entered_rx.recv().is_ok() {
            srcu.synchronize_srcu(&Sleepable::enter());
        }
        drop(done_tx);
        if maker.join().is_err() || holder.join().is_err() {
            shared.counters.fail("the stall test's maker or holder panicked");
        }
    });
    judge_stall(shared, &reports, Expect::NamedMaker);
}

/// What one of the stall test's reports must show, besides that there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Nothing more.
    Any,
    /// The thread `MAKER`, which made the owned guard held up.
    NamedMaker,
    /// A thread online in a QSBR domain without a quiescent state.
    QsbrOnline,
}

/// At least one report, and one that shows what `expect` says.
fn judge_stall(shared: &Shared, reports: &Reports, expect: Expect) {
    // Relaxed (all): the threads were joined.
    let n = reports.count();
    let named = reports.named_maker.load(Ordering::Relaxed);
    let qsbr_online = reports.qsbr_online.load(Ordering::Relaxed);
    shared.counters.stalls.fetch_add(n, Ordering::Relaxed);
    let (limit, timeout) = (hold_limit(shared), shared.config.stall_timeout);
    if n == 0 {
        shared.counters.fail_check(
            Check::Stall,
            format!(
                "stall test: a reader held a grace period up for {limit:?} (stall timeout \
                 {timeout:?}) and no stall was reported"
            ),
        );
    } else if expect == Expect::NamedMaker && named == 0 {
        shared.counters.fail_check(
            Check::Stall,
            format!(
                "stall test: {n} stall report(s) on the sleepable domain, none naming {MAKER}, \
                 the thread that made the owned guard held up; the first: {}",
                reports.first.with(|first| first.clone()).unwrap_or_default()
            ),
        );
    } else if expect == Expect::QsbrOnline && qsbr_online == 0 {
        shared.counters.fail_check(
            Check::Stall,
            format!(
                "stall test: {n} stall report(s) on the QSBR domain, none saying a thread stayed \
                 online without a quiescent state (StallCause::QsbrOnline); the first: {}",
                reports.first.with(|first| first.clone()).unwrap_or_default()
            ),
        );
    }
}
