//! Red team, issue 26, round 2: an explicit `QsbrOnline` handle and executor reads on one
//! thread. Taking the handle ends the executor's online period, but a `QsbrDomain::read`
//! inside the handle's period puts the thread online for its executor again (it has parked
//! before, and no read closure runs): its sections nest in the handle's, entered without a
//! fence. A park then clears the flag while the handle still holds a value loaded through
//! it. The handle's value must stay protected until its quiescent state (its word holds the
//! handle's fenced section whatever the flag says), and the flag must follow the parks.
//! Holds: the handle's section is a classic fenced one (`QsbrDomain::online`), the read's
//! only nests in it, and `ReaderWord::refresh` refuses depth above 1.
//!
//! Deterministic: the thread's steps are acknowledged on a channel; the writer's grace
//! period is checked not to end for `HOLD` while the handle holds the value.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;

use common::{assert_holds_for, Canary, Pending, HOLD};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

#[test]
fn a_handle_value_outlives_executor_reads_and_parks_inside_the_handle() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26b-explicit-mix")));
    let (canary, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    let (held_tx, held_rx) = mpsc::channel::<(u64, bool, bool)>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26b-explicit-worker", move || {
            d.executor_thread_start();
            d.executor_thread_park();
            assert_eq!(d.read(|r| cell.load(r).value()), 1);
            assert!(d.is_executor_online());
            let mut ctx = Sleepable::enter();
            let mut online = d.online(&mut ctx);
            assert!(!d.is_executor_online(), "the handle did not end the executor's period");
            let kept = cell.load(&online);
            // A read inside the handle's period: online for the executor again.
            let inner = d.read(|r| cell.load(r).value());
            let online_inside = d.is_executor_online();
            d.executor_thread_park(); // the flag clears; the handle's value is still in use
            let after_park = d.is_executor_online();
            held_tx.send((inner, online_inside, after_park)).expect("the test waits");
            go_rx.recv().expect("the test says when");
            let last = kept.value(); // poisoned if it was freed meanwhile
            online.quiescent_state();
            // After the quiescent state, a read sees the new value.
            let fresh = d.read(|r| cell.load(r).value());
            drop(online);
            d.executor_thread_park();
            d.executor_thread_stop();
            (last, fresh)
        })
    };
    let (inner, online_inside, after_park) = held_rx.recv().expect("the worker holds");
    assert_eq!((inner, online_inside, after_park), (1, true, false));
    let mut writer = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26b-explicit-writer", move || {
            let ctx = Sleepable::enter();
            cell.set(&ctx, Canary::new(2).0);
            d.synchronize_rcu(&ctx);
        })
    };
    assert_holds_for(HOLD, "a grace period ended under an explicit handle's value", || {
        !writer.is_done() && !first_dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the worker waits");
    let (last, fresh) = worker.join("the worker");
    assert_eq!(last, 1, "the handle's value was freed under it");
    writer.join("the grace period after the quiescent state");
    assert_eq!(fresh, 2);
    let ctx = Sleepable::enter();
    d.rcu_barrier(&ctx);
    assert!(first_dropped.load(Ordering::SeqCst), "the replaced value was never freed");
    let before = d.stats().membarriers;
    d.synchronize_rcu(&ctx);
    assert_eq!(d.stats().membarriers, before, "a flag outlived the worker's last park");
}
