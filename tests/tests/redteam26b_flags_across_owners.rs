//! Red team, issue 26, round 2: online flags and slot owners. A grace period issues a
//! membarrier while any slot of its domain has the online flag set, so a flag left set by a
//! thread that is gone (exited online without the stop hook, with or without a leaked root)
//! or inherited by the next owner of its slot would make every later grace period pay, and
//! a flag that the next owner's reads trusted without having set it would let them enter
//! without a fence. Checked: after each exit the domain's grace periods issue no membarrier;
//! the next owners of the slots (a plain thread, an executor's thread not yet parked) read
//! offline; an executor's thread goes online only after a park, and then pays again.
//! Holds: `Registration::end` clears the flag (`Slot::end_executor_online`) and
//! `Slot::set_owner` resets the whole executor state.
//!
//! Deterministic: every thread is joined before the grace periods that are counted.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::thread;

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

/// Runs `f` on a new thread and joins it.
fn on_thread<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::Builder::new().name(name.into()).spawn(f).expect("spawn").join().expect("the thread")
}

#[test]
fn exited_online_workers_leave_no_flag_and_the_next_owners_start_offline() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26b-owners")));
    let cell = Arc::new(RcuCell::new_in(&*d, 7u64));
    let membarrier = rcu_core::raw::barrier::uses_membarrier();
    for leak_root in [false, true] {
        let (d2, c2) = (d.clone(), cell.clone());
        let online = on_thread("red26b-exit-online", move || {
            d2.executor_thread_start();
            d2.executor_thread_park();
            assert_eq!(d2.read(|r| *c2.load(r)), 7);
            if leak_root {
                std::mem::forget(Sleepable::enter());
            }
            d2.is_executor_online() // and exits without the stop hook
        });
        assert!(online, "the worker went online");
        assert_eq!(
            membarriers_of(&d, 3),
            0,
            "a flag outlived its thread (leaked root: {leak_root})"
        );
    }
    // The next owners of those slots.
    let (d2, c2) = (d.clone(), cell.clone());
    let plain = on_thread("red26b-next-plain", move || {
        d2.register_current_thread(&Sleepable::enter());
        (d2.read(|r| *c2.load(r)), d2.is_executor_online())
    });
    assert_eq!(plain, (7, false), "a plain thread inherited an online flag");
    let (d2, c2) = (d.clone(), cell.clone());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<bool>();
    let worker = thread::Builder::new()
        .name("red26b-next-worker".into())
        .spawn(move || {
            d2.executor_thread_start();
            assert_eq!(d2.read(|r| *c2.load(r)), 7);
            ack_tx.send(d2.is_executor_online()).expect("the test waits"); // not parked yet
            rx.recv().expect("step");
            d2.executor_thread_park();
            assert_eq!(d2.read(|r| *c2.load(r)), 7);
            ack_tx.send(d2.is_executor_online()).expect("the test waits"); // online now
            rx.recv().expect("step");
            d2.executor_thread_stop();
        })
        .expect("spawn");
    assert!(!ack_rx.recv().expect("the worker reads"), "online before its executor parked it");
    assert_eq!(membarriers_of(&d, 3), 0, "a membarrier with no thread online");
    tx.send(()).expect("the worker waits");
    assert!(ack_rx.recv().expect("the worker reads"), "a parked worker's read did not go online");
    let paid = membarriers_of(&d, 3);
    if membarrier {
        assert_eq!(paid, 3, "grace periods did not pay for an online worker");
    }
    tx.send(()).expect("the worker waits");
    worker.join().expect("the worker");
    assert_eq!(membarriers_of(&d, 3), 0, "the stop hook left the flag set");
}
