//! Red team, issue 26: tokio's `block_in_place` hands the worker's core to another thread;
//! the thread that ran the task becomes an idle blocking-pool thread, where tokio never
//! calls `on_thread_park`. Had the task read before (the worker online for its executor),
//! that idle thread stays online for as long as the pool keeps it (`thread_keep_alive`,
//! 10 s by default, here an hour): every grace period of the domain waits for a thread that
//! runs nothing. The same thread keeps `parks` set, so a later `spawn_blocking` read on it
//! goes online for good too, unlike a blocking-pool thread that was never a worker.
//!
//! Deterministic: one worker thread, and inside `block_in_place` the task waits until a
//! task it spawned has run on another thread (so the core has moved for good). The watchdog
//! only tells a hang from a wait that ends.
// Not under ThreadSanitizer: tokio's blocking pool synchronizes through std's Mutex, which
// TSan cannot see here (std is not instrumented), and reports its queue as a race.
#![cfg(not(any(loom, rcu_sanitizer = "thread")))]

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{Canary, Pending};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

/// Longer than any grace period with nobody to wait for takes on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(20);

#[test]
fn a_worker_that_gave_its_core_away_in_block_in_place_holds_no_grace_period() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-block-in-place")));
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(1).0));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_time().thread_keep_alive(Duration::from_secs(3600));
    let runtime = d.attach_to_tokio(&mut builder).build().expect("a runtime");
    let handle = runtime.handle().clone();
    let task = {
        let (d, cell) = (d.clone(), cell.clone());
        runtime.spawn(async move {
            // A worker goes online at its first read after a park; an idle worker parks.
            let mut seen = d.read(|r| cell.load(r).value());
            while !d.is_executor_online() {
                tokio::time::sleep(Duration::from_millis(1)).await;
                seen = d.read(|r| cell.load(r).value());
            }
            let me = thread::current().id();
            tokio::task::block_in_place(|| {
                let (tx, rx) = mpsc::channel();
                handle.spawn(async move { tx.send(thread::current().id()) });
                // With one worker, a task runs only where the core is: not here any more.
                let core_thread = rx.recv().expect("the probe runs");
                assert_ne!(core_thread, me, "the core moved to another thread");
            });
            (seen, d.is_executor_online())
        })
    };
    let (seen, still_online) = runtime.block_on(task).expect("the task");
    assert_eq!(seen, 1);
    // The former worker, now idle in the blocking pool, holds nothing: a grace period must
    // not wait for it.
    let mut writer = {
        let (d, cell) = (d.clone(), cell.clone());
        Pending::spawn("red26-bip-writer", move || {
            let ctx = Sleepable::enter();
            cell.set(&ctx, Canary::new(2).0);
            d.synchronize_rcu(&ctx);
        })
    };
    let ended = writer.wait_timeout(WATCHDOG);
    if !ended {
        // Shutting the runtime down stops the idle thread (its stop hook takes it offline).
        drop(runtime);
        let after_shutdown = writer.wait_timeout(WATCHDOG);
        panic!(
            "a grace period HUNG for {WATCHDOG:?} while the runtime lived (the former worker \
             was online after block_in_place: {still_online}); it ended at runtime shutdown: \
             {after_shutdown}"
        );
    }
}
