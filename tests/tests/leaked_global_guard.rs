//! Hostile program 1 of the soundness issue, on the global domain: a read guard leaked
//! together with its root outlives its thread, and the reference loaded through it is sent
//! to another thread. That reference must stay valid for ever: the section is never ended,
//! every later grace period of the global domain waits for it, and stall reports name it as
//! a leaked guard. Meanwhile `Atomic` and `NoReclaim` callers keep going on the budget's
//! fallbacks.
//!
//! Alone in its file, so in a process of its own: the leaked section rightly holds up every
//! later global grace period, which would stall any other test.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_holds_for, wait_until, Canary, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::StallReport;
use rcu_tests::SpinLock;

/// A spin lock rather than a `Mutex`: ThreadSanitizer sees its ordering (see `SpinLock`).
static REPORTS: SpinLock<Vec<StallReport>> = SpinLock::new(Vec::new());

#[test]
fn a_guard_leaked_with_its_root_keeps_what_it_loaded_alive_for_ever() {
    // The runtime reports the leak at the thread's exit: provoked here.
    rcu_tests::quiet::quiet_reports("thread 'guard-leaker' (tid");
    let global = Domain::global();
    global.set_stall_timeout(Duration::from_millis(50));
    global.set_stall_handler(Some(Arc::new(|report: &StallReport| {
        REPORTS.with(|r| r.push(report.clone()));
    })));

    // The program from the issue, as a user would write it.
    let (canary, dropped_42) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new(canary)));
    let r: &'static Canary = std::thread::Builder::new()
        .name("guard-leaker".into())
        .spawn(move || {
            let ctx: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
            let g: &'static ReadGuard<'static> = Box::leak(Box::new(read_lock(ctx)));
            cell.load(g)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r.value(), 42);
    assert!(global.stats().leaked_read_sections >= 1);

    // A writer retires the value the leaked section can still reach. Waiting for a grace
    // period would rightly wait for ever: poll it instead, with a bounded wait.
    let mut ctx = Sleepable::enter();
    let mut cookie = {
        let nr = ctx.no_reclaim();
        cell.set(&nr, Canary::new(7).0); // never waits, whatever the budget
        start_poll(&nr)
    };
    assert!(
        wait_until(PATIENCE, || {
            REPORTS.with(|r| {
                r.iter().any(|rep| {
                    rep.leaked_guard && rep.thread_name.as_deref() == Some("guard-leaker")
                })
            })
        }),
        "no stall report named the leaked guard: {:?}",
        REPORTS.with(|r| r.clone())
    );
    let report = REPORTS.with(|r| r[0].to_string());
    assert!(report.contains("a read guard was leaked"), "{report}");
    assert_holds_for(HOLD, "the leaked section's grace period completed", || {
        !poll(cookie) && !dropped_42.load(Ordering::SeqCst)
    });
    assert_eq!(r.value(), 42, "the value read through the leaked guard was freed");

    // Callers that never wait keep going while every grace period is held up.
    for i in 0..20_000u64 {
        if i % 2 == 0 {
            let atomic = ctx.atomic();
            kvfree_rcu(&atomic, Rcu::boxed([i; 4]));
        } else {
            let nr = ctx.no_reclaim();
            kvfree_rcu(&nr, Rcu::boxed([i; 4]));
            cookie = start_poll(&nr);
        }
    }
    assert!(!poll(cookie));
    assert!(!dropped_42.load(Ordering::SeqCst));
    assert_eq!(r.value(), 42);
}
