//! W4: grace-period latency with one busy reader thread (looping short read sections):
//! `synchronize_rcu`, `synchronize_rcu_expedited` and a polled grace period (`start_poll`,
//! then `poll` in a loop until it is true) p50/p99/max, against one
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` syscall timed in the same run (the physical
//! floor of a grace period: ours issues at least one).
//!
//! The peers have no synchronize. As a clearly labelled *analogue* every system gets the
//! retire-to-free latency: retire one node, then flush the system's best way until the node's
//! drop has run (ours: `kvfree_rcu` + `rcu_barrier`; crossbeam-epoch: `defer_destroy`, then
//! `pin().flush()` in a loop; seize: a collector with `batch_size(1)`, `retire`, then
//! `enter().flush()` in a loop).
//!
//! Grace-period sharing: 4 threads each calling `synchronize_rcu` K times at once, against
//! 1 thread calling it K times; once with no reader and once with the busy reader running.
//! (With no other thread of the process on a CPU, a membarrier interrupts nobody and costs
//! ~20x less than one that must interrupt a running thread, so the idle 1-thread baseline is
//! cheaper per grace period than anything the 4-thread run can do; the busy-reader variant
//! compares like with like.) The grace periods completed per call in the 4-thread runs say
//! how much was shared, whatever the times: 1 is none, 0.25 is one per round of 4 calls.
//!
//! QSBR with every thread offline (issue 26): `QsbrDomain::synchronize_rcu` with threads
//! registered with the domain and none online, p50/p99, and the membarriers the domain issued
//! over those calls (`DomainStats::membarriers`; QSBR grace periods pair with readers by a
//! fence, so 0); urcu-qsbr's `synchronize_rcu` in the same state for information.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crossbeam_epoch::{self as epoch, Owned};
use rcu_core::prelude::*;
use rcu_core::raw::barrier::{membarrier_once, uses_membarrier};
use rcu_core::{DomainConfig, QsbrDomain, RcuCell};
use seize::{reclaim, Collector, Guard as _};

use crate::common::{freed, Latency, Node, PerSystem, System, CROSSBEAM, OURS, SEIZE};
use crate::liburcu;
use crate::report::{Better, Row, Target};
use crate::Config;

/// Threads in the sharing measurement.
const SHARERS: usize = 4;

/// Registered threads besides the caller in the QSBR all-offline measurement.
const OFFLINE_THREADS: usize = 2;

/// `QsbrDomain::synchronize_rcu` latencies (ns) with `OFFLINE_THREADS` threads registered
/// with the domain, each online once and then offline, and the calling thread registered,
/// never online; and the membarriers the domain issued over the samples.
fn ours_qsbr_offline(cfg: &Config) -> (Vec<f64>, u64) {
    let domain = QsbrDomain::new(DomainConfig::new().name("rcuscale-w4-qsbr"));
    let ready = Barrier::new(OFFLINE_THREADS + 1);
    let done = Barrier::new(OFFLINE_THREADS + 1);
    std::thread::scope(|s| {
        for _ in 0..OFFLINE_THREADS {
            s.spawn(|| {
                let mut ctx = Sleepable::enter();
                drop(domain.online(&mut ctx)); // registered, then offline
                ready.wait();
                done.wait();
            });
        }
        ready.wait();
        let ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        domain.synchronize_rcu(&ctx); // warm: the worker exists
        let before = domain.stats().membarriers;
        let v =
            sample(cfg.w4_budget, cfg.w4_max_samples, || timed(|| domain.synchronize_rcu(&ctx)));
        let membarriers = domain.stats().membarriers - before;
        done.wait();
        (v, membarriers)
    })
}

/// Runs `body` while `reader` loops on another thread until told to stop; `reader` gets the
/// stop flag and must check it between short read sections.
fn with_busy_reader<R>(reader: impl FnOnce(&AtomicBool) + Send, body: impl FnOnce() -> R) -> R {
    /// Stops the reader when the body returns or panics (the scope joins it either way).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            // Relaxed: a flag; the scope joins the thread.
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let started = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            started.wait();
            reader(&stop);
        });
        started.wait();
        let _stop = Stop(&stop);
        std::thread::sleep(Duration::from_millis(2)); // let it get going
        body()
    })
}

/// Samples `op` (returning nanoseconds) until `budget` passes or `max` samples, at least 5.
fn sample(budget: Duration, max: usize, mut op: impl FnMut() -> f64) -> Vec<f64> {
    let deadline = Instant::now() + budget;
    let mut v = Vec::with_capacity(max.min(1 << 16));
    while v.len() < 5 || (v.len() < max && Instant::now() < deadline) {
        v.push(op());
    }
    v
}

fn timed(op: impl FnOnce()) -> f64 {
    let t = Instant::now();
    op();
    t.elapsed().as_nanos() as f64
}

fn ours_reader(cell: &RcuCell<Node<OURS>>) -> impl FnOnce(&AtomicBool) + Send + '_ {
    move |stop| {
        let mut ctx = Sleepable::enter();
        // Relaxed: a flag.
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                let guard = read_lock(&mut ctx);
                black_box(black_box(cell).load(&guard).data[0]);
            }
        }
    }
}

/// What one repetition of the synchronize part measured (ours), in ns.
struct SyncRep {
    normal: Latency,
    expedited: Latency,
    polled: Latency,
    /// `None` with readers in fence mode (no membarrier: `--cfg rcu_force_fence`, or a
    /// kernel without it).
    membarrier: Option<Latency>,
}

fn ours_sync(cfg: &Config) -> SyncRep {
    let cell = RcuCell::new(Node::<OURS>::new(1));
    with_busy_reader(ours_reader(&cell), || {
        let ctx = Sleepable::enter();
        // Warm: the worker and this thread's registration exist.
        synchronize_rcu(&ctx);
        // Round-robin, so the four see the same CPU placement of the busy reader (whether
        // membarrier must interrupt another CPU changes its cost tenfold on this machine).
        let (mut normal, mut expedited) = (Vec::new(), Vec::new());
        let (mut polled, mut membarrier) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + cfg.w4_budget;
        while normal.len() < 5 || (normal.len() < cfg.w4_max_samples && Instant::now() < deadline) {
            normal.push(timed(|| synchronize_rcu(&ctx)));
            expedited.push(timed(|| synchronize_rcu_expedited(&ctx)));
            polled.push(timed(|| {
                let cookie = start_poll(&ctx);
                while !poll(cookie) {}
            }));
            if uses_membarrier() {
                membarrier.push(timed(|| {
                    assert!(membarrier_once(), "membarrier registered but failing");
                }));
            }
        }
        SyncRep {
            normal: Latency::of(&normal),
            expedited: Latency::of(&expedited),
            polled: Latency::of(&polled),
            membarrier: (!membarrier.is_empty()).then(|| Latency::of(&membarrier)),
        }
    })
}

/// Retire-to-free latency samples (ns) of one system, with its busy reader running.
fn analogue(cfg: &Config, system: System) -> Vec<f64> {
    let budget = cfg.w4_budget / 2;
    let max = cfg.w4_max_samples;
    let limit = Duration::from_secs(2);
    match system {
        System::Ours => {
            let cell = RcuCell::new(Node::<OURS>::new(1));
            with_busy_reader(ours_reader(&cell), || {
                let ctx = Sleepable::enter();
                sample(budget, max, || {
                    let target = freed(OURS) + 1;
                    timed(|| {
                        kvfree_rcu(&ctx, rcu_core::Rcu::boxed(Node::<OURS>::new(2)));
                        rcu_barrier(&ctx);
                    }) + check(freed(OURS) >= target)
                })
            })
        }
        System::Crossbeam => {
            let atomic = epoch::Atomic::new(Node::<CROSSBEAM>::new(1));
            let lat = with_busy_reader(
                |stop| {
                    // Relaxed: a flag.
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            let guard = epoch::pin();
                            let p = black_box(&atomic).load(Ordering::Acquire, &guard);
                            // SAFETY: never null, never retired while readers run.
                            black_box(unsafe { p.deref() }.data[0]);
                        }
                    }
                },
                || {
                    sample(budget, max, || {
                        let target = freed(CROSSBEAM) + 1;
                        timed(|| {
                            let guard = epoch::pin();
                            let node = Owned::new(Node::<CROSSBEAM>::new(2)).into_shared(&guard);
                            // SAFETY: never published: no one else can reach it.
                            unsafe { guard.defer_destroy(node) };
                            drop(guard);
                            let deadline = Instant::now() + limit;
                            while freed(CROSSBEAM) < target && Instant::now() < deadline {
                                epoch::pin().flush();
                            }
                        }) + check(freed(CROSSBEAM) >= target)
                    })
                },
            );
            // SAFETY: the reader has been joined.
            drop(unsafe { atomic.into_owned() });
            lat
        }
        System::Seize => {
            let collector = Collector::new().batch_size(1);
            let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<SEIZE>::new(1))));
            let lat = with_busy_reader(
                |stop| {
                    // Relaxed: a flag.
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            let guard = collector.enter();
                            let p = guard.protect(black_box(&ptr), Ordering::Acquire);
                            // SAFETY: never retired while readers run.
                            black_box(unsafe { &*p }.data[0]);
                        }
                    }
                },
                || {
                    sample(budget, max, || {
                        let target = freed(SEIZE) + 1;
                        timed(|| {
                            let node = Box::into_raw(Box::new(Node::<SEIZE>::new(2)));
                            // SAFETY: never published; from Box::into_raw.
                            unsafe { collector.retire(node, reclaim::boxed) };
                            let deadline = Instant::now() + limit;
                            while freed(SEIZE) < target && Instant::now() < deadline {
                                collector.enter().flush();
                            }
                        }) + check(freed(SEIZE) >= target)
                    })
                },
            );
            // SAFETY: unpublished (the reader has been joined); from Box::into_raw.
            unsafe { collector.retire(ptr.into_inner(), reclaim::boxed) };
            lat
        }
    }
}

/// NaN (poisoning the sample) when a retired node was not freed in time.
fn check(ok: bool) -> f64 {
    if ok {
        0.0
    } else {
        f64::NAN
    }
}

/// The CPUs this process may run on (Linux), in order; empty if they cannot be read.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set the call fills in; zeroed is a valid empty one.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is `set`'s own.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: `set` was filled in above; CPU_ISSET reads it within CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Elsewhere: unknown, so no thread is pinned (the scheduler places them).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Does nothing where `allowed_cpus` is empty.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin_current_thread(_cpus: &[usize]) {}

/// Pins the calling thread to `cpus` (best effort: a failure leaves it unpinned).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin_current_thread(cpus: &[usize]) {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` came from `allowed_cpus`, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is this thread; the size is `set`'s own.
    let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
}

