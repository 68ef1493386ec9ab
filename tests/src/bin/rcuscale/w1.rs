//! W1: the cost of a read section. One thread, N x (enter, load the shared pointer, read a
//! field, exit), the same loop shape for every system; and the nested cost (one outer
//! section, N x nested enter/load/read/exit inside it).
//!
//! `black_box` on the pointer's owner each iteration keeps the load from being hoisted out
//! of the loop, and on the field read keeps the read (and so the section) from being
//! removed. The liburcu peers (liburcu.rs) run the same loops in C, with the same black box.
//!
//! QSBR: `RcuCell::load` through an online handle of a `QsbrDomain`, a quiescent state every
//! 1024 reads, against urcu-qsbr's `rcu_dereference` (same cadence) and arc-swap's
//! `Cache::load`; the classic section against urcu-memb's.

use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Cache};
use crossbeam_epoch as epoch;
use rcu_core::prelude::*;
use rcu_core::{Rcu, RcuCell};
use seize::{reclaim, Collector, Guard as _};

use crate::common::{Node, PerSystem, System, CROSSBEAM, OTHER, OURS, SEIZE};
use crate::liburcu;
use crate::report::{Better, Row, Target};
use crate::Config;

/// ns per read section, RcuCell on the global domain.
fn ours(n: u64) -> f64 {
    let cell = RcuCell::new(Node::<OURS>::new(1));
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx)); // registers the thread outside the timed loop
    let start = Instant::now();
    for _ in 0..n {
        let guard = read_lock(&mut ctx);
        let node = black_box(&cell).load(&guard);
        black_box(node.data[0]);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Reads per quiescent state in the QSBR rows (the C peer's loop has the same; so has W3).
pub(crate) const QSBR_BATCH: u64 = 1024;

/// ns per QSBR read: `RcuCell::load` through the thread's online handle of a `QsbrDomain`
/// (no section to enter or leave), with a quiescent state every 1024 reads, as an event loop
/// would announce one per iteration.
#[inline(never)] // out of line, so that a profile names the loop
fn ours_qsbr(n: u64) -> f64 {
    let domain = rcu_core::QsbrDomain::new(rcu_core::DomainConfig::new().name("rcuscale-w1-qsbr"));
    let cell = RcuCell::new_in(&domain, Node::<OURS>::new(1));
    let mut ctx = Sleepable::enter();
    let mut online = domain.online(&mut ctx); // registers the thread outside the timed loop
    let start = Instant::now();
    for i in 0..n {
        let node = black_box(&cell).load(&online);
        black_box(node.data[0]);
        if i % QSBR_BATCH == QSBR_BATCH - 1 {
            online.quiescent_state();
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// ns per `QsbrDomain::read` + `RcuCell::load` on an executor worker online in the domain
/// (the executor hooks driven by hand: started, parked, then reading): a section of two plain
/// stores per read, the domain's grace periods paying with membarrier (for information).
#[inline(never)] // out of line, so that a profile names the loop
fn ours_qsbr_executor(n: u64) -> f64 {
    let domain = rcu_core::QsbrDomain::new(rcu_core::DomainConfig::new().name("rcuscale-w1-exec"));
    let cell = RcuCell::new_in(&domain, Node::<OURS>::new(1));
    domain.executor_thread_start();
    domain.executor_thread_park();
    domain.read(|r| black_box(cell.load(r).data[0])); // online outside the timed loop
    let start = Instant::now();
    for _ in 0..n {
        domain.read(|r| black_box(black_box(&cell).load(r).data[0]));
    }
    let elapsed = start.elapsed();
    domain.executor_thread_stop();
    elapsed.as_nanos() as f64 / n as f64
}

/// ns per QSBR read of a raw `AtomicPtr` while online: `ours_qsbr` without `RcuCell`'s domain
/// check, to show what that check costs (for information).
#[inline(never)] // out of line, so that a profile names the loop
fn ours_qsbr_raw(n: u64) -> f64 {
    let domain = rcu_core::QsbrDomain::new(rcu_core::DomainConfig::new().name("rcuscale-w1-qsbr"));
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<OURS>::new(1))));
    let mut ctx = Sleepable::enter();
    let mut online = domain.online(&mut ctx);
    let start = Instant::now();
    for i in 0..n {
        // Acquire: pairs with the publication (here: the thread's own initialisation).
        let p = black_box(&ptr).load(Ordering::Acquire);
        // SAFETY: the node is never unpublished while the loop runs.
        black_box(unsafe { &*p }.data[0]);
        if i % QSBR_BATCH == QSBR_BATCH - 1 {
            online.quiescent_state();
        }
    }
    let elapsed = start.elapsed();
    drop(online);
    // SAFETY: from Box::into_raw above; no reader is left.
    drop(unsafe { Box::from_raw(ptr.into_inner()) });
    elapsed.as_nanos() as f64 / n as f64
}

/// ns per `arc_swap::Cache::load` (a `Cache` over an `ArcSwap`) and one field: the load of
/// a thread that keeps its own cached `Arc`, which the `ArcSwap` is checked against.
#[inline(never)] // out of line, so that a profile names the loop
fn arc_swap_cache(n: u64) -> f64 {
    let swap = ArcSwap::from_pointee(Node::<OTHER>::new(1));
    let mut cache = Cache::new(&swap);
    drop(cache.load().clone()); // fills the cache outside the timed loop
    let start = Instant::now();
    for _ in 0..n {
        let node: &Arc<Node<OTHER>> = black_box(&mut cache).load();
        black_box(node.data[0]);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// ns per read section, a raw `AtomicPtr<Rcu<Node>>` loaded under `read_lock`.
fn ours_raw(n: u64) -> f64 {
    let ptr = AtomicPtr::new(Box::into_raw(Rcu::boxed(Node::<OURS>::new(1))));
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx));
    let start = Instant::now();
    for _ in 0..n {
        let guard = read_lock(&mut ctx);
        // Acquire: pairs with the publication (here: the thread's own initialisation).
        let p = black_box(&ptr).load(Ordering::Acquire);
        // SAFETY: the node is never unpublished while the loop runs; the guard would keep
        // it alive anyway.
        black_box(unsafe { &*p }.data[0]);
        drop(guard);
    }
    let elapsed = start.elapsed();
    // SAFETY: from Box::into_raw above; no reader is left.
    drop(unsafe { Box::from_raw(ptr.into_inner()) });
    elapsed.as_nanos() as f64 / n as f64
}

fn crossbeam(n: u64) -> f64 {
    let atomic = epoch::Atomic::new(Node::<CROSSBEAM>::new(1));
    drop(epoch::pin());
    let start = Instant::now();
    for _ in 0..n {
        let guard = epoch::pin();
        // Acquire: the peer's equivalent of the load under our guard (same loop shape).
        let p = black_box(&atomic).load(Ordering::Acquire, &guard);
        // SAFETY: non-null (initialised above) and never retired while the loop runs.
        black_box(unsafe { p.deref() }.data[0]);
    }
    let elapsed = start.elapsed();
    // SAFETY: no other thread has access to `atomic`.
    drop(unsafe { atomic.into_owned() });
    elapsed.as_nanos() as f64 / n as f64
}

fn seize(n: u64) -> f64 {
    let collector = Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<SEIZE>::new(1))));
    drop(collector.enter());
    let start = Instant::now();
    for _ in 0..n {
        let guard = collector.enter();
        // Acquire: as above, through seize's `protect`.
        let p = guard.protect(black_box(&ptr), Ordering::Acquire);
        // SAFETY: never retired while the loop runs.
        black_box(unsafe { &*p }.data[0]);
    }
    let elapsed = start.elapsed();
    // SAFETY: unpublished (no one else can reach `ptr`), allocated with Box.
    unsafe { collector.retire(ptr.into_inner(), reclaim::boxed) };
    elapsed.as_nanos() as f64 / n as f64
}

