//! Red team, issue 22: user code the global domain's worker runs *outside* its `UserCode`
//! brackets.
//!
//! Suspicion: `worker_thread::run` snapshots the worker's context state (`UserCode::begin`)
//! only after it has opened `root.atomic()` (around `run_batch`) and `root.no_reclaim()`
//! (around the wakers). Opening a scope from a `Sleepable` token pays what the thread owes
//! (`rcu_ctx::owed`), and on the global domain the worker owes reclaim work whenever a
//! callback it ran queued frees with its `Atomic` token that filled a block: `enqueue::seal`
//! parks such blocks for the sealing thread (here the worker) and calls `owe_reclaim`. The
//! payer (rcu-core's `owed::pay` -> `pay_owed` -> `run_ready_parked`) then runs those
//! callbacks inside the scope opening, before `UserCode::begin` takes its snapshot. A
//! callback run there that forgets a read guard of the global domain is never undone: the
//! worker's own reader word stays in a section, and every later grace period of the global
//! domain waits for the worker, which waits for them.
//!
//! Safe code only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::Rcu;

/// Callbacks that ran on the global worker and forgot a guard there.
static FORGOT_ON_WORKER: AtomicUsize = AtomicUsize::new(0);

/// The frames between `worker_thread::run` and the first callback that forgot on the worker.
static FIRST_RAN_FROM: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// A `call_rcu` callback that forgets a read guard of the global domain, opened from the
/// `&Atomic` it is lent (what `callbacks_forget.rs` shows the worker undoes).
fn forgetful(obj: Box<Rcu<u64>>, ctx: &Atomic<'_>) {
    drop(obj);
    if rcu_tests::thread_name() == "rcu-gp-global" {
        core::mem::forget(Domain::global().read_lock_nested(ctx));
        if FORGOT_ON_WORKER.fetch_add(1, Ordering::SeqCst) == 0 {
            // Where the worker ran it: the frames between `worker_thread::run` and here.
            let bt = std::backtrace::Backtrace::force_capture().to_string();
            let frames: Vec<&str> = bt
                .lines()
                .filter(|l| l.contains("rcu_core::") || l.contains("rcu_ctx::"))
                .map(str::trim)
                .collect();
            // Kept for the failure message: printed from the worker, it would reach the
            // output of a passing run too (libtest does not capture the runtime's threads).
            *FIRST_RAN_FROM.lock().unwrap() = frames.join("\n  ");
        }
    }
}

/// Runs `f` on a helper thread; `Some(result)` if it finished within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The worker's report of the guards it undid: provoked here.
const FORGOT_REPORT: &str = "on the worker of domain 'global' forgot scopes or read guards";

#[test]
fn a_callback_run_by_the_workers_payer_forgets_a_guard_and_wedges_the_global_domain() {
    rcu_tests::quiet::quiet_reports(FORGOT_REPORT);
    let ctx = Sleepable::enter();
    // Start the global worker and register this thread.
    drop(read_lock(&mut Sleepable::enter()));
    rcu_barrier(&ctx);

    // A callback on the worker (run inside run_batch's bracket) queues thousands of
    // call_rcu's with its Atomic token: they fill the worker's blocks, which `seal` parks
    // for the worker (global domain) and records as owed reclaim work.
    let boxes: Vec<Box<Rcu<u64>>> = (0..4000u64).map(Rcu::boxed).collect();
    static CLOSURE_RAN_ON: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    call_rcu_fn(&ctx, move |atomic| {
        *CLOSURE_RAN_ON.lock().unwrap() = Some(rcu_tests::thread_name());
        for b in boxes {
            Domain::global().call_rcu(atomic, b, forgetful);
        }
    });
    // This thread stays idle (no RCU call), so its block is collected by the worker within
    // the batch delay and the closure runs there.
    let start = std::time::Instant::now();
    while CLOSURE_RAN_ON.lock().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ran_on = CLOSURE_RAN_ON.lock().unwrap().clone();
    eprintln!("red22: the closure ran on {ran_on:?}");
    assert_eq!(
        ran_on.as_deref(),
        Some("rcu-gp-global"),
        "the set-up closure must run on the worker"
    );
    let barrier = Some(());
    // Later grace periods of the global domain: each forgotten guard run inside a bracket
    // was undone; one forgotten in the payer (scope opening) was not.
    let later = within(Duration::from_secs(60), || {
        let ctx = Sleepable::enter();
        for _ in 0..3 {
            synchronize_rcu(&ctx);
        }
        rcu_barrier(&ctx);
    });
    let stats = Domain::global().stats();
    eprintln!(
        "red22: forgot on worker {}, leaked_read_sections {}, later gp {}",
        FORGOT_ON_WORKER.load(Ordering::SeqCst),
        stats.leaked_read_sections,
        if later.is_some() { "completed" } else { "HUNG (global domain wedged)" }
    );
    assert!(barrier.is_some(), "the first rcu_barrier of the global domain hung");
    assert!(
        later.is_some(),
        "synchronize_rcu on the global domain hung: the global worker holds a read section \
         a callback forgot (stats {stats:?}); the first forgetful callback on the worker ran \
         from:\n  {}",
        FIRST_RAN_FROM.lock().unwrap()
    );

    drop(ctx);
}