/// Wall time (ms) for `threads` threads each calling `synchronize_rcu` `k` times at once:
/// from the first thread's start to the last thread's end, each timed by the thread itself
/// (a coordinator's clock could start after a fast thread had already finished); and the
/// grace periods the global domain completed per call meanwhile (1 = no sharing).
///
/// With `busy_reader`, the reader is pinned to the last CPU and the callers to the others
/// (given two CPUs or more): left to the scheduler, the reader sometimes shared a CPU with a
/// lone caller, whose grace periods then interrupted nobody (0.41 ms for 2000 instead of
/// 28-30), and the busy-reader baseline was not one.
fn sharing(threads: usize, k: usize, busy_reader: bool) -> (f64, f64) {
    let cpus = allowed_cpus();
    let placement = match cpus.split_last() {
        Some((&reader_cpu, callers)) if busy_reader && !callers.is_empty() => {
            Some((reader_cpu, callers.to_vec()))
        }
        _ => None,
    };
    if busy_reader {
        let cell = RcuCell::new(Node::<OURS>::new(1));
        let reader = ours_reader(&cell);
        let reader_cpu = placement.as_ref().map(|p| p.0);
        let pinned_reader = move |stop: &AtomicBool| {
            if let Some(cpu) = reader_cpu {
                pin_current_thread(&[cpu]);
            }
            reader(stop)
        };
        let callers_cpus = placement.map(|p| p.1);
        return with_busy_reader(pinned_reader, || callers(threads, k, callers_cpus.as_deref()));
    }
    callers(threads, k, None)
}

