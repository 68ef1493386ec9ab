//! Red team, issue 26, round 2: grace periods resumed by another leader. `poll` leads
//! through `GracePeriods::try_advance`, which gives up when a reader holds the grace period
//! and leaves it in progress; the next leader resumes it with a fence only
//! (`GpSequence::start_or_resume_with`), without looking at the online flags again. Two
//! orders of a QSBR executor worker against that:
//! - online before the first leader looked (its section entered without a fence): the
//!   first leader saw the flag and issued the membarrier; the resuming leader must still
//!   wait for the worker's section;
//! - online after the first leader looked (set, fence, then a section without a fence): store
//!   buffering with the first leader's fence makes the worker's section see the grace period
//!   begun, so the resumed grace period need not wait for it, and issues no membarrier.
//!
//! Deterministic: the domain's worker thread is held inside a callback (`call_rcu_fn`
//! blocking on a channel), so that the test's own `poll` is the first leader; the executor
//! worker's hooks are called by hand, each step acknowledged on a channel. Holds: the
//! second case cannot force a store to linger in a store buffer; it checks the liveness and
//! the cost of the order, the first checks that a resume does not drop the first leader's
//! wait. Time bounds are watchdogs, and a `HOLD` during which a wait must not end.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use common::{assert_holds_for, wait_until, Canary, Pending, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

fn domain(name: &'static str) -> Arc<QsbrDomain> {
    Arc::new(QsbrDomain::new(DomainConfig::new().name(name)))
}

/// Holds the domain's worker thread inside a callback until the returned sender is used (or
/// dropped), so that grace periods are led by the test's calls only.
fn hold_domain_worker(d: &QsbrDomain) -> Sender<()> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    d.call_rcu_fn(&Sleepable::enter(), move |_| {
        entered_tx.send(()).expect("the test waits");
        let _ = release_rx.recv();
    });
    // The callback runs after a grace period that the worker leads; nothing holds it up.
    entered_rx.recv_timeout(PATIENCE).expect("the domain's worker runs the callback");
    release_tx
}

/// An executor worker driven by hand: started and parked, then `hold` reads the cell in a
/// closure that stays open until `release`.
struct Worker {
    cmd: Sender<()>,
    ack: Receiver<(u64, bool)>,
    thread: Pending<u64>,
}

impl Worker {
    fn spawn(d: &Arc<QsbrDomain>, cell: &Arc<RcuCell<Canary>>) -> Self {
        let (cmd, cmd_rx) = mpsc::channel::<()>();
        let (ack_tx, ack) = mpsc::channel();
        let (d, cell) = (d.clone(), cell.clone());
        let thread = Pending::spawn("red26b-resume-worker", move || {
            d.executor_thread_start();
            d.executor_thread_park();
            cmd_rx.recv().expect("hold");
            let last = d.read(|r| {
                let value = cell.load(r);
                ack_tx.send((value.value(), d.is_executor_online())).expect("the test waits");
                cmd_rx.recv().expect("release");
                value.value() // poisoned if it was freed meanwhile
            });
            d.executor_thread_park();
            d.executor_thread_stop();
            last
        });
        Worker { cmd, ack, thread }
    }

    /// Enters the read closure; returns the value loaded and whether the worker is online.
    fn hold(&self) -> (u64, bool) {
        self.cmd.send(()).expect("the worker waits");
        self.ack.recv().expect("the worker reads")
    }

    /// Leaves the closure; returns the value as the closure saw it last.
    fn release(self) -> u64 {
        self.cmd.send(()).expect("the worker waits");
        self.thread.join("the worker")
    }
}

/// Online first: the polled leader sees the flag (one membarrier) and gives up on the
/// worker's section; a blocking leader resumes the grace period and must wait for it.
#[test]
fn a_resumed_grace_period_waits_for_a_worker_online_before_it_began() {
    let d = domain("red26b-resume-online-first");
    let (first, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, first));
    let domain_worker = hold_domain_worker(&d);
    let worker = Worker::spawn(&d, &cell);
    assert_eq!(worker.hold(), (1, true), "the worker reads online");
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(2).0);
    let cookie = d.start_poll(&ctx);
    let before = d.stats().membarriers;
    assert!(!d.poll(cookie), "a polled grace period ended under an online worker's section");
    if rcu_core::raw::barrier::uses_membarrier() {
        assert_eq!(
            d.stats().membarriers,
            before + 1,
            "the polled leader did not start the grace period, or missed the online flag"
        );
    }
    let mut resumed = {
        let d = d.clone();
        Pending::spawn("red26b-resume-leader", move || d.synchronize_rcu(&Sleepable::enter()))
    };
    assert_holds_for(HOLD, "a resumed grace period ended under an online worker's section", || {
        !resumed.is_done() && !first_dropped.load(Ordering::SeqCst)
    });
    assert_eq!(worker.release(), 1, "the value was freed under the read closure");
    resumed.join("the resumed grace period once the worker left");
    assert!(d.poll(cookie));
    drop(domain_worker);
    d.rcu_barrier(&ctx);
    assert!(first_dropped.load(Ordering::SeqCst), "the replaced value was never freed");
}

/// Online late: the polled leader finds no flag (no membarrier) and gives up on another
/// thread's explicit handle; the worker then goes online and stays inside a read closure.
/// Once the handle is gone, polling resumes the grace period: it must end without the
/// worker (whose section began after the grace period), and issue no membarrier.
#[test]
fn a_worker_online_after_the_first_leader_looked_does_not_hold_the_resumed_grace_period() {
    let d = domain("red26b-resume-online-late");
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(1).0));
    let domain_worker = hold_domain_worker(&d);
    let (online_tx, online_rx) = mpsc::channel();
    let (leave_tx, leave_rx) = mpsc::channel::<()>();
    let holder = {
        let d = d.clone();
        Pending::spawn("red26b-resume-holder", move || {
            d.register_current_thread(&Sleepable::enter());
            let mut ctx = Sleepable::enter();
            let online = d.online(&mut ctx);
            online_tx.send(()).expect("the test waits");
            leave_rx.recv().expect("the test says when");
            drop(online);
        })
    };
    online_rx.recv().expect("the holder goes online");
    let ctx = Sleepable::enter();
    let cookie = d.start_poll(&ctx);
    let before = d.stats().membarriers;
    assert!(!d.poll(cookie), "a polled grace period ended under an explicit online handle");
    assert_eq!(d.stats().membarriers, before, "a membarrier with no worker online");
    let worker = Worker::spawn(&d, &cell);
    assert_eq!(worker.hold(), (1, true), "the worker reads online");
    leave_tx.send(()).expect("the holder waits");
    holder.join("the holder");
    assert!(
        wait_until(PATIENCE, || d.poll(cookie)),
        "the resumed grace period waited for a section that began after it"
    );
    assert_eq!(d.stats().membarriers, before, "the resumed grace period issued a membarrier");
    assert_eq!(worker.release(), 1);
    drop(domain_worker);
    d.synchronize_rcu(&ctx);
}
