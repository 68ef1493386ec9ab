//! Red team, issue 26: panics in user closures inside `QsbrDomain::read`, on an executor
//! worker (hooks driven by hand) and on a plain thread. A panic that left the worker's
//! `reads` counter raised would stop every later park's offline (grace periods paying
//! membarrier for ever); one that left the word inside a section would hold every grace
//! period; one that left the thread's context depth raised would refuse every later root;
//! one that ended a section early would free what an outer closure holds. Checked: after
//! nested and outermost panics the outer closure's value stays protected, a grace period
//! ends while the worker idles, a park takes the worker offline, and the thread's context is
//! back at depth 0. (Written against the first executor design, in which a worker stayed
//! inside a section between reads; updated with the redesign.)
//!
//! Deterministic: channels order every step. Held at the time of writing (`ReadEnd` undoes
//! the count and the section on unwinding; the closure's `ReadSection` is dropped first).
#![cfg(not(loom))]

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{assert_holds_for, Canary, Pending, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};
use rcu_tests::quiet::expect_panic_quietly;

fn replace_and_sync(d: &Arc<QsbrDomain>, cell: &Arc<RcuCell<Canary>>, next: u64) -> Pending<()> {
    let (d, c) = (d.clone(), cell.clone());
    Pending::spawn("red26-panics-writer", move || {
        let ctx = Sleepable::enter();
        c.set(&ctx, Canary::new(next).0);
        d.synchronize_rcu(&ctx);
    })
}

/// Has the worker read (each read's entry a quiescent state) until `writer` returns. More
/// than one read may be needed: the grace period the writer waits for may start only after
/// one in progress ends. Time bounds the loop only as a watchdog.
#[track_caller]
fn read_until_done(
    step: &mpsc::Sender<&'static str>,
    done: &mpsc::Receiver<u64>,
    mut writer: Pending<()>,
    what: &str,
) {
    let start = Instant::now();
    while !writer.wait_timeout(Duration::from_millis(1)) {
        assert!(start.elapsed() < PATIENCE, "{what}: still blocked after {:?}", start.elapsed());
        step.send("read").expect("the worker waits");
        done.recv().expect("the worker reads");
    }
    writer.join(what);
}

#[test]
fn panics_inside_read_closures_leave_the_worker_state_whole() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-panics")));
    let (canary, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    let (step_tx, step_rx) = mpsc::channel::<&'static str>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let worker = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26-panics-worker", move || {
            d.executor_thread_start();
            d.executor_thread_park();
            // A nested closure panics; the outer one keeps its value past the hold.
            let held = d.read(|r| {
                let value = cell.load(r);
                let inner = AssertUnwindSafe(|| {
                    d.read(|r2| -> u64 { panic!("{}", cell.load(r2).value()) })
                });
                assert!(expect_panic_quietly("1", inner).is_err());
                done_tx.send(value.value()).expect("the test waits");
                assert_eq!(step_rx.recv().expect("the test says when"), "release");
                value.value()
            });
            done_tx.send(held).expect("the test waits");
            assert_eq!(rcu_core::thread_state::snapshot().read_depth, 0, "a read depth leaked");
            assert!(d.is_executor_online(), "the panic took the worker offline");
            // An outermost closure panics (its entry was a quiescent state).
            let outer =
                AssertUnwindSafe(|| d.read(|r| -> u64 { panic!("{}", cell.load(r).value()) }));
            assert!(expect_panic_quietly("", outer).is_err());
            assert_eq!(rcu_core::thread_state::snapshot().read_depth, 0, "a read depth leaked");
            for step in step_rx {
                match step {
                    "read" => done_tx.send(d.read(|r| cell.load(r).value())),
                    "park" => {
                        d.executor_thread_park();
                        done_tx.send(u64::from(!d.is_executor_online()))
                    }
                    _ => break,
                }
                .expect("the test waits");
            }
            // Roots and the worker's own waits work again.
            let ctx = Sleepable::enter();
            assert_eq!(d.read(|r| cell.load(r).value()), 3);
            d.synchronize_rcu(&ctx);
            d.executor_thread_stop();
        })
    };
    assert_eq!(done_rx.recv().expect("the worker loads"), 1);
    let mut writer = replace_and_sync(&d, &cell, 2);
    assert_holds_for(HOLD, "a nested panic let a grace period end under the outer closure", || {
        !writer.is_done() && !first_dropped.load(Ordering::SeqCst)
    });
    step_tx.send("release").expect("the worker waits");
    assert_eq!(done_rx.recv().expect("the outer closure returns"), 1, "freed under the closure");
    read_until_done(&step_tx, &done_rx, writer, "the grace period after the worker's reads");
    // Online since its last read, holding nothing: the next grace period needs no read of
    // it (had a panic left the word inside a section, it would hang here).
    replace_and_sync(&d, &cell, 3).join("a grace period while the worker idles online");
    // A park takes it offline only if the panics left `reads` at 0.
    step_tx.send("park").expect("the worker waits");
    assert_eq!(done_rx.recv().expect("the worker parks"), 1, "a park left the worker online");
    step_tx.send("stop").expect("the worker waits");
    worker.join("the worker");
    d.rcu_barrier(&Sleepable::enter());
    assert!(first_dropped.load(Ordering::SeqCst), "a replaced value was never freed");
    assert_eq!(d.stats().leaked_read_sections, 0);
}

#[test]
fn a_panic_inside_a_plain_threads_read_ends_its_section() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-panics-plain")));
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(1).0));
    d.register_current_thread(&Sleepable::enter());
    let read = AssertUnwindSafe(|| d.read(|r| -> u64 { panic!("{}", cell.load(r).value()) }));
    assert!(expect_panic_quietly("1", read).is_err());
    assert_eq!(rcu_core::thread_state::snapshot().read_depth, 0);
    // Nothing open on this thread: a grace period needs nobody, even this thread's wait.
    replace_and_sync(&d, &cell, 2).join("a grace period after a panicking read");
    d.synchronize_rcu(&Sleepable::enter());
}
