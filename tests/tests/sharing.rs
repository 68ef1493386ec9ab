//! Concurrent `synchronize_rcu` callers share grace periods (DESIGN §5).
//!
//! Sharing is a fact about the engine, not a timing target, but it can only show when calls
//! overlap. The first test makes them overlap by construction: a reader holds the grace
//! period up until every caller is blocked, and then one or two grace periods must serve
//! them all. The second runs callers in a loop against a reader whose sections make each
//! grace period sleep, so that even on one free core the callers pile up.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{thread_state, wait_until, Pending, ReaderThread, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

const CALLERS: usize = 6;

/// Waits until every thread in `tids` has been seen asleep (`S`) on three polls in a row
/// 10 ms apart: blocked in the engine rather than on its way there. Where `/proc` cannot be
/// read, waits half a second instead.
fn wait_until_all_asleep(tids: &[i32]) {
    if tids.iter().any(|&t| thread_state(t).is_none()) {
        std::thread::sleep(Duration::from_millis(500));
        return;
    }
    let mut streak = 0;
    let start = Instant::now();
    while streak < 3 {
        assert!(start.elapsed() < PATIENCE, "callers never all blocked: {tids:?}");
        if tids.iter().all(|&t| thread_state(t) == Some('S')) {
            streak += 1;
        } else {
            streak = 0;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn callers_blocked_behind_one_reader_share_one_or_two_grace_periods() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("share-pile")));
    let mut reader = ReaderThread::spawn(domain.clone(), "pile-reader");
    reader.enter();
    let before = domain.stats();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (domain, tid_tx) = (domain.clone(), tid_tx.clone());
            Pending::spawn(&format!("caller-{i}"), move || {
                let ctx = Sleepable::enter();
                tid_tx.send(common::gettid()).unwrap();
                if i % 2 == 0 {
                    domain.synchronize_rcu(&ctx);
                } else {
                    domain.synchronize_rcu_expedited(&ctx);
                }
            })
        })
        .collect();
    let tids: Vec<i32> =
        (0..CALLERS).map(|_| tid_rx.recv_timeout(PATIENCE).expect("caller started")).collect();
    // The first caller leads a grace period that waits for the reader; the others wait for
    // it and for the one after it.
    assert!(wait_until(PATIENCE, || domain.stats().gp_seq > before.gp_seq));
    wait_until_all_asleep(&tids);
    let held = domain.stats();
    assert_eq!(held.gp_completed, before.gp_completed, "a grace period ended under the reader");
    reader.exit();
    for c in callers {
        c.join("a caller after the reader left");
    }
    let after = domain.stats();
    let gps = (after.gps_normal + after.gps_expedited) - (before.gps_normal + before.gps_expedited);
    assert!(
        (1..=2).contains(&gps),
        "{CALLERS} callers blocked behind one reader took {gps} grace periods \
         (expected the one in flight plus at most one more): {before:?} -> {after:?}"
    );
}

#[test]
fn looping_callers_share_grace_periods() {
    const THREADS: usize = 4;
    const CALLS: u64 = 200;
    let domain = Arc::new(Domain::new(DomainConfig::new().name("share-loop")));
    // A reader in back-to-back sections that each sleep ~0.5 ms: it is (almost) always
    // inside with a snapshot older than any new grace period, so every grace period sleeps
    // until its section ends, which lets the other callers run, arrive and wait for the one
    // after it, even with only one free core.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..1)
        .map(|_| {
            let (domain, stop) = (domain.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                // Relaxed: a stop flag.
                while !stop.load(Ordering::Relaxed) {
                    let guard = domain.read_lock(&mut ctx);
                    std::thread::sleep(Duration::from_micros(500));
                    drop(guard);
                }
            })
        })
        .collect();
    let before = domain.stats();
    let start = Arc::new(Barrier::new(THREADS));
    let callers: Vec<_> = (0..THREADS)
        .map(|i| {
            let (domain, start) = (domain.clone(), start.clone());
            Pending::spawn(&format!("loop-caller-{i}"), move || {
                let ctx = Sleepable::enter();
                start.wait();
                for _ in 0..CALLS {
                    domain.synchronize_rcu(&ctx);
                }
            })
        })
        .collect();
    let results: Vec<_> = callers
        .into_iter()
        .map(|c| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.join("loop caller"))))
        .collect();
    // Relaxed: a stop flag.
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    for r in results {
        if let Err(panic) = r {
            std::panic::resume_unwind(panic);
        }
    }
    let after = domain.stats();
    let gps = after.gps_normal - before.gps_normal;
    let calls = THREADS as u64 * CALLS;
    assert!(gps >= 1);
    assert!(
        gps < calls,
        "{calls} overlapping synchronize_rcu calls ran {gps} grace periods: none was shared"
    );
    println!("{calls} calls, {gps} grace periods");
}
