//! W1: the cost of a read section. One thread, N x (enter, load the shared pointer, read a
//! field, exit), the same loop shape for every system; and the nested cost (one outer
//! section, N x nested enter/load/read/exit inside it).
//!
//! `black_box` on the pointer's owner each iteration keeps the load from being hoisted out
//! of the loop, and on the field read keeps the read (and so the section) from being
//! removed; neither adds a memory access of its own.

use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Instant;

use crossbeam_epoch as epoch;
use rcu_core::prelude::*;
use rcu_core::{Rcu, RcuCell};
use seize::{reclaim, Collector, Guard as _};

use crate::common::{Node, PerSystem, System, CROSSBEAM, OURS, SEIZE};
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

/// ns per QSBR read: `RcuCell::load` through the thread's online handle of a `QsbrDomain`
/// (no section to enter or leave), with a quiescent state every 1024 reads, as an event loop
/// would announce one per iteration.
fn ours_qsbr(n: u64) -> f64 {
    let domain = rcu_core::QsbrDomain::new(rcu_core::DomainConfig::new().name("rcuscale-w1-qsbr"));
    let cell = RcuCell::new_in(&domain, Node::<OURS>::new(1));
    let mut ctx = Sleepable::enter();
    let mut online = domain.online(&mut ctx); // registers the thread outside the timed loop
    let start = Instant::now();
    for i in 0..n {
        let node = black_box(&cell).load(&online);
        black_box(node.data[0]);
        if i % 1024 == 1023 {
            online.quiescent_state();
        }
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

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let n = cfg.w1_n;
    let mut flat = PerSystem::default();
    let mut raw = Vec::new();
    let mut qsbr = Vec::new();
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
        for s in System::ALL {
            let v = match s {
                System::Ours => ours_nested(n),
                System::Crossbeam => crossbeam_nested(n),
                System::Seize => seize_nested(n),
            };
            nested.push(s, v);
        }
        eprintln!(
            "  W1 rep {}/{}: read {:.2} / {:.2} / {:.2} ns, raw {:.2} ns, nested {:.2} / {:.2} / {:.2} ns",
            rep + 1,
            cfg.reps,
            flat.ours[rep],
            flat.crossbeam[rep],
            flat.seize[rep],
            raw[rep],
            nested.ours[rep],
            nested.crossbeam[rep],
            nested.seize[rep]
        );
    }
    // The raw variant against the same peer runs.
    let raw_reps =
        PerSystem { ours: raw, crossbeam: flat.crossbeam.clone(), seize: flat.seize.clone() };
    let qsbr_reps =
        PerSystem { ours: qsbr, crossbeam: flat.crossbeam.clone(), seize: flat.seize.clone() };
    rows.push(
        Row::from_reps(
            "W1",
            "read section, read_lock + RcuCell::load (ns/op)",
            "ns/op",
            Better::Lower,
            flat,
        )
        .target(Target::VsCrossbeamAtMost(0.5)),
    );
    rows.push(Row::from_reps(
        "W1",
        "read section, ours AtomicPtr+read_lock (ns/op)",
        "ns/op",
        Better::Lower,
        raw_reps,
    ));
    rows.push(Row::from_reps(
        "W1",
        "QSBR read, RcuCell::load through an online handle (ns/op)",
        "ns/op",
        Better::Lower,
        qsbr_reps,
    ));
    rows.push(Row::from_reps("W1", "nested read section (ns/op)", "ns/op", Better::Lower, nested));
}
