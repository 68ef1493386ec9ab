//! Threads register lazily and unregister at exit (DESIGN §5); a thread that exits inside a
//! read section (a leaked guard) is reported and does not hold grace periods up forever.
//!
//! A domain's worker registers as a reader too, so counts start from a settled domain whose
//! worker has registered. The tests that count the global domain's readers take `GLOBAL`, so
//! that no other test of this file registers global readers meanwhile.

mod common;

use std::ops::Deref;
use std::sync::mpsc;
use std::sync::Mutex;

use common::{assert_holds_for, settled_domain, wait_until, Pending, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

static GLOBAL: Mutex<()> = Mutex::new(());

/// Makes sure the global domain's worker runs and has registered (it registers as it
/// starts, before it serves any request), so that it does not change the count mid-test.
/// Caller: holds `GLOBAL`, so nothing else runs global grace periods meanwhile.
fn settle_global_worker() {
    // Only the worker completes a barrier (a `poll` may complete a grace period itself); on
    // a thread of its own, so that this one stays unregistered.
    std::thread::spawn(|| rcu_barrier(&Sleepable::enter())).join().expect("the barrier ran");
}

/// Spawns a thread that reads once in `domain` (registering), reports, and then waits for
/// the returned sender to be dropped before it exits.
fn registered_thread<D>(domain: D) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>)
where
    D: Deref<Target = Domain> + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        drop(domain.read_lock(&mut ctx));
        ready_tx.send(()).unwrap();
        let _ = exit_rx.recv();
    });
    ready_rx.recv_timeout(PATIENCE).expect("the thread registered");
    (exit_tx, handle)
}

#[test]
fn exiting_threads_release_their_slots() {
    let domain = settled_domain(DomainConfig::new().name("life-slots"));
    let base = domain.stats().readers;
    let threads: Vec<_> = (0..8).map(|_| registered_thread(domain.clone())).collect();
    assert_eq!(domain.stats().readers, base + 8);
    for (i, (exit, handle)) in threads.into_iter().enumerate() {
        drop(exit);
        handle.join().unwrap();
        // The slot is released by a thread-exit hook, which has run once join returns.
        let left = base + 7 - i as u64;
        assert_eq!(domain.stats().readers, left, "slot not released at thread exit");
    }
    // Slots are reused: a new generation of readers registers and leaves again.
    for _ in 0..3 {
        let threads: Vec<_> = (0..4).map(|_| registered_thread(domain.clone())).collect();
        assert_eq!(domain.stats().readers, base + 4);
        for (exit, handle) in threads {
            drop(exit);
            handle.join().unwrap();
        }
        assert_eq!(domain.stats().readers, base);
    }
    // A grace period with only released slots left completes at once.
    domain.synchronize_rcu(&Sleepable::enter());
}

#[test]
fn exiting_threads_release_their_global_slots() {
    let _serial = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    settle_global_worker();
    let global = Domain::global();
    let before = global.stats().readers;
    let (exit_tx, t) = registered_thread(global);
    assert_eq!(global.stats().readers, before + 1);
    drop(exit_tx);
    t.join().unwrap();
    assert_eq!(global.stats().readers, before, "the global slot was not released at exit");
}

/// A thread registered in several domains releases every slot when it exits.
#[test]
fn exiting_thread_releases_slots_in_every_domain() {
    let domains: Vec<_> = (0..4)
        .map(|i| settled_domain(DomainConfig::new().name(format!("life-many-{i}"))))
        .collect();
    let t = std::thread::spawn({
        let domains = domains.clone();
        move || {
            let mut ctx = Sleepable::enter();
            for d in &domains {
                drop(d.read_lock(&mut ctx));
            }
            domains.iter().map(|d| d.stats().readers).collect::<Vec<_>>()
        }
    });
    let during = t.join().unwrap();
    // Each domain: its worker and the thread.
    assert_eq!(during, vec![2; 4]);
    for d in &domains {
        assert_eq!(d.stats().readers, 1, "{} kept a slot of an exited thread", d.name());
    }
}