fn ours_nested(n: u64) -> f64 {
    let cell = RcuCell::new(Node::<OURS>::new(1));
    let mut ctx = Sleepable::enter();
    let outer = read_lock(&mut ctx);
    let start = Instant::now();
    for _ in 0..n {
        let guard = outer.nest();
        let node = black_box(&cell).load(&guard);
        black_box(node.data[0]);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn crossbeam_nested(n: u64) -> f64 {
    let atomic = epoch::Atomic::new(Node::<CROSSBEAM>::new(1));
    let outer = epoch::pin();
    let start = Instant::now();
    for _ in 0..n {
        let guard = epoch::pin();
        // Acquire: the peer's equivalent of the load under our guard (same loop shape).
        let p = black_box(&atomic).load(Ordering::Acquire, &guard);
        // SAFETY: as in `crossbeam`.
        black_box(unsafe { p.deref() }.data[0]);
    }
    let elapsed = start.elapsed();
    drop(outer);
    // SAFETY: as in `crossbeam`.
    drop(unsafe { atomic.into_owned() });
    elapsed.as_nanos() as f64 / n as f64
}

fn seize_nested(n: u64) -> f64 {
    let collector = Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<SEIZE>::new(1))));
    let outer = collector.enter();
    let start = Instant::now();
    for _ in 0..n {
        let guard = collector.enter();
        // Acquire: as above, through seize's `protect`.
        let p = guard.protect(black_box(&ptr), Ordering::Acquire);
        // SAFETY: as in `seize`.
        black_box(unsafe { &*p }.data[0]);
    }
    let elapsed = start.elapsed();
    drop(outer);
    // SAFETY: as in `seize`.
    unsafe { collector.retire(ptr.into_inner(), reclaim::boxed) };
    elapsed.as_nanos() as f64 / n as f64
}

