//! Red team, issue 25 (SRCU), suspicion 8: the sleepable domain's handle is dropped while
//! its worker runs callbacks that hold clones of it, take owned guards of it (from their
//! `&Atomic`), read a cell of it under them, replace the cell's value (queuing more frees on
//! the dying domain) and drop their clone, so that the last handle goes inside a callback on
//! the worker itself. (Dropping the domain while a guard of it lives does not compile: the
//! guards borrow it.)
//!
//! Checked: every callback runs; no value read under a guard was freed; every value is
//! eventually dropped exactly once (the worker runs what is queued after the handle is gone,
//! and the cell's own state reference keeps the engine until the cell drops).
//! Deterministic (the callbacks run in one batch or several, either way); held at the time
//! of writing.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};
use rcu_tests::drop_log::{DropLog, Tracked};

const CALLBACKS: usize = 200;
const WATCHDOG: Duration = Duration::from_secs(30);

#[test]
fn the_last_handle_dropped_in_a_callback_that_holds_an_owned_guard() {
    let srcu: Arc<SrcuStruct> = Arc::new(SrcuStruct::new(DomainConfig::new().name("rt25-dying")));
    let log = DropLog::new(CALLBACKS + 8);
    let cell: Arc<RcuCell<Tracked>> = Arc::new(RcuCell::new_in(&srcu, log.track()));
    let ran = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let ctx = Sleepable::enter();
    for _ in 0..CALLBACKS {
        let (s, c, ran, bad) = (srcu.clone(), cell.clone(), ran.clone(), bad.clone());
        let fresh = Rcu::boxed(log.track()); // allocated here; the callback may not
        srcu.call_srcu_fn(&ctx, move |atomic| {
            let g = s.down_read(atomic);
            let id = c.load(&g).id();
            c.replace(atomic, fresh); // retires the value `g` protects, on the dying domain
            if log.is_freed(id) {
                bad.fetch_add(1, Ordering::SeqCst);
            }
            drop(g);
            drop(s); // the last one drops the domain, on its own worker
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }
    drop(srcu);
    let all_ran = rcu_tests::drop_log::wait_until(WATCHDOG, || {
        ran.load(Ordering::SeqCst) == CALLBACKS as u64
    });
    assert!(all_ran, "only {} of {CALLBACKS} callbacks ran", ran.load(Ordering::SeqCst));
    assert_eq!(bad.load(Ordering::SeqCst), 0, "a value was freed under an owned guard");
    // Every replaced value (all but the cell's last) is freed by the dying domain's worker.
    assert!(
        log.wait_freed(CALLBACKS, WATCHDOG),
        "{} of {CALLBACKS} replaced values freed",
        log.freed()
    );
    drop(cell);
    log.assert_all_freed_once();
}
