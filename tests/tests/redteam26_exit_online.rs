//! Red team, issue 26: a thread that exits while online for its executor, without the stop
//! hook (a hand-written executor whose worker unwinds out of its loop, or has no stop hook).
//! Its executor online period is not a guard: outside `read` closures the thread holds
//! nothing. Yet at exit the registration sees an open section, and
//! - with every root of the thread dropped, ends it but counts and reports it as a leaked
//!   `ReadGuard` (misleading, but grace periods go on): checked to hold here;
//! - with a root leaked (`mem::forget(Sleepable::enter())`, safe code), keeps it open for ever
//!   (the rule for a forgotten guard whose references may be `'static`): every later grace
//!   period of the domain waits for a dead thread that held nothing.
//!
//! Deterministic (the thread is joined before the grace period). The watchdog only tells a
//! hang from a wait that ends.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{Canary, Pending};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

/// Longer than any grace period with nobody to wait for takes on a loaded machine.
const WATCHDOG: Duration = Duration::from_secs(20);

/// A worker thread that reads once (online for its executor) and exits without the stop
/// hook, leaking a root first if `leak_root`.
fn exit_online(d: &Arc<QsbrDomain>, cell: &Arc<RcuCell<Canary>>, leak_root: bool) {
    let (d, cell) = (d.clone(), cell.clone());
    std::thread::Builder::new()
        .name("red26-exit-online".into())
        .spawn(move || {
            d.executor_thread_start();
            d.executor_thread_park();
            assert_eq!(d.read(|r| cell.load(r).value()), 1);
            assert!(d.is_executor_online());
            if leak_root {
                std::mem::forget(Sleepable::enter());
            }
        })
        .expect("spawn")
        .join()
        .expect("the worker");
}

fn replace_and_sync(d: &Arc<QsbrDomain>, cell: &Arc<RcuCell<Canary>>) -> Pending<()> {
    let (d, cell) = (d.clone(), cell.clone());
    Pending::spawn("red26-exit-writer", move || {
        let ctx = Sleepable::enter();
        cell.set(&ctx, Canary::new(2).0);
        d.synchronize_rcu(&ctx);
        d.rcu_barrier(&ctx);
    })
}

#[test]
fn a_worker_exiting_online_with_its_roots_dropped_holds_no_grace_period() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-exit")));
    let (canary, dropped) = Canary::new(1);
    let cell = Arc::new(RcuCell::new_in(&*d, canary));
    exit_online(&d, &cell, false);
    let mut writer = replace_and_sync(&d, &cell);
    assert!(writer.wait_timeout(WATCHDOG), "a grace period waited for a thread that exited");
    assert!(dropped.load(Ordering::SeqCst), "the replaced value was never freed");
    // Not a leaked read section: between reads the worker holds none.
    assert_eq!(d.stats().leaked_read_sections, 0);
}

#[test]
fn a_worker_exiting_online_with_a_leaked_root_holds_no_grace_period() {
    let d = Arc::new(QsbrDomain::new(DomainConfig::new().name("red26-exit-leaked-root")));
    let cell = Arc::new(RcuCell::new_in(&*d, Canary::new(1).0));
    exit_online(&d, &cell, true);
    let mut writer = replace_and_sync(&d, &cell);
    assert!(
        writer.wait_timeout(WATCHDOG),
        "a grace period HUNG for {WATCHDOG:?}: it waits for a thread that exited online for \
         its executor (its section abandoned as a leaked guard's; leaked_read_sections {})",
        d.stats().leaked_read_sections
    );
}
