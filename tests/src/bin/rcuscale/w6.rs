//! W6 (rcu-ctx only: it is about the memory budget, which the peers do not have): a domain
//! with a small budget, a reader that holds a read section for the whole stall, and during
//! it first a `Sleepable` flood of `kvfree_rcu` (on its own thread: it blocks on
//! backpressure, as it should, until the reader leaves) and then an `Atomic` flood (main
//! thread, nodes allocated beforehand since an `Atomic` scope may not allocate), every call
//! timed. Reported: the pending memory the `Sleepable` flood reached against the budget plus
//! one block per queueing thread, the slowest single `Atomic` call (it must not wait on the
//! stalled reader), fallbacks counted, and whether every node was freed after the reader left.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, Policy, Rcu};

use crate::common::{freed, quantile, Node, BUDGET};
use crate::report::{Better, Row, Target};
use crate::Config;

/// This thread's (voluntary, involuntary) context switches so far: a call that blocks (futex
/// wait, sleep) shows up as a voluntary switch; a preemption as an involuntary one.
/// `(-1, -1)` where the OS has no per-thread usage (macOS).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn context_switches() -> (i64, i64) {
    (-1, -1)
}

/// As above, from `getrusage(RUSAGE_THREAD)`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn context_switches() -> (i64, i64) {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD exists here.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc != 0 {
        return (-1, -1);
    }
    (usage.ru_nvcsw, usage.ru_nivcsw)
}