/// Runs a peer that may not be built (`measure`) and records its value, or why it has none
/// (then it is not run again).
pub(crate) fn push_peer(
    values: &mut Result<Vec<f64>, &'static str>,
    measure: impl FnOnce() -> Result<f64, &'static str>,
) {
    if let Ok(v) = values {
        match measure() {
            Ok(x) => v.push(x),
            Err(why) => *values = Err(why),
        }
    }
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = cfg.w1_n;
    let mut flat = PerSystem::default();
    let mut raw = Vec::new();
    let mut qsbr = Vec::new();
    let mut qsbr_raw = Vec::new();
    let mut arc_swap = Vec::new();
    let mut qsbr_executor = Vec::new();
    // A peer not built stays an error (its cell says why) and is not called again.
    let mut urcu_qsbr: Result<Vec<f64>, &'static str> = Ok(Vec::new());
    let mut urcu_memb: Result<Vec<f64>, &'static str> = Ok(Vec::new());
    let mut nested = PerSystem::default();
    for rep in 0..cfg.reps {
        for s in System::ALL {
            let v = match s {
                System::Ours => ours(n),
                System::Crossbeam => crossbeam(n),
                System::Seize => seize(n),
            };
            flat.push(s, v);
            if s == System::Ours {
                raw.push(ours_raw(n));
                qsbr.push(ours_qsbr(n));
            }
        }
        // The QSBR reads and their peers, then urcu-memb (the classic section's peer).
        qsbr_raw.push(ours_qsbr_raw(n));
        qsbr_executor.push(ours_qsbr_executor(n));
        arc_swap.push(arc_swap_cache(n));
        push_peer(&mut urcu_qsbr, || liburcu::qsbr_read(n));
        push_peer(&mut urcu_memb, || liburcu::memb_read(n));
        for s in System::ALL {
            let v = match s {
                System::Ours => ours_nested(n),
                System::Crossbeam => crossbeam_nested(n),
                System::Seize => seize_nested(n),
            };
            nested.push(s, v);
        }
        let last = |v: &Result<Vec<f64>, &str>| {
            v.as_ref().ok().and_then(|v| v.last().copied()).unwrap_or(f64::NAN)
        };
        eprintln!(
            "  W1 rep {}/{}: read {:.2} / {:.2} / {:.2} ns, raw {:.2} ns, nested {:.2} / {:.2} / {:.2} ns, \
             urcu-memb {:.2} ns; QSBR {:.3} ns, raw {:.3} ns, urcu-qsbr {:.3} ns, arc-swap Cache {:.3} ns",
            rep + 1,
            cfg.reps,
            flat.ours[rep],
            flat.crossbeam[rep],
            flat.seize[rep],
            raw[rep],
            nested.ours[rep],
            nested.crossbeam[rep],
            nested.seize[rep],
            last(&urcu_memb),
            qsbr[rep],
            qsbr_raw[rep],
            last(&urcu_qsbr),
            arc_swap[rep],
        );
    }
    // The raw variant against the same peer runs.
    let raw_reps =
        PerSystem { ours: raw, crossbeam: flat.crossbeam.clone(), seize: flat.seize.clone() };
    let qsbr_reps = PerSystem {
        ours: qsbr.clone(),
        crossbeam: flat.crossbeam.clone(),
        seize: flat.seize.clone(),
    };
    let qsbr_raw_reps = PerSystem { ours: qsbr_raw, ..PerSystem::default() };
    rows.push(
        Row::from_reps(
            "W1",
            "read section, read_lock + RcuCell::load (ns/op)",
            "ns/op",
            Better::Lower,
            flat,
        )
        .other("liburcu-memb", urcu_memb)
        .target(Target::All(&[Target::VsCrossbeamAtMost(0.5), Target::VsOtherAtMost(1.0)])),
    );
    rows.push(Row::from_reps(
        "W1",
        "read section, ours AtomicPtr+read_lock (ns/op)",
        "ns/op",
        Better::Lower,
        raw_reps,
    ));
    // Issue 26: <= 0.4 ns on this project's machine, <= 1.2x urcu-qsbr, <= 1.0x arc-swap's
    // `Cache::load` (the same rcu-ctx runs on both rows).
    rows.push(
        Row::from_reps(
            "W1",
            "QSBR read, RcuCell::load through an online handle (ns/op)",
            "ns/op",
            Better::Lower,
            qsbr_reps,
        )
        .other("liburcu-qsbr", urcu_qsbr)
        .target(Target::All(&[Target::AtMost(0.4), Target::VsOtherAtMost(1.2)])),
    );
    rows.push(
        Row::from_reps(
            "W1",
            "QSBR read, RcuCell::load vs arc-swap Cache::load (ns/op)",
            "ns/op",
            Better::Lower,
            PerSystem { ours: qsbr, ..PerSystem::default() },
        )
        .other("arc-swap", Ok(arc_swap))
        .target(Target::VsOtherAtMost(1.0)),
    );
    rows.push(Row::from_reps(
        "W1",
        "QSBR read, ours AtomicPtr while online (ns/op)",
        "ns/op",
        Better::Lower,
        qsbr_raw_reps,
    ));
    rows.push(Row::from_reps(
        "W1",
        "QSBR read on an executor worker, QsbrDomain::read + RcuCell::load (ns/op)",
        "ns/op",
        Better::Lower,
        PerSystem { ours: qsbr_executor, ..PerSystem::default() },
    ));
    rows.push(Row::from_reps("W1", "nested read section (ns/op)", "ns/op", Better::Lower, nested));
    if let Ok(membarrier) = liburcu::memb_uses_membarrier() {
        notes.push(format!(
            "W1: liburcu-memb's readers {}",
            if membarrier {
                "rely on membarrier (a compiler barrier at entry and exit), as ours do"
            } else {
                "fence at entry and exit (no membarrier here)"
            }
        ));
    }
}
