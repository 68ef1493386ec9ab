//! Red team, issue 26, round 2: an executor worker whose online flag changes while a grace
//! period is mid-scan (it looked at the flags, found none, issued no membarrier, and waits
//! for another reader). The worker goes online (set, fence), parks (clear), goes online
//! again, and stays inside a read closure. By store buffering with the grace period's fence
//! each of its sections sees the grace period begun and the removal before it: the value it
//! holds is the new one, the grace period ends without waiting for it, the old value is
//! freed once, and no membarrier was paid. Holds (a test cannot make a store linger in a
//! store buffer; it checks the order's outcome, liveness and cost).
//!
//! Deterministic: the domain's worker thread is held inside a callback, so that the writer
//! leads the only grace period; the grace period's stall report about the other reader says it is
//! mid-scan (reports come from the scan, after the flags were read); the worker's hooks are
//! called by hand, each step acknowledged on a channel.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::{gettid, Canary, Pending, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain, StallReport};

/// Worker commands.
enum Step {
    /// Read once (online), then park (offline).
    Cycle,
    /// Read, and stay inside the closure until the next command.
    Hold,
    Release,
}

/// Holds the domain's worker thread inside a callback until the returned sender is used (or
/// dropped), so that grace periods are led by the test's calls only.
fn hold_domain_worker(d: &QsbrDomain) -> mpsc::Sender<()> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    d.call_rcu_fn(&Sleepable::enter(), move |_| {
        entered_tx.send(()).expect("the test waits");
        let _ = release_rx.recv();
    });
    entered_rx.recv_timeout(PATIENCE).expect("the domain's worker runs the callback");
    release_tx
}

#[test]
fn a_worker_going_online_while_a_grace_period_scans_holds_the_new_value_only() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26b-mid-scan")));
    let (first, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, first));
    let domain_worker = hold_domain_worker(&d);
    // A plain thread online through an explicit handle holds the grace period.
    let (holder_tx, holder_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let holder = {
        let d = d.clone();
        Pending::spawn("red26b-scan-holder", move || {
            d.register_current_thread(&Sleepable::enter());
            let mut ctx = Sleepable::enter();
            let online = d.online(&mut ctx);
            holder_tx.send(gettid()).expect("the test waits");
            leave_rx.recv().expect("the test says when");
            drop(online);
        })
    };
    let holder_tid = holder_rx.recv().expect("the holder goes online");
    let (stall_tx, stall_rx) = mpsc::channel();
    d.set_stall_handler(Some(Arc::new(move |report: &StallReport| {
        let _ = stall_tx.send(report.tid);
    })));
    d.set_stall_timeout(Duration::from_millis(20));
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(2).0);
    let membarriers = d.stats().membarriers;
    let mut writer = {
        let d = d.clone();
        Pending::spawn("red26b-scan-writer", move || d.synchronize_rcu(&Sleepable::enter()))
    };
    let stalled_on = stall_rx.recv_timeout(PATIENCE).expect("the grace period waits, reported");
    assert_eq!(stalled_on, holder_tid, "the grace period waits for the holder");
    d.set_stall_handler(None);

    let (step_tx, step_rx) = mpsc::channel::<Step>();
    let (ack_tx, ack_rx) = mpsc::channel::<(u64, bool)>();
    let worker = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26b-scan-worker", move || {
            d.executor_thread_start();
            d.executor_thread_park();
            let mut last = 0;
            while let Ok(step) = step_rx.recv() {
                match step {
                    Step::Cycle => {
                        let seen = d.read(|r| cell.load(r).value());
                        ack_tx.send((seen, d.is_executor_online())).expect("the test waits");
                        d.executor_thread_park();
                    }
                    Step::Hold => {
                        last = d.read(|r| {
                            let value = cell.load(r);
                            ack_tx.send((value.value(), d.is_executor_online())).expect("waits");
                            let _ = step_rx.recv(); // Release
                            value.value() // poisoned if it was freed meanwhile
                        });
                    }
                    Step::Release => unreachable!("only inside Hold"),
                }
            }
            d.executor_thread_park();
            d.executor_thread_stop();
            last
        })
    };
    for _ in 0..3 {
        step_tx.send(Step::Cycle).expect("the worker waits");
        assert_eq!(ack_rx.recv().expect("the worker reads"), (2, true));
    }
    step_tx.send(Step::Hold).expect("the worker waits");
    assert_eq!(ack_rx.recv().expect("the worker reads"), (2, true));
    assert!(!writer.is_done(), "the grace period ended while the holder was online");
    leave_tx.send(()).expect("the holder waits");
    holder.join("the holder");
    // The worker is inside its closure, online, in a section begun after the grace period.
    writer.join("the grace period, once the holder left (the worker began after it)");
    assert_eq!(d.stats().membarriers, membarriers, "a membarrier for a flag set after the look");
    step_tx.send(Step::Release).expect("the worker waits");
    drop(step_tx);
    assert_eq!(worker.join("the worker"), 2, "the value was freed under the read closure");
    drop(domain_worker);
    d.rcu_barrier(&ctx);
    assert!(first_dropped.load(Ordering::SeqCst), "the replaced value was never freed");
}