/// Entries per 4 KiB block (AllocConfig's default block).
fn block_capacity() -> usize {
    AllocConfig::new().block_capacity()
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let budget = cfg.w6_budget;
    let stall = cfg.w6_stall;
    let node_bytes = core::mem::size_of::<Rcu<Node<BUDGET>>>();
    let block_bytes = 4096;
    let per_thread = block_bytes + block_capacity() * node_bytes;
    let sleepable_threads = 1;
    let limit = budget + sleepable_threads * per_thread;

    let domain = Domain::new(
        DomainConfig::new()
            .name("rcuscale-w6")
            .stall_timeout(stall * 10)
            .alloc(AllocConfig::new().budget_bytes(budget)),
    );
    let freed0 = freed(BUDGET);
    let reader_in = Barrier::new(3);
    let reader_left = AtomicBool::new(false);
    let sleepable_ops = AtomicU64::new(0);
    let sleepable_slowest_ns = AtomicU64::new(0);

    let mut main_ctx = Sleepable::enter();
    domain.register_current_thread(&main_ctx);

    struct AtomicPhase {
        calls: u64,
        slowest_ns: f64,
        p999_ns: f64,
        finished_before_reader_left: bool,
        voluntary_switches: i64,
        involuntary_switches: i64,
        sleepable_peak: u64,
        sleepable_pending: u64,
        sleepable_ops_then: u64,
        overall_peak: u64,
    }

    let (phase, reader_held) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            let entered = Instant::now();
            reader_in.wait();
            std::thread::sleep(stall);
            // SeqCst: the flood reads it after its last call returns.
            reader_left.store(true, Ordering::SeqCst);
            drop(guard);
            entered.elapsed()
        });
        let flood = s.spawn(|| {
            let ctx = Sleepable::enter();
            domain.register_current_thread(&ctx);
            reader_in.wait();
            let mut i = 0u64;
            // SeqCst: see the reader.
            while !reader_left.load(Ordering::SeqCst) {
                let node = Rcu::boxed(Node::<BUDGET>::new(i));
                let t = Instant::now();
                domain.kvfree_rcu(&ctx, node);
                let ns = t.elapsed().as_nanos() as u64;
                // Relaxed: statistics, read after join (or as a rough progress figure).
                sleepable_slowest_ns.fetch_max(ns, Ordering::Relaxed);
                i += 1;
                sleepable_ops.store(i, Ordering::Relaxed);
            }
        });
        reader_in.wait();
        // Let the Sleepable flood reach the budget and block.
        std::thread::sleep(stall.mul_f64(0.3));
        let stats = domain.stats();
        // Relaxed: a progress figure.
        let sleepable_ops_then = sleepable_ops.load(Ordering::Relaxed);
        // The Atomic flood: nodes allocated first (an Atomic scope may not allocate).
        let nodes: Vec<Box<Rcu<Node<BUDGET>>>> =
            (0..cfg.w6_atomic_n).map(|i| Rcu::boxed(Node::new(i))).collect();
        let mut lat = Vec::with_capacity(nodes.len());
        let switches0 = context_switches();
        {
            let atomic = main_ctx.atomic();
            for node in nodes {
                let t = Instant::now();
                domain.kvfree_rcu(&atomic, node);
                lat.push(t.elapsed().as_nanos() as f64);
            }
        }
        let switches1 = context_switches();
        // SeqCst: see the reader.
        let finished_before = !reader_left.load(Ordering::SeqCst);
        let overall_peak = domain.stats().peak_pending_bytes;
        let held = reader.join().expect("reader panicked");
        flood.join().expect("flood panicked");
        let phase = AtomicPhase {
            calls: lat.len() as u64,
            slowest_ns: crate::common::max(&lat),
            p999_ns: quantile(&lat, 0.999),
            finished_before_reader_left: finished_before,
            voluntary_switches: switches1.0 - switches0.0,
            involuntary_switches: switches1.1 - switches0.1,
            sleepable_peak: stats.peak_pending_bytes,
            sleepable_pending: stats.pending_bytes,
            sleepable_ops_then,
            overall_peak,
        };
        (phase, held)
    });

    // Everything queued must be freed now that the reader has left.
    let t = Instant::now();
    domain.rcu_barrier(&main_ctx);
    let barrier_ms = t.elapsed().as_secs_f64() * 1e3;
    // Relaxed: the flood thread has been joined.
    let sleepable_total = sleepable_ops.load(Ordering::Relaxed);
    let allocated = sleepable_total + phase.calls;
    let freed_n = freed(BUDGET) - freed0;
    let alloc = domain.alloc_stats();
    let stats = domain.stats();
    drop(domain);

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let w6 = |m: &str, unit: &'static str| Row::new("W6", m.to_string(), unit);
    rows.push(w6("budget (MiB)", "MiB").ours(mib(budget as u64)));
    rows.push(
        w6(
            &format!("limit: budget + {sleepable_threads} block allowance of {per_thread} B (MiB)"),
            "MiB",
        )
        .ours(mib(limit as u64)),
    );
    rows.push(
        w6("Sleepable flood: peak pending (MiB)", "MiB")
            .ours(mib(phase.sleepable_peak))
            .better(Better::Lower),
    );
    rows.push(
        w6("Sleepable flood: peak pending within limit", "bool")
            .ours(f64::from(u8::from(phase.sleepable_peak <= limit as u64)))
            .target(Target::Yes),
    );
    rows.push(
        w6("Sleepable flood: calls before blocking", "calls").ours(phase.sleepable_ops_then as f64),
    );
    rows.push(
        w6("Sleepable flood: slowest call (ms, = backpressure wait)", "ms")
            // Relaxed: the flood thread has been joined.
            .ours(sleepable_slowest_ns.load(Ordering::Relaxed) as f64 / 1e6),
    );
    rows.push(w6("Atomic flood: calls during the stall", "calls").ours(phase.calls as f64));
    rows.push(
        w6("Atomic flood: finished while the reader was stalled", "bool")
            .ours(f64::from(u8::from(phase.finished_before_reader_left)))
            .target(Target::Yes),
    );
    rows.push(
        w6("Atomic flood: slowest single call (us)", "us")
            .ours(phase.slowest_ns / 1e3)
            .better(Better::Lower)
            .target(Target::AtMost(10_000.0)),
    );
    rows.push(
        w6("Atomic flood: voluntary context switches (= blocked)", "count")
            .ours(phase.voluntary_switches as f64)
            .better(Better::Lower)
            .target(Target::AtMost(0.0)),
    );
    rows.push(
        w6("Atomic flood: involuntary context switches (preempted)", "count")
            .ours(phase.involuntary_switches as f64),
    );
    rows.push(
        w6("Atomic flood: p99.9 call (us)", "us").ours(phase.p999_ns / 1e3).better(Better::Lower),
    );
    rows.push(
        w6("Atomic flood: fallbacks counted", "count")
            .ours(alloc.fallbacks_total(Policy::NoWait) as f64),
    );
    rows.push(w6("peak pending incl. Atomic flood (MiB)", "MiB").ours(mib(phase.overall_peak)));
    rows.push(
        w6("all freed after the reader left (rcu_barrier)", "bool")
            .ours(f64::from(u8::from(freed_n == allocated)))
            .target(Target::Yes),
    );
    rows.push(w6("rcu_barrier after the stall (ms)", "ms").ours(barrier_ms));
    notes.push(format!(
        "W6: one run (not repeated): budget {} B, reader held {:.2} s, Sleepable flood {} calls \
         ({} before the Atomic flood; pending then {} B), Atomic flood {} calls; fallbacks {:?}; \
         backpressure waits {}; freed {freed_n} of {allocated}; stalls reported {}.",
        budget,
        reader_held.as_secs_f64(),
        sleepable_total,
        phase.sleepable_ops_then,
        phase.sleepable_pending,
        phase.calls,
        alloc.fallbacks,
        alloc.backpressure_waits,
        stats.stalls
    ));
}
