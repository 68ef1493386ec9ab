//! Concurrent `synchronize_rcu` callers share grace periods (DESIGN §5).
//!
//! Sharing is a fact about the engine, not a timing target, but it can only show when calls
//! overlap, and left to the scheduler they need not: a caller whose grace period finds no
//! reader inside may finish it before any other caller has arrived, so even hundreds of calls
//! from several looping threads may run one grace period each. Both tests therefore force the
//! overlap. A reader enters first, so that no grace period that starts can end while it is
//! inside; the callers are started, and the reader leaves only once the domain counts every
//! caller as waiting (`DomainStats::gp_waiters`, which counts a caller only after it has
//! taken its cookie, and publishes that cookie with the count) and no grace period has
//! completed meanwhile. Every cookie was then taken while the first grace period to start
//! after the reader entered had not completed: it names that grace period or the next one,
//! and one or two grace periods must serve them all. Without sharing, each caller would run
//! its own. Nothing here reads the scheduler: the test waits for counts, not for sleeps.
//!
//! The first test does this once with fresh threads, half of them expedited. The second
//! repeats it for several rounds with the same threads calling `synchronize_rcu` again each
//! round (leadership passes from caller to caller), and checks the bound in every round.

mod common;

use std::sync::mpsc;
use std::sync::Arc;

use common::{wait_until, Pending, ReaderThread, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, DomainStats};

const CALLERS: usize = 6;

/// With a reader inside since before `before` was taken and `callers` threads on their way
/// into `synchronize_rcu`: waits until the domain counts them all as waiting for a grace
/// period, and checks that none completed meanwhile (the reader holds up the first).
fn hold_until_all_waiting(domain: &Domain, before: &DomainStats, callers: usize) {
    assert_eq!(before.gp_waiters, 0, "a thread already waited before the round began");
    assert!(
        wait_until(PATIENCE, || domain.stats().gp_waiters == callers as u64),
        "the {callers} callers were never all waiting for a grace period: {:?}",
        domain.stats()
    );
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
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let domain = domain.clone();
            Pending::spawn(&format!("caller-{i}"), move || {
                let ctx = Sleepable::enter();
                if i % 2 == 0 {
                    domain.synchronize_rcu(&ctx);
                } else {
                    domain.synchronize_rcu_expedited(&ctx);
                }
            })
        })
        .collect();
    // The first caller leads a grace period that waits for the reader; the others wait for
    // it and for the one after it.
    hold_until_all_waiting(&domain, &before, CALLERS);
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
    let (returned_tx, returned_rx) = mpsc::channel();
    let mut go = Vec::new();
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            let (domain, returned_tx) = (domain.clone(), returned_tx.clone());
            Pending::spawn(&format!("loop-caller-{i}"), move || {
                let ctx = Sleepable::enter();
                // Ends when the test drops its senders (also when it fails).
                while go_rx.recv().is_ok() {
                    domain.synchronize_rcu(&ctx);
                    returned_tx.send(i).unwrap();
                }
            })
        })
        .collect();
    let mut total = 0;
    for round in 0..ROUNDS {
        reader.enter();
        let before = domain.stats();
        for g in &go {
            g.send(()).unwrap();
        }
        hold_until_all_waiting(&domain, &before, CALLERS);
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
