//! The side tests that run alongside readers and the writer: counted callback traffic and
//! tracked deferred frees from the updaters, barrier rounds, the forward-progress flood and
//! the stall test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{Domain, DomainConfig, StallReport};

use super::config::TokenKind;
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

/// The domain behind `target` (`None`: the busted fake has none).
pub fn domain_of(shared: &Shared, target: Target) -> Option<&Domain> {
    match target {
        Target::Own => shared.flavor.domain(),
        Target::Global => Some(Domain::global()),
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
                match domain_of(shared, target) {
                    Some(d) => d.call_rcu_fn(&ctx, move |_| {
                        // Relaxed: read after rcu_barrier, which orders it.
                        ran.fetch_add(1, Ordering::Relaxed);
                    }),
                    None => {
                        // Relaxed: as above.
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                }
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

/// Forward progress: a `call_rcu` flood from a `Sleepable` context; grace periods must keep
/// completing, callbacks keep running, and pending memory stay near the budget.
pub fn forward_progress(shared: &Arc<Shared>, stop: &AtomicBool) {
    let Some(domain) = shared.flavor.domain() else { return };
    let ctx = Sleepable::enter();
    let before = domain.stats();
    let start = Instant::now();
    let mut queued = 0u64;
    // Relaxed: a stop flag.
    while start.elapsed() < shared.config.flood && !stop.load(Ordering::Relaxed) {
        for _ in 0..1000 {
            domain.call_rcu(&ctx, Rcu::boxed([0u64; 8]), |obj, _| drop(obj));
        }
        queued += 1000;
    }
    domain.rcu_barrier(&ctx);
    let after = domain.stats();
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
/// another thread waits for a grace period; the stall must be reported.
///
/// The reader stays inside until the report has come, not for a fixed time: the waiting
/// thread may start its grace period late on a loaded machine, and a fixed hold could end
/// before that grace period had waited the timeout. A generous bound keeps a missing report
/// from hanging the run.
pub fn stall(shared: &Arc<Shared>) {
    if shared.flavor.domain().is_none() {
        return;
    }
    let timeout = shared.config.stall_timeout;
    let domain = Arc::new(rcu_core::Domain::new(
        DomainConfig::new().name("torture-stall").stall_timeout(timeout),
    ));
    let reports = Arc::new(AtomicU64::new(0));
    let counted = reports.clone();
    domain.set_stall_handler(Some(Arc::new(move |_r: &StallReport| {
        // Relaxed: a count; the holder polls it for progress, the final read follows the
        // joins.
        counted.fetch_add(1, Ordering::Relaxed);
    })));
    let hold_limit = timeout * 3 + Duration::from_secs(5);
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let holder = {
        let (domain, reports) = (domain.clone(), reports.clone());
        std::thread::Builder::new()
            .name("torture-stall-reader".into())
            .spawn(move || {
                let mut ctx = Sleepable::enter();
                let _guard = domain.read_lock(&mut ctx);
                let _ = entered_tx.send(());
                let start = Instant::now();
                // Relaxed: a count polled for progress; nothing is read through it.
                while reports.load(Ordering::Relaxed) == 0 && start.elapsed() < hold_limit {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .expect("spawn stall reader")
    };
    let _ = entered_rx.recv();
    let ctx = Sleepable::enter();
    domain.synchronize_rcu(&ctx);
    let _ = holder.join();
    // Relaxed: the synchronize returned after the reports were made on this thread.
    let n = reports.load(Ordering::Relaxed);
    shared.counters.stalls.fetch_add(n, Ordering::Relaxed);
    if n == 0 {
        shared.counters.fail_check(
            Check::Stall,
            format!(
                "stall test: a reader held a grace period up for {hold_limit:?} (stall timeout \
             {timeout:?}) and no stall was reported"
            ),
        );
    }
}
