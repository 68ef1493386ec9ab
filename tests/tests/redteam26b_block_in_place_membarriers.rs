//! Red team, issue 26, round 2: the cost claim "a worker goes offline when it parks, stops,
//! waits, takes an explicit handle or ends: grace periods stop paying for it"
//! (`api::qsbr_thread`). A worker that read (online, its flag set) and then gave its core
//! away in tokio's `block_in_place` becomes an idle blocking-pool thread: tokio calls no
//! park hook there, so its flag stays set, and every grace period of the domain issues a
//! membarrier for a thread that runs nothing, for as long as the pool keeps it
//! (`thread_keep_alive`: 10 s by default, here an hour). Safe (the grace periods do pay for
//! the flag), but an idle runtime pays the barrier the redesign was to save.
//!
//! Fixed by `QsbrDomain::block_in_place` (feature `tokio`), which takes the thread offline and
//! out of the executor first (online again only after a park, which only a worker that got a
//! core back has); `attach_to_tokio`'s docs say what a bare `block_in_place` costs. The first
//! test pins that cost, the second the fix.
//!
//! Deterministic: one worker thread; inside `block_in_place` the task waits until a task it
//! spawned has run on another thread (the core has moved for good); the probe reads nothing,
//! so the core's new thread never goes online. The membarrier count is only meaningful where
//! the process uses membarrier (`uses_membarrier`); elsewhere the test checks nothing.
// Not under ThreadSanitizer: tokio's blocking pool synchronizes through std's Mutex, which
// TSan cannot see here (std is not instrumented), and reports its queue as a race.
#![cfg(not(any(loom, rcu_sanitizer = "thread")))]

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::Canary;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

/// Grace periods run once every worker is idle.
const GRACE_PERIODS: u64 = 5;

/// Runs the scenario: a worker reads (online), then gives its core away in
/// `block_in_place`, wrapped in the hooks `executor_thread_stop` / `executor_thread_start` if
/// `wrap`; then, every thread idle, returns how many of `GRACE_PERIODS` grace periods issued
/// a membarrier, and whether the former worker was online after `block_in_place`.
fn idle_membarriers_after_block_in_place(name: &'static str, wrap: bool) -> (u64, bool) {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name(name)));
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
            let give_core_away = || {
                let (tx, rx) = mpsc::channel();
                handle.spawn(async move { tx.send(thread::current().id()) });
                // With one worker, a task runs only where the core is: not here any more.
                let core_thread = rx.recv().expect("the probe runs");
                assert_ne!(core_thread, me, "the core moved to another thread");
            };
            if wrap {
                // Offline and no longer the executor's; online only after its next park.
                d.block_in_place(give_core_away);
            } else {
                tokio::task::block_in_place(give_core_away);
            }
            assert_eq!(d.read(|r| cell.load(r).value()), 1);
            (seen, d.is_executor_online())
        })
    };
    let (seen, still_online) = runtime.block_on(task).expect("the task");
    assert_eq!(seen, 1);
    // Nothing reads any more: the former worker idles in the blocking pool, the core's
    // thread never read, this thread is no executor's.
    let ctx = Sleepable::enter();
    let before = d.stats().membarriers;
    for _ in 0..GRACE_PERIODS {
        d.synchronize_rcu(&ctx);
    }
    let paid = d.stats().membarriers - before;
    drop(runtime); // the stop hook takes the idle thread offline
    let before = d.stats().membarriers;
    d.synchronize_rcu(&ctx);
    assert_eq!(d.stats().membarriers, before, "a membarrier after the runtime shut down");
    (paid, still_online)
}

/// A bare `block_in_place` after a read: the former worker idles in the blocking pool with
/// its flag set, and every grace period of the idle runtime pays a membarrier for it. Not
/// refused (tokio gives no hook there): documented at `attach_to_tokio`, which points to
/// `QsbrDomain::block_in_place`. Kept to show the cost is what the docs say.
#[test]
fn a_bare_block_in_place_after_a_read_costs_membarriers_as_documented() {
    let (paid, still_online) = idle_membarriers_after_block_in_place("red26b-bip-cost", false);
    assert!(still_online, "the former worker went offline without a hook");
    if rcu_core::raw::barrier::uses_membarrier() {
        assert_eq!(
            paid, GRACE_PERIODS,
            "grace periods skipped the membarrier an online flag needs"
        );
    }
}

/// The fix: `QsbrDomain::block_in_place` takes the thread offline and out of the executor
/// first. Whether or not the thread gets a core back, it is online again only after a park.
#[test]
fn qsbr_block_in_place_leaves_no_flag() {
    let (paid, still_online) = idle_membarriers_after_block_in_place("red26b-bip-wrapped", true);
    assert!(!still_online, "the former worker went online without a park");
    assert_eq!(paid, 0, "grace periods of an idle runtime issued a membarrier");
}
