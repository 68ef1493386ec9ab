//! QSBR for executor threads (issue 26): `QsbrDomain::read` and the executor hooks, driven by
//! hand (deterministic: channels order every step) and through tokio (`attach_to_tokio`).
//! Hostile programs first: a quiescent state inside a nested section, a park inside a read
//! closure, a wait inside one, an explicit handle on a worker that is online, an unregistered
//! reader. (More in `redteam26_*.rs`: blocking between reads on a lock, another domain's
//! grace period, `block_in_place`, exit online.)
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use common::{assert_holds_for, wait_until, Canary, Pending, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};
use rcu_tests::quiet::{expect_panic_quietly, message};

fn domain(name: &'static str) -> Arc<QsbrDomain> {
    Arc::new(QsbrDomain::new(DomainConfig::new().name(name)))
}

/// Replaces the cell's value on another thread and waits for a grace period; returns the
/// pending writer.
fn replace_and_sync(d: &Arc<QsbrDomain>, cell: &Arc<RcuCell<Canary>>, next: u64) -> Pending<()> {
    let (d, c) = (d.clone(), cell.clone());
    Pending::spawn("qsbr-exec-writer", move || {
        let ctx = Sleepable::enter();
        c.set(&ctx, Canary::new(next).0);
        d.synchronize_rcu(&ctx);
    })
}

#[test]
fn read_on_an_unregistered_thread_is_refused_naming_the_rule() {
    let d = domain("qsbr-exec-unregistered");
    let cell = RcuCell::new_in(&*d, 1u32);
    let p = expect_panic_quietly("not registered", || d.read(|r| *cell.load(r)))
        .expect_err("read must not register (allocate) without a token");
    assert!(message(&*p).contains("register_current_thread"), "{}", message(&*p));
}

#[test]
fn read_outside_an_executor_is_a_section_of_its_own() {
    let d = domain("qsbr-exec-plain");
    let cell = RcuCell::new_in(&*d, 7u32);
    d.register_current_thread(&Sleepable::enter());
    assert_eq!(d.read(|r| *cell.load(r)), 7);
    assert!(!d.is_executor_online(), "a thread no executor started went online for good");
    // Nothing held after the closure: a grace period needs nobody.
    d.synchronize_rcu(&Sleepable::enter());
}