/// The measured part of `sharing`, its callers pinned to `cpus` if given.
fn callers(threads: usize, k: usize, cpus: Option<&[usize]>) -> (f64, f64) {
    let barrier = Barrier::new(threads);
    let gps = || {
        let s = Domain::global().stats();
        s.gps_normal + s.gps_expedited
    };
    let gps_before = gps();
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    if let Some(cpus) = cpus {
                        pin_current_thread(cpus);
                    }
                    let ctx = Sleepable::enter();
                    synchronize_rcu(&ctx); // registration and first-call costs untimed
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..k {
                        synchronize_rcu(&ctx);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("synchronize thread panicked")).collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads");
    let last = spans.iter().map(|s| s.1).max().expect("threads");
    // Includes each thread's untimed first call and whatever the global worker ran: both
    // count against sharing, never for it.
    let per_call = (gps() - gps_before) as f64 / (threads * (k + 1)) as f64;
    ((last - first).as_secs_f64() * 1e3, per_call)
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let us = |ns: f64| ns / 1e3;
    let (mut n50, mut n99, mut nmax) = (Vec::new(), Vec::new(), Vec::new());
    let (mut e50, mut e99, mut emax) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p50, mut p99, mut pmax) = (Vec::new(), Vec::new(), Vec::new());
    let (mut m50, mut m99, mut mmax) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratio_n, mut ratio_e, mut ratio_p) = (Vec::new(), Vec::new(), Vec::new());
    let mut ana50 = PerSystem::default();
    let mut ana99 = PerSystem::default();
    let mut ana_failed = PerSystem::default();
    let mut t1s = [Vec::new(), Vec::new()];
    let mut t4s = [Vec::new(), Vec::new()];
    let mut share = [Vec::new(), Vec::new()];
    let mut per_call = [Vec::new(), Vec::new()];
    let (mut q50, mut q99, mut qmb) = (Vec::new(), Vec::new(), Vec::new());
    let mut urcu50: Result<Vec<f64>, &'static str> = Ok(Vec::new());
    let mut urcu99: Result<Vec<f64>, &'static str> = Ok(Vec::new());
    for rep in 0..cfg.reps {
        let (ours_q, membarriers) = ours_qsbr_offline(cfg);
        let l = Latency::of(&ours_q);
        let urcu = liburcu::qsbr_sync_offline(OFFLINE_THREADS, l.samples).map(|v| Latency::of(&v));
        eprintln!(
            "  W4 rep {}/{}: QSBR all offline: synchronize_rcu p50 {:.2} us p99 {:.2} us ({} \
             samples, {membarriers} membarriers); liburcu-qsbr p50 {:.2} us p99 {:.2} us",
            rep + 1,
            cfg.reps,
            us(l.p50),
            us(l.p99),
            l.samples,
            urcu.as_ref().map_or(f64::NAN, |u| us(u.p50)),
            urcu.as_ref().map_or(f64::NAN, |u| us(u.p99)),
        );
        q50.push(us(l.p50));
        q99.push(us(l.p99));
        qmb.push(membarriers as f64);
        crate::w1::push_peer(&mut urcu50, || urcu.map(|u| us(u.p50)));
        crate::w1::push_peer(&mut urcu99, || urcu.map(|u| us(u.p99)));
        let r = ours_sync(cfg);
        n50.push(us(r.normal.p50));
        n99.push(us(r.normal.p99));
        nmax.push(us(r.normal.max));
        e50.push(us(r.expedited.p50));
        e99.push(us(r.expedited.p99));
        emax.push(us(r.expedited.max));
        p50.push(us(r.polled.p50));
        p99.push(us(r.polled.p99));
        pmax.push(us(r.polled.max));
        if let Some(m) = &r.membarrier {
            m50.push(us(m.p50));
            m99.push(us(m.p99));
            mmax.push(us(m.max));
            ratio_n.push(r.normal.p50 / m.p50);
            ratio_e.push(r.expedited.p50 / m.p50);
        }
        ratio_p.push(r.polled.p99 / r.normal.p99);
        eprintln!(
            "  W4 rep {}/{}: sync p50 {:.1} us p99 {:.1} us ({} samples), expedited p50 {:.1} us \
             ({}), polled p50 {:.1} us p99 {:.1} us ({}), membarrier p50 {:.2} us ({})",
            rep + 1,
            cfg.reps,
            us(r.normal.p50),
            us(r.normal.p99),
            r.normal.samples,
            us(r.expedited.p50),
            r.expedited.samples,
            us(r.polled.p50),
            us(r.polled.p99),
            r.polled.samples,
            r.membarrier.as_ref().map_or(f64::NAN, |m| us(m.p50)),
            r.membarrier.as_ref().map_or(0, |m| m.samples)
        );
        for s in System::ALL {
            let v = analogue(cfg, s);
            let failed = v.iter().filter(|x| x.is_nan()).count();
            let ok: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            let l = Latency::of(&ok);
            eprintln!(
                "  W4 rep {}/{} {:>15}: retire-to-free p50 {:.1} us p99 {:.1} us ({} samples, {} timed out)",
                rep + 1,
                cfg.reps,
                s.name(),
                us(l.p50),
                us(l.p99),
                l.samples,
                failed
            );
            ana50.push(s, us(l.p50));
            ana99.push(s, us(l.p99));
            ana_failed.push(s, failed as f64);
        }
        for (i, busy) in [false, true].into_iter().enumerate() {
            let (t1, _) = sharing(1, cfg.w4_k, busy);
            let (t4, gps_per_call) = sharing(SHARERS, cfg.w4_k, busy);
            eprintln!(
                "  W4 rep {}/{}: sharing{}: 1 thread x {} syncs {:.2} ms, {} threads x {} {:.2} ms: \
                 {:.2}x, {:.2} grace periods per call",
                rep + 1,
                cfg.reps,
                if busy { " (busy reader)" } else { " (no reader)" },
                cfg.w4_k,
                t1,
                SHARERS,
                cfg.w4_k,
                t4,
                t4 / t1,
                gps_per_call
            );
            t1s[i].push(t1);
            t4s[i].push(t4);
            share[i].push(t4 / t1);
            per_call[i].push(gps_per_call);
        }
    }
    let ours_only = |v: Vec<f64>| PerSystem { ours: v, ..PerSystem::default() };
    let row = |metric: &str, unit: &'static str, better, v: Vec<f64>| {
        Row::from_reps("W4", metric.to_string(), unit, better, ours_only(v))
    };
    rows.push(row("synchronize_rcu p50 (us)", "us", Better::Lower, n50));
    rows.push(row("synchronize_rcu p99 (us)", "us", Better::Lower, n99));
    rows.push(
        Row::new("W4", "synchronize_rcu max (us)", "us").ours(max_of(&nmax)).better(Better::Lower),
    );
    rows.push(row("synchronize_rcu_expedited p50 (us)", "us", Better::Lower, e50));
    rows.push(row("synchronize_rcu_expedited p99 (us)", "us", Better::Lower, e99));
    rows.push(
        Row::new("W4", "synchronize_rcu_expedited max (us)", "us")
            .ours(max_of(&emax))
            .better(Better::Lower),
    );
    rows.push(row("polled grace period p50 (us)", "us", Better::Lower, p50));
    rows.push(row("polled grace period p99 (us)", "us", Better::Lower, p99));
    rows.push(
        Row::new("W4", "polled grace period max (us)", "us")
            .ours(max_of(&pmax))
            .better(Better::Lower),
    );
    rows.push(
        row("polled p99 / synchronize_rcu p99 (x)", "x", Better::Lower, ratio_p)
            .target(Target::AtMost(3.0)),
    );
    if m50.is_empty() {
        notes.push(
            "W4: readers in fence mode (no membarrier): the membarrier floor and the ratios to \
             it are left out"
                .to_owned(),
        );
    } else {
        let m50_median = crate::common::median(&m50);
        notes.push(format!(
            "W4: membarrier p50 {m50_median:.2} us: {}",
            if m50_median < 2.0 {
                "cheap, so it interrupted no other CPU: the busy reader was mostly not running on \
                 the other CPU at the same time (a loaded 2-CPU machine); grace periods then cost \
                 one syscall, and the ratio compares like with like only because the samples are \
                 taken round-robin"
            } else {
                "it had to interrupt the CPU running the busy reader (an IPI), the case the \
                 floor is meant to capture"
            }
        ));
        rows.push(row("membarrier(PRIVATE_EXPEDITED) p50 (us)", "us", Better::Lower, m50));
        rows.push(row("membarrier(PRIVATE_EXPEDITED) p99 (us)", "us", Better::Lower, m99));
        rows.push(
            Row::new("W4", "membarrier(PRIVATE_EXPEDITED) max (us)", "us")
                .ours(max_of(&mmax))
                .better(Better::Lower),
        );
        rows.push(
            row("synchronize_rcu p50 / membarrier p50 (x)", "x", Better::Lower, ratio_n)
                .target(Target::AtMost(2.5)),
        );
        rows.push(
            row("expedited p50 / membarrier p50 (x)", "x", Better::Lower, ratio_e)
                .target(Target::AtMost(2.5)),
        );
    }
    rows.push(Row::from_reps("W4", "ANALOGUE retire-to-free p50 (us)", "us", Better::Lower, ana50));
    rows.push(Row::from_reps("W4", "ANALOGUE retire-to-free p99 (us)", "us", Better::Lower, ana99));
    if ana_failed.medians().iter().flatten().any(|&f| f > 0.0) {
        notes.push(format!(
            "W4 analogue: some retire-to-free samples timed out (2 s) and were left out: \
             {:?}",
            ana_failed
        ));
    }
    rows.push(
        row("QSBR synchronize_rcu, every thread offline, p50 (us)", "us", Better::Lower, q50)
            .other("liburcu-qsbr", urcu50)
            .target(Target::AtMost(1.0)),
    );
    rows.push(
        row("QSBR synchronize_rcu, every thread offline, p99 (us)", "us", Better::Lower, q99)
            .other("liburcu-qsbr", urcu99),
    );
    // The sum over the repetitions: every grace period of the run.
    rows.push(
        Row::new("W4", "QSBR synchronize_rcu, every thread offline: membarriers (run)", "count")
            .ours(qmb.iter().sum())
            .target(Target::Equals(0.0)),
    );
    let [t1_idle, t1_busy] = t1s;
    let [t4_idle, t4_busy] = t4s;
    let [share_idle, share_busy] = share;
    let [per_call_idle, per_call_busy] = per_call;
    let k = cfg.w4_k;
    for (label, t1, t4, share, per_call) in [
        ("no reader", t1_idle, t4_idle, share_idle, per_call_idle),
        ("busy reader", t1_busy, t4_busy, share_busy, per_call_busy),
    ] {
        rows.push(row(
            &format!("sharing, {label}: 1 thread x {k} synchronize_rcu (ms)"),
            "ms",
            Better::Lower,
            t1,
        ));
        rows.push(row(
            &format!("sharing, {label}: {SHARERS} threads x {k} each (ms)"),
            "ms",
            Better::Lower,
            t4,
        ));
        rows.push(
            row(
                &format!("GP sharing, {label}: 4-thread / 1-thread time (x)"),
                "x",
                Better::Lower,
                share,
            )
            .target(Target::AtMost(1.5)),
        );
        rows.push(row(
            &format!("GP sharing, {label}: grace periods per call, {SHARERS} threads"),
            "GP/call",
            Better::Lower,
            per_call,
        ));
    }
}

fn max_of(v: &[f64]) -> f64 {
    crate::common::max(v)
}
