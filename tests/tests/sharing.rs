//! Concurrent `synchronize_rcu` callers share grace periods (DESIGN §5).
//!
//! Sharing is a fact about the engine, not a timing target, but it can only show when calls
//! overlap, and left to the scheduler they need not: a caller whose grace period finds no
//! reader inside may finish it before any other caller has arrived, so even hundreds of calls
//! from several looping threads may run one grace period each. Both tests therefore force the
//! overlap. A reader enters first, so that the first caller's grace period cannot end while
//! it is inside; the callers are started, and the reader leaves only once every caller has
//! been seen blocked (asleep, three polls in a row). Nothing a caller does on its way into
//! `synchronize_rcu` sleeps before it takes its cookie (the domain's worker, which the call
//! would start, was started by `Domain::new`), so by then every caller has taken its cookie
//! while that grace period was in flight: the cookie names that grace period or the next
//! one, and one or two grace periods must serve them all, the one in flight and one led by a
//! caller that arrived after it had started. Without sharing, each caller would run its own.
//!
//! The first test does this once with fresh threads, half of them expedited. The second
//! repeats it for several rounds with the same threads calling `synchronize_rcu` again each
//! round (leadership passes from caller to caller), and checks the bound in every round.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{thread_state, wait_until, Pending, ReaderThread, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, DomainStats};

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

/// With a reader inside since before `before` was taken and the callers `tids` on their way
/// into `synchronize_rcu`: waits until a grace period has started (the first caller leads it,
/// and it waits for the reader) and every caller is blocked, and checks that no grace period
/// ended meanwhile.
fn hold_until_all_blocked(domain: &Domain, before: &DomainStats, tids: &[i32]) {
    assert!(
        wait_until(PATIENCE, || domain.stats().gp_seq > before.gp_seq),
        "no caller started a grace period: {:?}",
        domain.stats()
    );
    wait_until_all_asleep(tids);
    let held = domain.stats();
    assert_eq!(held.gp_completed, before.gp_completed, "a grace period ended under the reader");
}

/// Grace periods (normal and expedited) completed from `before` to `after`.
fn grace_periods_between(before: &DomainStats, after: &DomainStats) -> u64 {
    (after.gps_normal + after.gps_expedited) - (before.gps_normal + before.gps_expedited)
}

#[test]
fn callers_blocked_behind_one_reader_share_one_or_two_grace_periods() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("share-pile")));
    let mut reader = ReaderThread::spawn(domain.clone(), "pile-reader");
    reader.enter();
    let before = domain.stats();
    let (tid_tx, tid_rx) = mpsc::channel();
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
    hold_until_all_blocked(&domain, &before, &tids);
    reader.exit();
    for c in callers {
        c.join("a caller after the reader left");
    }
    let after = domain.stats();
    let gps = grace_periods_between(&before, &after);
    assert!(
        (1..=2).contains(&gps),
        "{CALLERS} callers blocked behind one reader took {gps} grace periods \
         (expected the one in flight plus at most one more): {before:?} -> {after:?}"
    );
}

#[test]
fn looping_callers_share_grace_periods() {
    const ROUNDS: usize = 10;
    let domain = Arc::new(Domain::new(DomainConfig::new().name("share-loop")));
    let mut reader = ReaderThread::spawn(domain.clone(), "loop-reader");
    let (tid_tx, tid_rx) = mpsc::channel();
    let (arrived_tx, arrived_rx) = mpsc::channel();
    let (returned_tx, returned_rx) = mpsc::channel();
    let mut go = Vec::new();
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            let (domain, tid_tx, arrived_tx, returned_tx) =
                (domain.clone(), tid_tx.clone(), arrived_tx.clone(), returned_tx.clone());
            Pending::spawn(&format!("loop-caller-{i}"), move || {
                let ctx = Sleepable::enter();
                tid_tx.send(common::gettid()).unwrap();
                // Ends when the test drops its senders (also when it fails).
                while go_rx.recv().is_ok() {
                    // Sent after the wait for `go`, so that the test does not take this
                    // thread's sleep there for a sleep in `synchronize_rcu`.
                    arrived_tx.send(i).unwrap();
                    domain.synchronize_rcu(&ctx);
                    returned_tx.send(i).unwrap();
                }
            })
        })
        .collect();
    let tids: Vec<i32> =
        (0..CALLERS).map(|_| tid_rx.recv_timeout(PATIENCE).expect("caller started")).collect();
    let mut total = 0;
    for round in 0..ROUNDS {
        reader.enter();
        let before = domain.stats();
        for g in &go {
            g.send(()).unwrap();
        }
        for _ in 0..CALLERS {
            arrived_rx.recv_timeout(PATIENCE).expect("a caller took up the round");
        }
        hold_until_all_blocked(&domain, &before, &tids);
        reader.exit();
        for _ in 0..CALLERS {
            returned_rx.recv_timeout(PATIENCE).expect("a caller returned after the reader left");
        }
        let after = domain.stats();
        let gps = grace_periods_between(&before, &after);
        assert!(
            (1..=2).contains(&gps),
            "round {round}: {CALLERS} callers blocked behind one reader took {gps} grace \
             periods (expected the one in flight plus at most one more): {before:?} -> {after:?}"
        );
        total += gps;
    }
    // Closing the channels ends the callers' loops.
    drop(go);
    for c in callers {
        c.join("a caller after its last round");
    }
    println!("{ROUNDS} rounds of {CALLERS} calls: {total} grace periods");
}