/// Runs a thread that enters a read section of `domain`, forgets the guard, and exits when
/// told. Returns the sender that tells it, and its handle.
fn thread_with_leaked_guard<D>(domain: D, nested: bool) -> (mpsc::Sender<()>, Pending<()>)
where
    D: Deref<Target = Domain> + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let leaker = Pending::spawn("leaker", move || {
        let mut ctx = Sleepable::enter();
        let guard = domain.read_lock(&mut ctx);
        if nested {
            std::mem::forget(guard.nest());
        }
        std::mem::forget(guard);
        ready_tx.send(()).unwrap();
        let _ = exit_rx.recv();
    });
    ready_rx.recv_timeout(PATIENCE).expect("the leaking thread entered its section");
    (exit_tx, leaker)
}

/// While the leaking thread lives its section holds grace periods (it is a reader still
/// inside); once it exits the section is force-ended, counted, and grace periods complete.
fn leaked_guard_is_ended_at_thread_exit<D>(domain: D, nested: bool)
where
    D: Deref<Target = Domain> + Clone + Send + Sync + 'static,
{
    // The runtime reports the leak at the thread's exit: provoked here.
    let report = format!("read section(s) of domain '{}': a ReadGuard was leaked", domain.name());
    rcu_tests::quiet::quiet_reports(&report);
    let reported = rcu_tests::quiet::reports_containing(&report);
    let before = domain.stats();
    let (exit, leaker) = thread_with_leaked_guard(domain.clone(), nested);
    let cookie = domain.get_state();
    let mut writer = Pending::spawn("writer", {
        let domain = domain.clone();
        move || domain.synchronize_rcu(&Sleepable::enter())
    });
    assert_holds_for(HOLD, "a grace period ignored a live thread's leaked section", || {
        !writer.is_done() && !domain.poll(cookie)
    });
    drop(exit);
    leaker.join("the leaking thread's exit");
    writer.join("synchronize after the leaking thread exited");
    assert!(domain.poll(cookie));
    let after = domain.stats();
    assert_eq!(
        after.leaked_read_sections,
        before.leaked_read_sections + 1,
        "the leaked section was not counted: {before:?} -> {after:?}"
    );
    let patience = std::time::Duration::from_secs(5);
    assert!(rcu_tests::quiet::wait_for_reports(&report, reported + 1, patience), "not reported");
    assert_eq!(after.readers, before.readers, "the leaking thread's slot was not released");
    // The slot is reusable and not stuck inside a section.
    let (exit, handle) = registered_thread(domain.clone());
    drop(exit);
    handle.join().unwrap();
    domain.synchronize_rcu(&Sleepable::enter());
}

#[test]
fn leaked_guard_is_ended_at_thread_exit_private() {
    let domain = settled_domain(DomainConfig::new().name("life-leak"));
    leaked_guard_is_ended_at_thread_exit(domain, false);
}

#[test]
fn leaked_nested_guards_are_ended_at_thread_exit() {
    let domain = settled_domain(DomainConfig::new().name("life-leak2"));
    leaked_guard_is_ended_at_thread_exit(domain, true);
}

#[test]
fn leaked_guard_is_ended_at_thread_exit_global() {
    let _serial = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    settle_global_worker();
    leaked_guard_is_ended_at_thread_exit(Domain::global(), false);
}

/// Threads keep coming and going while grace periods run: nothing is lost or stuck.
#[test]
fn grace_periods_run_while_threads_come_and_go() {
    let domain = settled_domain(DomainConfig::new().name("life-churn"));
    let writer = Pending::spawn("churn-writer", {
        let domain = domain.clone();
        move || {
            let ctx = Sleepable::enter();
            for _ in 0..100 {
                domain.synchronize_rcu(&ctx);
            }
        }
    });
    for _ in 0..10 {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let domain = domain.clone();
                std::thread::spawn(move || {
                    let mut ctx = Sleepable::enter();
                    for _ in 0..50 {
                        drop(domain.read_lock(&mut ctx));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    writer.join("grace periods while readers come and go");
    // Only the worker is left.
    assert!(wait_until(PATIENCE, || domain.stats().readers == 1), "{:?}", domain.stats());
}
