//! Red team, issue 26: the classic writer pattern (lock a mutex, replace, `synchronize_rcu`,
//! unlock) against a QSBR executor worker that read earlier and then takes the same mutex
//! outside any `read` closure. The worker holds nothing of the domain's data, and tokio's
//! guide recommends std's `Mutex` for short critical sections in tasks; yet the worker is
//! online for its executor until its next read or park, so it blocks on the mutex online,
//! the writer's grace period waits for it, and the writer never unlocks: a blocking call
//! while online that nothing refuses (an explicit `QsbrOnline` makes it a compile error; the
//! executor's online period has no type). With a classic domain, the same program is fine.
//!
//! Deterministic: channels order online, lock, grace period, then the worker's lock. The
//! watchdog only tells a hang from a wait that ends.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{Canary, Pending};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

/// Longer than any grace period with nobody to wait for takes on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(20);

#[test]
fn a_worker_taking_a_writers_mutex_between_reads_does_not_deadlock() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-mutex")));
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(1).0));
    // The data under the lock is atomic: ThreadSanitizer cannot see std's Mutex (std is not
    // instrumented), and the test is about the lock's waits, not its data.
    let stats = Arc::new(Mutex::new(AtomicU64::new(0)));
    let (online_tx, online_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let mut worker = {
        let (d, cell, stats) = (d.clone(), cell.clone(), stats.clone());
        Pending::spawn("red26-mutex-worker", move || {
            d.executor_thread_start();
            d.executor_thread_park();
            let seen = d.read(|r| cell.load(r).value());
            online_tx.send(d.is_executor_online()).expect("the test waits");
            go_rx.recv().expect("the test says when");
            // Outside every read closure: a short critical section, as in any task.
            // Relaxed: a statistic under the lock.
            stats.lock().expect("not poisoned").fetch_add(seen, Ordering::Relaxed);
            d.executor_thread_park();
            d.executor_thread_stop();
        })
    };
    assert!(online_rx.recv().expect("the worker reads"), "the worker's read went online");
    let (locked_tx, locked_rx) = mpsc::channel();
    let mut writer = {
        let (d, cell, stats) = (d.clone(), cell.clone(), stats.clone());
        Pending::spawn("red26-mutex-writer", move || {
            let ctx = Sleepable::enter();
            let count = stats.lock().expect("not poisoned");
            locked_tx.send(()).expect("the test waits");
            cell.set(&ctx, Canary::new(2).0);
            d.synchronize_rcu(&ctx); // the old value is unreachable now: the classic pattern
                                     // Relaxed: a statistic under the lock.
            count.fetch_add(1, Ordering::Relaxed);
        })
    };
    locked_rx.recv().expect("the writer locks");
    go_tx.send(()).expect("the worker waits");
    let writer_done = writer.wait_timeout(WATCHDOG);
    // Once the writer unlocks, the worker's lock goes through: waited for, not sampled.
    let worker_done = worker.wait_timeout(WATCHDOG);
    assert!(
        writer_done && worker_done,
        "HUNG for {WATCHDOG:?}: writer done {writer_done}, worker done {worker_done} (the \
         writer's grace period waits for the worker, online for its executor since its read, \
         and the worker waits for the writer's mutex)"
    );
}
