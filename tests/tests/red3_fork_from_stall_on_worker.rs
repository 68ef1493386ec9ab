//! (Refuted: this program passed when written; kept as a regression test.)
//! Red team, round 3 (fork repair: `GracePeriods::led_here`, `worker_here`): a fork from a
//! stall handler that runs on a domain's worker while it leads the stalled grace period.
//!
//! Suspicion: the child keeps the leader's role (the forking thread leads) and the worker
//! (the forking thread is it); if either repair were wrong the child would have two leaders
//! or none that ever runs, two workers, or a worker whose reader wait never ends (the stalling
//! reader does not exist in the child), and its barriers would hang.
//!
//! Mechanism: a reader holds the grace period; `start_poll` makes the worker lead it; the
//! stall handler (50 ms timeout) forks once. In the child (the worker's thread, inside the
//! handler) two new threads run callbacks and barriers under a watchdog.
//!
//! DESIGN §5: every API works in the fork child; §5.1: a stall handler never kills or wedges
//! the worker.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, StallReport};
use rcu_tests::fork::{fork_with_test_thread, reap, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static CHILD: AtomicI32 = AtomicI32::new(0);
static FORKED: AtomicBool = AtomicBool::new(false);
static RAN: AtomicU64 = AtomicU64::new(0);

fn child_test() -> i32 {
    let d = DOMAIN.get().unwrap();
    let ctx = Sleepable::enter();
    for _ in 0..10 {
        d.call_rcu_fn(&ctx, |_| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        d.rcu_barrier(&ctx);
    }
    d.synchronize_rcu(&ctx);
    i32::from(RAN.load(Ordering::SeqCst) != 10)
}

fn fork_once(_: &StallReport) {
    if FORKED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: the child only spawns threads that use rcu-core, allocation and raw writes,
    // then `_exit`s; in the child this thread (the worker, in the handler) returns to it.
    let pid = unsafe {
        fork_with_test_thread(
            Duration::from_secs(20),
            "child: watchdog: the barriers hung (20 s)\n",
            child_test,
        )
    };
    if pid != 0 {
        CHILD.store(pid, Ordering::SeqCst);
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_from_a_stall_handler_on_the_leading_worker_leaves_the_child_working() {
    let d = DOMAIN.get_or_init(|| {
        Domain::new(
            DomainConfig::new().name("red3-stallfk").stall_timeout(Duration::from_millis(50)),
        )
    });
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx);
    }
    d.set_stall_handler(Some(Arc::new(fork_once)));
    let reader = HeldGracePeriods::spawn(d);
    let cookie = {
        let ctx = Sleepable::enter();
        d.start_poll(&ctx) // the worker leads it, and stalls
    };
    let start = Instant::now();
    while CHILD.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the stall handler never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    reader.release();
    let end = reap(CHILD.load(Ordering::SeqCst), Duration::from_secs(40));
    assert_ne!(end, ChildEnd::Hung, "child hung past its own watchdog");
    let ctx = Sleepable::enter();
    d.cond_synchronize(&ctx, cookie);
    d.call_rcu_fn(&ctx, |_| {});
    d.rcu_barrier(&ctx);
    if let ChildEnd::Died(status) = end {
        panic!("the child died of signal {}", libc::WTERMSIG(status));
    }
    assert_eq!(end, ChildEnd::Exited(0), "the child's barriers failed (see its message)");
}
