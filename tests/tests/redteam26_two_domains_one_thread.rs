//! Red team, issue 26: one executor worker attached to two QSBR domains. A read of B and a
//! park for B inside a read closure of A must end B's online period only: A's closure keeps
//! its value, and B's grace periods are not held by the thread. (A wait for B inside A's
//! closure is refused by the context rules: a captured `Sleepable` inside a read section.)
//! Each domain has its own entry (`WorkerState`: online flag, reads counter) and word.
//!
//! Deterministic: channels order every step. Held at the time of writing.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use common::{assert_holds_for, Canary, Pending, HOLD};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

#[test]
fn quiescent_states_of_one_domain_inside_anothers_read_leave_it_protected() {
    let a = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-two-a")));
    let b = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-two-b")));
    let (canary, a_dropped) = Canary::new(1);
    let cell_a = Arc::new(RcuCell::new_in(&*a, canary));
    let cell_b = Arc::new(RcuCell::new_in(&*b, Canary::new(10).0));
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = {
        let (a, b, cell_a, cell_b) = (a.clone(), b.clone(), cell_a.clone(), cell_b.clone());
        Pending::spawn("red26-two-worker", move || {
            for d in [&a, &b] {
                d.executor_thread_start();
                d.executor_thread_park();
            }
            assert_eq!(b.read(|r| cell_b.load(r).value()), 10);
            assert!(b.is_executor_online());
            let held = a.read(|r| {
                let value = cell_a.load(r);
                // B: a read (its entry a quiescent state of B), a park, a wait for B.
                assert_eq!(b.read(|r| cell_b.load(r).value()), 10);
                b.executor_thread_park();
                assert!(!b.is_executor_online());
                assert_eq!(b.read(|r| cell_b.load(r).value()), 10);
                b.executor_thread_park(); // offline in B again while A's closure runs
                loaded_tx.send(value.value()).expect("the test waits");
                go_rx.recv().expect("the test says when");
                value.value()
            });
            for d in [&a, &b] {
                d.executor_thread_park();
                d.executor_thread_stop();
            }
            held
        })
    };
    assert_eq!(loaded_rx.recv().expect("the worker loads"), 1);
    let mut writer = {
        let (a, cell_a) = (a.clone(), cell_a.clone());
        Pending::spawn("red26-two-writer", move || {
            let ctx = Sleepable::enter();
            cell_a.set(&ctx, Canary::new(2).0);
            a.synchronize_rcu(&ctx);
        })
    };
    // B's grace periods do not wait for the thread: it is offline in B.
    let b_writer = {
        let (b, cell_b) = (b.clone(), cell_b.clone());
        Pending::spawn("red26-two-b-writer", move || {
            let ctx = Sleepable::enter();
            cell_b.set(&ctx, Canary::new(11).0);
            b.synchronize_rcu(&ctx);
            b.rcu_barrier(&ctx);
        })
    };
    b_writer.join("B's grace period while the worker is inside A's closure, offline in B");
    assert_holds_for(HOLD, "B's quiescent states ended A's read", || {
        !writer.is_done() && !a_dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the worker waits");
    assert_eq!(worker.join("the worker"), 1, "A's value was freed under its closure");
    writer.join("A's grace period after the worker parked");
    a.rcu_barrier(&Sleepable::enter());
    assert!(a_dropped.load(Ordering::SeqCst));
    assert_eq!(a.stats().leaked_read_sections + b.stats().leaked_read_sections, 0);
}
