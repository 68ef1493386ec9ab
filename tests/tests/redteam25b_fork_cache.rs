//! Red team 25b, suspicion 5: a `fork()` child reading private domains whose `FoundCache`
//! entry was filled in the parent.
//!
//! The forking thread reads a classic private domain `D` and a sleepable one `S` (the cache
//! names `D` at the fork) while another parent thread, registered with both, is blocked
//! outside any section (its slots are ended in the child). In the child, the forking thread:
//! 1. enters a section of `D` through the inherited cache entry, retires the value it
//!    loaded and checks during `HOLD` that a grace period of `D` started inside does not
//!    complete and the value is not dropped; after the section both happen;
//! 2. does the same for `S` (a miss: a walk of the inherited list fills the cache);
//! 3. makes, reads and drops a new domain (a sweep in the child), then reads `D` again
//!    (a walk) with the same check.
//!
//! The parent then checks its own sections the same way. Deterministic; held at the time
//! of writing. One `#[test]` in the file (no other test's threads may hold locks at the
//! fork).
#![cfg(not(loom))]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, GpCookie, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};

const HOLD: Duration = Duration::from_millis(100);
const PATIENCE: Duration = Duration::from_secs(60);
const WATCHDOG: Duration = Duration::from_secs(120);

/// Inside a section that loaded `id` and retired it, with `cookie` started there: neither
/// may happen during `HOLD`. Returns a complaint, if any.
fn held(log: &DropLog, id: usize, mut done: impl FnMut() -> bool) -> Option<&'static str> {
    let start = Instant::now();
    while start.elapsed() < HOLD {
        if done() {
            return Some("a grace period started inside the section completed");
        }
        if log.is_freed(id) {
            return Some("the value loaded in the section was dropped inside it");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// After the section: the grace period completes and the value is dropped.
fn released(log: &DropLog, id: usize, mut done: impl FnMut() -> bool) -> Option<&'static str> {
    let start = Instant::now();
    while !(done() && log.is_freed(id)) {
        if start.elapsed() > PATIENCE {
            return Some("after the section, the grace period or the free never came");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// One checked section of classic domain `d`.
fn check_classic(
    d: &Domain,
    cell: &RcuCell<Tracked>,
    log: &'static DropLog,
) -> Option<&'static str> {
    let mut ctx = Sleepable::enter();
    let next = Rcu::boxed(log.track());
    let (id, cookie): (usize, GpCookie);
    {
        let g = d.read_lock(&mut ctx);
        id = cell.load(&g).id();
        cell.replace(g.ctx(), next);
        cookie = d.start_poll(g.ctx());
        if let Some(e) = held(log, id, || d.poll(cookie)) {
            return Some(e);
        }
    }
    released(log, id, || d.poll(cookie))
}

/// One checked section of sleepable domain `s`.
fn check_sleepable(
    s: &SrcuStruct,
    cell: &RcuCell<Tracked>,
    log: &'static DropLog,
) -> Option<&'static str> {
    let mut ctx = Sleepable::enter();
    let next = Rcu::boxed(log.track());
    let (id, cookie): (usize, GpCookie);
    {
        let g = s.read_lock(&mut ctx);
        id = cell.load(&g).id();
        cell.replace(g.ctx(), next);
        cookie = s.start_poll_synchronize_srcu(g.ctx());
        if let Some(e) = held(log, id, || s.poll_state_synchronize_srcu(cookie)) {
            return Some(e);
        }
    }
    released(log, id, || s.poll_state_synchronize_srcu(cookie))
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_child_reads_through_the_cache_it_inherited() {
    let log = DropLog::new(64);
    let d = Domain::new(DomainConfig::new().name("rt25b-fork-D"));
    let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("rt25b-fork-S"));
    let cell_d = RcuCell::new_in(&d, log.track());
    let cell_s = RcuCell::new_in(&s, log.track());
    // Another parent thread, registered with both, blocked outside any section.
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|sc| {
        let (d, s) = (&d, &s);
        sc.spawn(move || {
            let mut ctx = Sleepable::enter();
            drop(d.read_lock(&mut ctx));
            drop(s.read_lock(&mut ctx));
            ready_tx.send(()).unwrap();
            let _ = go_rx.recv();
        });
        ready_rx.recv().unwrap();
        let mut ctx = Sleepable::enter();
        drop(s.read_lock(&mut ctx));
        drop(d.read_lock(&mut ctx)); // the cache names D at the fork
        drop(ctx);
        let (d_ref, s_ref, cd, cs) = (d, s, &cell_d, &cell_s);
        // SAFETY: (1) the child only makes rcu-core calls, allocates and writes to fd 2; (2)
        // it uses no reference another thread loaded under its guard.
        let end = unsafe {
            run_in_child(WATCHDOG, move || {
                let fail = |step: &str, e: &str| {
                    raw_eprint(&format!("fork child: {step}: {e}\n"));
                    1
                };
                if let Some(e) = check_classic(d_ref, cd, log) {
                    return fail("D through the inherited cache", e);
                }
                if let Some(e) = check_sleepable(s_ref, cs, log) {
                    return fail("S", e);
                }
                {
                    let other = Domain::new(DomainConfig::new().name("rt25b-fork-other"));
                    let mut ctx = Sleepable::enter();
                    drop(other.read_lock(&mut ctx));
                }
                {
                    let third = Domain::new(DomainConfig::new().name("rt25b-fork-third"));
                    let mut ctx = Sleepable::enter();
                    drop(third.read_lock(&mut ctx)); // sweeps `other`'s registration
                }
                if let Some(e) = check_classic(d_ref, cd, log) {
                    return fail("D after a sweep in the child", e);
                }
                0
            })
        };
        go_tx.send(()).unwrap();
        match end {
            ChildEnd::Exited(0) => {}
            ChildEnd::Exited(code) => panic!("the child failed (exit {code}); see its line above"),
            ChildEnd::Died(status) => panic!("the child died: status {status:#x}"),
            ChildEnd::Hung => panic!("the child hung"),
        }
    });
    assert_eq!(check_classic(&d, &cell_d, log), None, "parent, D");
    assert_eq!(check_sleepable(&s, &cell_s, log), None, "parent, S");
}
