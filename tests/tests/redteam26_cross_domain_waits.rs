//! Red team, issue 26: a worker online for its executor in QSBR domain A that waits for a
//! grace period of *another* domain stays online in A while it blocks. `offline_for_executor`
//! takes the thread offline only in the domain being waited for, though outside every `read`
//! closure the thread holds nothing in any domain. Two such waits that point at each other
//! deadlock: each grace period waits for a thread blocked in the other's.
//!
//! - two QSBR domains, one worker online in each, each waiting for the other's grace period;
//! - a QSBR worker waiting for a sleepable (SRCU) domain whose reader, inside its section
//!   (where a sleepable section may wait for other domains), waits for the QSBR domain.
//!
//! Deterministic: channels put both threads online (or inside) before either waits. The
//! watchdog only tells a hang from a wait that ends.
#![cfg(not(loom))]

mod common;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::Pending;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Fast, QsbrDomain, SrcuStruct};

/// Longer than any grace period with nobody to wait for takes on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(20);

fn domain(name: &'static str) -> Arc<QsbrDomain> {
    Arc::new(QsbrDomain::new(DomainConfig::new().name(name)))
}

/// A thread the executor hooks of `online_in` made a worker, online there after one read;
/// once `go` arrives it runs `wait` (a wait for another domain's grace period), then parks.
fn worker_then_wait(
    name: &str,
    online_in: Arc<QsbrDomain>,
    ready: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
    wait: impl FnOnce(&Sleepable) + Send + 'static,
) -> Pending<()> {
    Pending::spawn(name, move || {
        online_in.executor_thread_start();
        online_in.executor_thread_park();
        let cell = RcuCell::new_in(&*online_in, 1u32);
        assert_eq!(online_in.read(|r| *cell.load(r)), 1);
        assert!(online_in.is_executor_online());
        ready.send(()).expect("the test waits");
        go.recv().expect("the test says when");
        let ctx = Sleepable::enter();
        // Outside every read closure: the thread holds nothing of `online_in`'s data.
        wait(&ctx);
        online_in.executor_thread_park();
        online_in.executor_thread_stop();
    })
}

#[track_caller]
fn assert_ends(mut waiter: Pending<()>, what: &str) {
    assert!(
        waiter.wait_timeout(WATCHDOG),
        "{what}: HUNG for {WATCHDOG:?} (each wait holds the other's grace period: the waiter \
         stayed online in its executor's QSBR domain while blocked)"
    );
}

#[test]
fn two_qsbr_workers_waiting_for_each_others_domain_do_not_deadlock() {
    let (a, b) = (domain("red26-cross-a"), domain("red26-cross-b"));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_a_tx, go_a_rx) = mpsc::channel();
    let (go_b_tx, go_b_rx) = mpsc::channel();
    let on_a = worker_then_wait("red26-online-in-a", a.clone(), ready_tx.clone(), go_a_rx, {
        let b = b.clone();
        move |ctx| b.synchronize_rcu(ctx)
    });
    let on_b = worker_then_wait("red26-online-in-b", b.clone(), ready_tx, go_b_rx, {
        let a = a.clone();
        move |ctx| a.synchronize_rcu(ctx)
    });
    ready_rx.recv().expect("a worker goes online");
    ready_rx.recv().expect("a worker goes online");
    go_a_tx.send(()).expect("the worker waits");
    go_b_tx.send(()).expect("the worker waits");
    assert_ends(on_a, "A's worker waiting for B's grace period");
    assert_ends(on_b, "B's worker waiting for A's grace period");
}

#[test]
fn a_qsbr_worker_waiting_for_srcu_does_not_deadlock_with_an_srcu_reader_waiting_for_qsbr() {
    let q = domain("red26-cross-q");
    let s: Arc<SrcuStruct<Fast>> =
        Arc::new(SrcuStruct::new(DomainConfig::new().name("red26-cross-s")));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_q_tx, go_q_rx) = mpsc::channel();
    let (go_s_tx, go_s_rx) = mpsc::channel::<()>();
    let on_q = worker_then_wait("red26-online-in-q", q.clone(), ready_tx.clone(), go_q_rx, {
        let s = s.clone();
        move |ctx| s.synchronize_srcu(ctx)
    });
    let in_s = {
        let (q, s) = (q.clone(), s.clone());
        Pending::spawn("red26-inside-s", move || {
            let mut ctx = Sleepable::enter();
            let guard = s.read_lock(&mut ctx);
            ready_tx.send(()).expect("the test waits");
            go_s_rx.recv().expect("the test says when");
            // A sleepable section may wait for another domain's grace period.
            q.synchronize_rcu(guard.ctx());
            drop(guard);
        })
    };
    ready_rx.recv().expect("the worker goes online");
    ready_rx.recv().expect("the reader enters");
    go_q_tx.send(()).expect("the worker waits");
    go_s_tx.send(()).expect("the reader waits");
    assert_ends(on_q, "the QSBR worker waiting for the SRCU domain");
    assert_ends(in_s, "the SRCU reader waiting for the QSBR domain");
}
