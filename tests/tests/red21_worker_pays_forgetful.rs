//! Red team (issue 21): user code the global worker runs *while paying its own debts*
//! (`rcu_ctx::owed`, `root.atomic()` / `root.no_reclaim()` in `worker_thread::run`) is not
//! inside `worker_thread::UserCode`: the snapshot is taken after the scope (and its payment)
//! has opened. A callback run there that forgets a read guard of the global domain leaves the
//! worker inside its own domain's read section for good, and every later grace period of
//! the global domain (the worker's, `synchronize_rcu`, `rcu_barrier`) waits for it.
//!
//! How the worker comes to owe: a callback on the global worker queues more than one block
//! (253 entries) of `call_rcu` with its `Atomic` token; the full block is sealed under the
//! `NoWait` policy on the global domain, so it is parked on the worker's own slot and
//! `owe_reclaim` is set; the worker's next `root.no_reclaim()` / `root.atomic()` pays, i.e.
//! runs that parked block inline once its grace period has passed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Pending;
use rcu_core::prelude::*;
use rcu_core::Rcu;

static FORGOT: AtomicU64 = AtomicU64::new(0);

fn forget_a_global_guard(obj: Box<Rcu<u64>>, ctx: &Atomic<'_>) {
    drop(obj);
    FORGOT.fetch_add(1, Ordering::SeqCst);
    core::mem::forget(Domain::global().read_lock_nested(ctx));
}

#[test]
fn a_callback_run_by_the_workers_own_debt_payment_forgets_a_guard() {
    // The worker's report of the guards it undid: provoked here.
    rcu_tests::quiet::quiet_reports(
        "on the worker of domain 'global' forgot scopes or read guards",
    );
    let ctx = Sleepable::enter();
    rcu_core::init(&ctx);
    // Stall reports name who holds the grace period up (the worker, if the bug is there).
    let reports = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let reports = reports.clone();
        Domain::global().set_stall_timeout(Duration::from_secs(2));
        Domain::global().set_stall_handler(Some(Arc::new(move |r: &rcu_core::StallReport| {
            if let Ok(mut v) = reports.try_lock() {
                v.push(format!(
                    "{:?} tid {} leaked_guard {} cause {:?}",
                    r.thread_name, r.tid, r.leaked_guard, r.cause
                ));
            }
        })));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Drives grace periods of the global domain while the worker is busy in a callback,
    // so that the worker's parked block is ready when it next opens a scope.
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("gp-driver".into())
            .spawn(move || {
                let ctx = Sleepable::enter();
                while !stop.load(Ordering::SeqCst) {
                    rcu_core::synchronize_rcu(&ctx);
                }
            })
            .unwrap();
    }
    // Boxes made outside, so the callback does not allocate.
    let boxes: Vec<Box<Rcu<u64>>> = (0..600).map(|i| Rcu::boxed(i as u64)).collect();
    rcu_core::call_rcu_fn(&ctx, move |atomic| {
        let mut boxes = boxes;
        while let Some(b) = boxes.pop() {
            rcu_core::call_rcu(atomic, b, forget_a_global_guard);
        }
        // Stay busy on the worker while grace periods go on elsewhere.
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            core::hint::spin_loop();
        }
    });
    let mut check = Pending::spawn("after", || {
        let ctx = Sleepable::enter();
        for _ in 0..3 {
            rcu_core::rcu_barrier(&ctx);
            rcu_core::synchronize_rcu(&ctx);
        }
    });
    let ok = check.wait_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::SeqCst);
    let stats = Domain::global().stats();
    let seen: Vec<String> = reports.lock().unwrap().iter().take(3).cloned().collect();
    assert!(
        ok,
        "global grace periods/barriers wedged after callbacks forgot guards (forgot {} times); \
         stats {:?}; stall reports {:?}",
        FORGOT.load(Ordering::SeqCst),
        stats,
        seen
    );
    eprintln!("ok: forgot {} times, stats {:?}", FORGOT.load(Ordering::SeqCst), stats);
}
