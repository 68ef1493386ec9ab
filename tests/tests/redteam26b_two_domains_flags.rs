//! Red team, issue 26, round 2: online flags of one thread in two QSBR domains. Each domain's
//! grace periods look only at their own slots' flags: a worker online in `a` must cost `b`'s
//! grace periods nothing, a read of `b` nested in a read of `a` puts the thread online in
//! `b` too (its own flag and fence), a park of `a` alone leaves it online in `b` (whose grace
//! periods keep paying, and must: its reads there still enter without a fence), and a value
//! of `b` held inside the nested closure survives a grace period of `b` led meanwhile.
//! Holds: the flag is per slot, and a slot per thread and domain.
//!
//! Deterministic: the worker's hooks are called by hand, each step acknowledged on a channel.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use common::{assert_holds_for, Canary, Pending, HOLD};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

/// Membarriers issued by `n` grace periods of `d` run from this thread.
fn membarriers_of(d: &QsbrDomain, n: u64) -> u64 {
    let ctx = Sleepable::enter();
    let before = d.stats().membarriers;
    for _ in 0..n {
        d.synchronize_rcu(&ctx);
    }
    d.stats().membarriers - before
}

enum Step {
    ReadA,
    /// Read `b` inside a read of `a`, holding `b`'s value until `Release`.
    ReadBInsideA,
    Release,
    ParkA,
    ParkB,
}

#[test]
fn flags_are_per_domain_and_nested_reads_go_online_in_both() {
    let a = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26b-two-a")));
    let b = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26b-two-b")));
    let cell_a = Arc::new(RcuCell::new_in(&*a, 1u64));
    let (canary, b_dropped) = Canary::new(10);
    let cell_b = Arc::new(RcuCell::new_in(&*b, canary));
    let (step_tx, step_rx) = mpsc::channel::<Step>();
    let (ack_tx, ack_rx) = mpsc::channel::<(u64, bool, bool)>();
    let worker = {
        let (a, b, cell_a, cell_b) = (a.clone(), b.clone(), cell_a.clone(), cell_b.clone());
        Pending::spawn("red26b-two-worker", move || {
            for d in [&a, &b] {
                d.executor_thread_start();
                d.executor_thread_park();
            }
            let state = |v: u64| (v, a.is_executor_online(), b.is_executor_online());
            let mut last = 0;
            while let Ok(step) = step_rx.recv() {
                match step {
                    Step::ReadA => {
                        let v = a.read(|r| *cell_a.load(r));
                        ack_tx.send(state(v)).expect("the test waits");
                    }
                    Step::ReadBInsideA => {
                        last = a.read(|_| {
                            b.read(|r| {
                                let value = cell_b.load(r);
                                ack_tx.send(state(value.value())).expect("the test waits");
                                let _ = step_rx.recv(); // Release
                                value.value() // poisoned if freed meanwhile
                            })
                        });
                        ack_tx.send(state(last)).expect("the test waits");
                    }
                    Step::Release => unreachable!("only inside ReadBInsideA"),
                    Step::ParkA => {
                        a.executor_thread_park();
                        ack_tx.send(state(0)).expect("the test waits");
                    }
                    Step::ParkB => {
                        b.executor_thread_park();
                        ack_tx.send(state(0)).expect("the test waits");
                    }
                }
            }
            a.executor_thread_stop();
            b.executor_thread_stop();
            last
        })
    };
    let step = |s: Step| {
        step_tx.send(s).expect("the worker waits");
        ack_rx.recv().expect("the worker acknowledges")
    };
    let membarrier = rcu_core::raw::barrier::uses_membarrier();
    assert_eq!(step(Step::ReadA), (1, true, false), "a read of a goes online in a only");
    assert_eq!(membarriers_of(&b, 3), 0, "b paid for a worker online in a");
    if membarrier {
        assert_eq!(membarriers_of(&a, 3), 3, "a did not pay for its online worker");
    }
    assert_eq!(step(Step::ReadBInsideA), (10, true, true), "a nested read of b went online in b");
    // A grace period of b while the nested closure holds b's value: it must wait.
    let mut writer = {
        let (b, cell_b) = (b.clone(), cell_b.clone());
        Pending::spawn("red26b-two-writer", move || {
            let ctx = Sleepable::enter();
            cell_b.set(&ctx, Canary::new(11).0);
            b.synchronize_rcu(&ctx);
        })
    };
    assert_holds_for(HOLD, "b's grace period ended under a nested read of b", || {
        !writer.is_done() && !b_dropped.load(Ordering::SeqCst)
    });
    step_tx.send(Step::Release).expect("the worker waits");
    assert_eq!(ack_rx.recv().expect("the worker leaves"), (10, true, true));
    writer.join("b's grace period once the nested read ended");
    assert_eq!(step(Step::ParkA), (0, false, true), "a park of a alone");
    assert_eq!(membarriers_of(&a, 3), 0, "a paid after its worker parked");
    if membarrier {
        // At least: b's worker thread may run a grace period of its own for the free.
        let paid = membarriers_of(&b, 3);
        assert!(paid >= 3, "b stopped paying while its worker is online ({paid} of 3)");
    }
    assert_eq!(step(Step::ParkB), (0, false, false));
    assert_eq!(membarriers_of(&b, 3), 0, "b paid after its worker parked");
    drop(step_tx);
    assert_eq!(worker.join("the worker"), 10);
    b.rcu_barrier(&Sleepable::enter());
    assert!(b_dropped.load(Ordering::SeqCst), "b's replaced value was never freed");
}