/// A worker (hooks driven by hand) online after a read holds no grace period between reads,
/// however long it idles (it holds nothing): the domain's grace periods pay with membarrier
/// while it is online, and stop once it parks.
#[test]
fn a_worker_online_between_reads_holds_no_grace_period() {
    let d = domain("qsbr-exec-online");
    let (canary, first_dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    let (step_tx, step_rx) = mpsc::channel::<&'static str>();
    let (done_tx, done_rx) = mpsc::channel::<bool>();
    let (dw, cw) = (d.clone(), cell.clone());
    let worker = Pending::spawn("qsbr-exec-worker", move || {
        dw.executor_thread_start();
        dw.executor_thread_park();
        for step in step_rx {
            match step {
                "read" => {
                    let v = dw.read(|r| cw.load(r).value());
                    done_tx.send(dw.is_executor_online() && v >= 1).expect("the test waits");
                }
                "park" => {
                    dw.executor_thread_park();
                    done_tx.send(!dw.is_executor_online()).expect("the test waits");
                }
                _ => break,
            }
        }
        dw.executor_thread_stop();
    });
    step_tx.send("read").expect("the worker waits");
    assert!(done_rx.recv().expect("the worker reads"), "a worker's read did not go online");
    // The worker idles online, blocked on the channel: the grace period does not wait.
    let before = d.stats().membarriers;
    replace_and_sync(&d, &cell, 2).join("a grace period while a worker idles online");
    d.rcu_barrier(&Sleepable::enter());
    assert!(first_dropped.load(Ordering::SeqCst), "a replaced value was never freed");
    let online = d.stats().membarriers;
    if rcu_core::raw::barrier::uses_membarrier() {
        assert!(online > before, "grace periods did not pay for the online worker's plain entries");
    }
    step_tx.send("park").expect("the worker waits");
    assert!(done_rx.recv().expect("the worker parks"), "a park left the worker online");
    replace_and_sync(&d, &cell, 3).join("a grace period after the worker parked");
    assert_eq!(d.stats().membarriers, online, "membarrier after every worker went offline");
    step_tx.send("stop").expect("the worker waits");
    worker.join("the worker");
    assert_eq!(d.stats().leaked_read_sections, 0, "the stop hook left a section open");
}

/// Hostile: a park inside a read closure (a nested runtime parking). Were the worker taken
/// offline, the value the closure holds could be freed under it.
#[test]
fn a_park_inside_a_read_closure_keeps_the_worker_online() {
    let d = domain("qsbr-exec-park-inside");
    let (canary, dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (dw, cw) = (d.clone(), cell.clone());
    let worker = Pending::spawn("qsbr-exec-park-inside", move || {
        dw.executor_thread_start();
        dw.executor_thread_park();
        let seen = dw.read(|r| {
            let value = cw.load(r);
            dw.executor_thread_park(); // must not end the online period
            loaded_tx.send(value.value()).expect("the test waits");
            go_rx.recv().expect("the test says when");
            value.value()
        });
        dw.executor_thread_park();
        dw.executor_thread_stop();
        seen
    });
    assert_eq!(loaded_rx.recv().expect("the worker loads"), 1);
    let mut writer = replace_and_sync(&d, &cell, 2);
    assert_holds_for(HOLD, "a park inside a read closure let a grace period end", || {
        !writer.is_done() && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).expect("the worker waits");
    assert_eq!(worker.join("the worker"), 1, "the value was freed under the closure");
    writer.join("the grace period after the worker parked");
    d.rcu_barrier(&Sleepable::enter());
    assert!(dropped.load(Ordering::SeqCst), "the replaced value was never freed");
}

/// A worker online for its executor that waits for one of the domain's grace periods goes
/// offline for it, instead of waiting for itself.
#[test]
fn a_worker_waiting_for_a_grace_period_goes_offline_for_it() {
    let d = domain("qsbr-exec-wait");
    let cell = Arc::new(RcuCell::new_in(&*d, 1u64));
    let (dw, cw) = (d.clone(), cell.clone());
    Pending::spawn("qsbr-exec-waiter", move || {
        dw.executor_thread_start();
        dw.executor_thread_park();
        let ctx = Sleepable::enter();
        for round in 0..20u64 {
            assert_eq!(dw.read(|r| *cw.load(r)), round + 1);
            assert!(dw.is_executor_online());
            cw.set(&ctx, round + 2);
            dw.synchronize_rcu(&ctx);
            assert!(!dw.is_executor_online(), "the wait left the worker online");
            dw.rcu_barrier(&ctx);
        }
        dw.executor_thread_stop();
    })
    .join("a worker's own waits (would hang if it waited for itself)");
}

/// Hostile: a wait inside a read closure, through a token captured from outside. It would
/// wait for itself; it is refused, and the closure's value stays valid.
#[test]
fn a_wait_inside_a_read_closure_is_refused() {
    let d = domain("qsbr-exec-wait-inside");
    let cell = Arc::new(RcuCell::new_in(&*d, 5u32));
    let (dw, cw) = (d.clone(), cell.clone());
    let refused = Pending::spawn("qsbr-exec-wait-inside", move || {
        dw.executor_thread_start();
        dw.executor_thread_park();
        let ctx = Sleepable::enter();
        let p = expect_panic_quietly("", || {
            dw.read(|r| {
                let v = cw.load(r);
                dw.synchronize_rcu(&ctx);
                *v
            })
        });
        dw.executor_thread_park();
        dw.executor_thread_stop();
        p.err().map(|p| message(&*p).to_owned())
    })
    .join("the refused waiter");
    let msg = refused.expect("a wait inside a read closure must be refused");
    assert!(msg.contains("read section"), "{msg}");
}

/// Hostile: a quiescent state of an explicit handle announced inside a read closure that
/// captured it. It would end the closure's section while its value is in use.
#[test]
fn a_quiescent_state_inside_a_nested_section_is_refused() {
    let d = domain("qsbr-exec-nested-qs");
    let cell = RcuCell::new_in(&*d, 3u32);
    let mut ctx = Sleepable::enter();
    let mut online = d.online(&mut ctx);
    let p = expect_panic_quietly("nested", || {
        d.read(|r| {
            let v = cell.load(r);
            online.quiescent_state();
            *v
        })
    })
    .expect_err("a quiescent state inside a nested section must be refused");
    assert!(message(&*p).contains("holds nothing"), "{}", message(&*p));
    online.quiescent_state(); // at the outermost level it is fine
    drop(online);
}

/// An explicit online handle on a worker that is online for its executor: the worker goes
/// offline first (it holds nothing outside read closures) instead of being refused.
#[test]
fn an_explicit_handle_on_an_online_worker_takes_over() {
    let d = domain("qsbr-exec-explicit");
    let cell = RcuCell::new_in(&*d, 9u32);
    d.executor_thread_start();
    d.executor_thread_park();
    assert_eq!(d.read(|r| *cell.load(r)), 9);
    assert!(d.is_executor_online());
    let mut ctx = Sleepable::enter();
    let mut online = d.online(&mut ctx);
    assert!(!d.is_executor_online());
    assert_eq!(*cell.load(&online), 9);
    assert_eq!(d.read(|r| *cell.load(r)), 9); // a section nested in the handle's period
    online.quiescent_state();
    drop(online);
    d.executor_thread_stop();
    d.synchronize_rcu(&Sleepable::enter());
}

/// Through tokio: tasks read while a writer replaces and frees; every value a task reads is
/// alive, grace periods end (workers park or read again), and no section leaks at shutdown.
// Not under ThreadSanitizer: tokio's blocking pool synchronizes through std's Mutex, which
// TSan cannot see here (std is not instrumented), and reports its queue as a race.
#[cfg(not(rcu_sanitizer = "thread"))]
#[test]
fn tokio_tasks_read_through_worker_online_periods() {
    let d = domain("qsbr-exec-tokio");
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(0).0));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = d.attach_to_tokio(builder.worker_threads(2).enable_time()).build().unwrap();
    let reads = Arc::new(AtomicU64::new(0));
    let online_seen = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (dt, ct, rt, ot) = (d.clone(), cell.clone(), reads.clone(), online_seen.clone());
        tasks.push(runtime.spawn(async move {
            for _ in 0..2_000 {
                let v = dt.read(|r| ct.load(r).value());
                assert!(v < u64::MAX);
                rt.fetch_add(1, Ordering::Relaxed);
                if dt.is_executor_online() {
                    ot.fetch_add(1, Ordering::Relaxed);
                }
                if rt.load(Ordering::Relaxed) % 64 == 0 {
                    tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let writer = {
        let (dw, cw) = (d.clone(), cell.clone());
        Pending::spawn("qsbr-exec-tokio-writer", move || {
            let ctx = Sleepable::enter();
            for i in 1..=200 {
                cw.set(&ctx, Canary::new(i).0);
                dw.synchronize_rcu(&ctx);
            }
            dw.rcu_barrier(&ctx);
        })
    };
    for task in tasks {
        runtime.block_on(task).expect("a reading task");
    }
    writer.join("the writer's grace periods (the workers park or read again)");
    assert!(online_seen.load(Ordering::Relaxed) > 0, "no read ever found its worker online");
    drop(runtime);
    // Every worker ran its stop hook: the domain's grace periods wait for nobody.
    assert!(wait_until(PATIENCE, || {
        d.synchronize_rcu(&Sleepable::enter());
        true
    }));
    assert_eq!(d.stats().leaked_read_sections, 0, "a worker exited online");
}

/// A task that awaits a grace period right after a read, on a worker online for its
/// executor: the poll takes the worker offline (it holds nothing), instead of being refused
/// as a wait inside a section.
// Not under ThreadSanitizer: tokio's blocking pool synchronizes through std's Mutex, which
// TSan cannot see here (std is not instrumented), and reports its queue as a race.
#[cfg(not(rcu_sanitizer = "thread"))]
#[test]
fn a_task_awaiting_a_grace_period_after_a_read_is_served() {
    let d = domain("qsbr-exec-async");
    let cell = Arc::new(RcuCell::new_in(&*d, 1u64));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = d.attach_to_tokio(builder.worker_threads(1).enable_time()).build().unwrap();
    let (dt, ct) = (d.clone(), cell.clone());
    let rounds = runtime.block_on(async move {
        tokio::spawn(async move {
            for round in 0..50u64 {
                assert_eq!(dt.read(|r| *ct.load(r)), round + 1);
                {
                    let ctx = NoReclaimRoot::enter();
                    ct.set(&ctx, round + 2);
                }
                dt.synchronize_rcu_async().await;
            }
            dt.rcu_barrier_async().await;
            50u64
        })
        .await
        .expect("the task")
    });
    assert_eq!(rounds, 50);
    drop(runtime);
    assert_eq!(d.stats().leaked_read_sections, 0);
}
