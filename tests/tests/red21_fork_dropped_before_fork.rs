//! Red team (issue 21, fork repair): a domain whose `Domain` handle was dropped in the parent
//! *before* the fork, while a cell still held its state (so its worker was still serving),
//! is restarted in the child by `fork::restart_worker`: `worker_thread::start` restarts the
//! worker *and the refill thread*, and then only the worker is told to stop
//! (`domain.worker.request_stop()`); the refill thread, which holds a `ThreadRef`, is never
//! asked to stop. Once the child drops the cell, the stopping worker never finds itself
//! holding the last reference (`holds_the_last_reference`: strong count 1), so both threads
//! run for ever in the child and the state is never freed. The parent's copy (the control)
//! stops both threads.
#![cfg(not(loom))]

mod common;

use std::time::{Duration, Instant};

use common::{thread_names, wait_until, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Rcu};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};

fn threads_of(domain_name: &str) -> [String; 2] {
    [format!("rcu-gp-{domain_name}"), format!("rcu-refill-{domain_name}")]
        .map(|name| name[..name.len().min(15)].to_owned())
}

fn still_running(threads: &[String]) -> Vec<String> {
    let names = thread_names();
    threads.iter().filter(|t| names.contains(t)).cloned().collect()
}

const EXIT_PATIENCE: Duration = Duration::from_secs(20);

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_domain_dropped_before_the_fork_stops_its_threads_in_the_child() {
    let ctx = Sleepable::enter();
    let domain = Domain::new(DomainConfig::new().name("fk-pre"));
    domain.kvfree_rcu(&ctx, Rcu::boxed(2u64));
    domain.rcu_barrier(&ctx);
    let cell = RcuCell::new_in(&domain, 7u64);
    let threads = threads_of("fk-pre");
    assert!(wait_until(PATIENCE, || still_running(&threads).len() == 2), "{:?}", thread_names());
    // The handle goes; the cell keeps the state, so the worker keeps serving it.
    drop(domain);
    // The refill thread was told to stop with the handle; the worker keeps serving the cell.
    // (Waited for, not slept for: how soon it stops is up to the scheduler.)
    assert!(
        wait_until(PATIENCE, || still_running(&threads) == [threads[0].clone()]),
        "{:?}",
        thread_names()
    );
    let child_threads = threads.clone();
    // SAFETY: the child uses rcu-core, allocation, /proc and raw_eprint only.
    let end = unsafe {
        run_in_child(Duration::from_secs(60), move || {
            let ctx = Sleepable::enter();
            // The child handler restarted the threads that ran in the parent.
            let start = Instant::now();
            while still_running(&child_threads).len() < 2
                && start.elapsed() < Duration::from_secs(2)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            cell.set(&ctx, 8);
            drop(cell);
            let start = Instant::now();
            while !still_running(&child_threads).is_empty() {
                if start.elapsed() > EXIT_PATIENCE {
                    raw_eprint(&format!(
                        "child: {EXIT_PATIENCE:?} after the last cell went, still running: {:?}\n",
                        still_running(&child_threads)
                    ));
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            0
        })
    };
    // Control: the parent's copy (the cell moved into the closure was dropped unrun here).
    let parent_ok = wait_until(EXIT_PATIENCE, || still_running(&threads).is_empty());
    drop(ctx);
    assert!(parent_ok, "control: the parent's threads still run: {:?}", still_running(&threads));
    assert_eq!(end, ChildEnd::Exited(0), "the child's threads of the dropped domain never stopped");
}
