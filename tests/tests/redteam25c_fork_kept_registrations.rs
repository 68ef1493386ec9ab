//! Red team 25c, suspicion 5: `fork()` with kept registrations (commit 1ee279d). The forking
//! thread registered with a classic domain `D` and a sleepable one `S`, then dropped both
//! handles: their cells keep the states, and the thread's registrations are kept (the cache
//! names D's slot at the fork). Another parent thread, registered with both, is blocked
//! outside any section (its slots are ended in the child). In the child:
//! 1. an `Atomic` update of each cell (needs the inherited kept slot: no panic);
//! 2. a `set` of each, then both cells are dropped: the restarted (stopping) workers must
//!    let the states go, running every retired value, within 60 s;
//! 3. a registration with a new domain `E` (its sweep removes the gone states' entries), a
//!    section of E, and a clean exit.
//!
//! The parent then does the same with its own copies. Deterministic; one `#[test]` in the
//! file (no other test's threads may hold locks at the fork). The `unsafe` is the fork
//! helper's contract, as in the other fork tests.
//!
//! Verdict: holds at the time of writing.
#![cfg(not(loom))]

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::threads_named;

const PATIENCE: Duration = Duration::from_secs(60);
const WATCHDOG: Duration = Duration::from_secs(120);

/// Steps 1-3; returns a complaint, if any.
fn exercise(
    log: &'static DropLog,
    cd: RcuCell<Tracked>,
    cs: RcuCell<Tracked>,
    tag: &str,
) -> Option<String> {
    let mut ctx = Sleepable::enter();
    let mut spare = vec![Rcu::boxed(log.track()), Rcu::boxed(log.track())];
    let atomic = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut spin = ctx.atomic();
        for c in [&cd, &cs] {
            let mut next = spare.pop();
            c.update(&mut spin, |_| next.take().expect("one try"));
        }
    }));
    if atomic.is_err() {
        return Some("an Atomic update of a kept registration's cell panicked".into());
    }
    cd.set(&ctx, log.track());
    cs.set(&ctx, log.track());
    drop((cd, cs));
    let start = Instant::now();
    while threads_named("rcu-gp-c5") != 0 {
        if start.elapsed() > PATIENCE {
            return Some("the dropped domains' workers never exited".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if !log.wait_freed(log.allocated(), PATIENCE) {
        return Some(format!(
            "{} of {} values never dropped",
            log.allocated() - log.freed(),
            log.allocated()
        ));
    }
    if log.double_frees() != 0 {
        return Some("a value dropped twice".into());
    }
    let e = Domain::new(DomainConfig::new().name(format!("x5{tag}E")));
    let ecell = RcuCell::new_in(&e, log.track());
    {
        let g = e.read_lock(&mut ctx);
        let _ = ecell.load(&g).id();
    }
    ecell.set(&ctx, log.track());
    drop(ecell);
    e.rcu_barrier(&ctx);
    None
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_child_uses_and_ends_kept_registrations() {
    let log = DropLog::new(64);
    let d = Domain::new(DomainConfig::new().name("c5D"));
    let s: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("c5S"));
    let cell_d = RcuCell::new_in(&d, log.track());
    let cell_s = RcuCell::new_in(&s, log.track());
    // Another parent thread, registered with both (through cells of its own, dropped before
    // the fork), blocked outside any section at the fork.
    let other = (RcuCell::new_in(&d, log.track()), RcuCell::new_in(&s, log.track()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let blocked = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        other.0.update(&mut ctx, |_| Rcu::boxed(log.track()));
        other.1.update(&mut ctx, |_| Rcu::boxed(log.track()));
        // Dropped before the fork: in the child, a cell on a thread that does not exist there
        // would keep its domain's state alive for ever.
        drop(other);
        ready_tx.send(()).expect("main waits");
        let _ = go_rx.recv();
    });
    ready_rx.recv().expect("the other thread registered");
    let ctx = Sleepable::enter();
    d.register_current_thread(&ctx);
    s.register_current_thread(&ctx);
    drop(ctx);
    // Both handles go: the cells keep the states, the main thread its registrations.
    drop(d);
    drop(s);
    {
        // Fill the cache with D's slot (an Atomic update finds it through the list).
        let mut ctx = Sleepable::enter();
        let mut next = Some(Rcu::boxed(log.track()));
        let mut spin = ctx.atomic();
        cell_d.update(&mut spin, |_| next.take().expect("one try"));
    }
    // What was retired so far has run (only the two cells' values live): a batch the
    // parent's worker holds at the fork does not exist in the child (see `runtime::fork`).
    assert!(log.wait_freed(log.allocated() - 2, PATIENCE), "retired values never dropped");
    // The cells move into the closure: the child uses and drops its copies; the parent
    // drops its copies, unrun, when `run_in_child` returns.
    let (cd, cs) = (cell_d, cell_s);
    // SAFETY: (1) the child only makes rcu-core calls, allocates, reads /proc and writes to
    // fd 2; (2) it uses no reference another thread loaded under its guard.
    let end = unsafe {
        run_in_child(WATCHDOG, move || match exercise(log, cd, cs, "child") {
            Some(e) => {
                raw_eprint(&format!("fork child: {e}\n"));
                1
            }
            None => 0,
        })
    };
    go_tx.send(()).expect("the other thread waits");
    blocked.join().expect("the other thread");
    assert_eq!(end, ChildEnd::Exited(0), "the fork child failed (see its message above)");
    let start = Instant::now();
    while threads_named("rcu-gp-c5") != 0 {
        assert!(start.elapsed() < PATIENCE, "hung: the parent's dropped domains' workers");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(log.wait_freed(log.allocated(), PATIENCE), "values never dropped in the parent");
    log.assert_all_freed_once();
}
