//! Red team (issue 21, fork repair): a fork from inside a callback, on a domain's worker.
//! runtime/fork.rs now knows this case (`worker_thread::on_a_worker`: "its own reference is alive
//! in the child"), but the child handler still forgets the worker (`Worker::reset_after_fork`) and
//! restarts it (`restart_worker`), while the forking thread, which *is* that worker, returns from
//! its callback and goes on with its own loop. The child then has two workers for one domain, each
//! numbering collections and publishing `completed_generation` with `fetch_max`: an empty
//! collection of one worker completes a generation past a batch the other still waits to run, and
//! `rcu_barrier` returns before callbacks queued before it have run.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{fork_with_test_thread, raw_eprint, reap, ChildEnd};

static DOMAIN: OnceLock<Arc<Domain>> = OnceLock::new();
static CHILD: AtomicI32 = AtomicI32::new(0);
static RAN: AtomicU64 = AtomicU64::new(0);

fn workers() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .filter(|n| n.starts_with("rcu-gp-fk-cb"))
        .collect()
}

fn child_test() -> i32 {
    let d = DOMAIN.get().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let ctx = Sleepable::enter();
    let mut queued = 0u64;
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(5) {
        for _ in 0..(1 + rounds % 7) {
            d.call_rcu_fn(&ctx, |_| {
                RAN.fetch_add(1, Ordering::SeqCst);
            });
            queued += 1;
        }
        if rounds % 3 == 0 {
            std::thread::sleep(Duration::from_micros(500 * (rounds % 11)));
        }
        d.rcu_barrier(&ctx);
        let ran = RAN.load(Ordering::SeqCst);
        if ran != queued {
            std::thread::sleep(Duration::from_secs(1));
            let later = RAN.load(Ordering::SeqCst);
            d.rcu_barrier(&ctx);
            raw_eprint(&format!(
                "child: round {rounds}: rcu_barrier returned with {ran} of {queued} callbacks \
                 run ({later} a second later, {} after another barrier); workers: {:?}\n",
                RAN.load(Ordering::SeqCst),
                workers()
            ));
            return 1;
        }
        rounds += 1;
    }
    0
}

fn fork_here(_: &Atomic<'_>) {
    // SAFETY: the child only spawns threads that use rcu-core, allocation and raw writes,
    // then `_exit`s.
    // In the child this thread is the domain's worker, inside a callback. The test runs on
    // a thread of its own; this one returns to the worker's loop.
    let pid = unsafe {
        fork_with_test_thread(
            Duration::from_secs(30),
            "child: watchdog: a barrier hung\n",
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
fn barriers_in_the_child_of_a_fork_from_a_callback() {
    let d = DOMAIN.get_or_init(|| Arc::new(Domain::new(DomainConfig::new().name("fk-cb"))));
    let ctx = Sleepable::enter();
    d.call_rcu_fn(&ctx, fork_here);
    d.rcu_barrier(&ctx);
    let pid = CHILD.load(Ordering::SeqCst);
    assert!(pid > 0, "no child");
    let end = reap(pid, Duration::from_secs(60));
    assert_ne!(end, ChildEnd::Hung, "child hung past its own watchdog");
    if let ChildEnd::Died(status) = end {
        panic!("child died: status {status:#x}");
    }
    assert_eq!(end, ChildEnd::Exited(0), "the child's barriers failed (see its message)");
}
