//! Red team, round 7 (the park backend, `--cfg rcu_force_park`): `fork()` while other threads
//! are parked in the table and notifiers are mid-scan.
//!
//! Suspicion (did not hold): the child inherits slots of threads that do not exist there and,
//! from notifiers caught between their `busy` increment and decrement, slots that
//! `reset_after_fork` keeps for ever; the child's grace periods and its restarted worker
//! (which sleep on the table) then hang, or crash on a dead thread's handle. The parent keeps
//! many threads parked without a timeout on one word, two notifiers bump and wake it without
//! pause, and writers run grace periods against a reader; the test thread forks again and
//! again, and each child must run grace periods and a barrier within a watchdog.
//!
//! Alone in its file: only this test's threads run when it forks.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};

const FORKS: usize = 60;
/// Parked threads: a good part of the table (128 slots).
const PARKED: usize = 48;
/// A child that takes longer has hung (it needs milliseconds).
const WATCHDOG: Duration = Duration::from_secs(60);

static WORD: AtomicU32 = AtomicU32::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static RAN: AtomicU64 = AtomicU64::new(0);

fn child() -> i32 {
    let ctx = Sleepable::enter();
    for _ in 0..3 {
        synchronize_rcu(&ctx);
    }
    let before = RAN.load(Ordering::SeqCst);
    call_rcu_fn(&ctx, |_| {
        RAN.fetch_add(1, Ordering::SeqCst);
    });
    rcu_barrier(&ctx);
    if RAN.load(Ordering::SeqCst) != before + 1 {
        raw_eprint("red7 fork child: the callback did not run by rcu_barrier\n");
        return 1;
    }
    synchronize_rcu_expedited(&ctx);
    0
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn forks_while_threads_park_and_notifiers_scan() {
    let ctx = Sleepable::enter();
    synchronize_rcu(&ctx); // the runtime (and its fork handlers) is set up
    let mut threads = Vec::new();
    for _ in 0..PARKED {
        threads.push(std::thread::spawn(|| {
            // Relaxed: only ends the loop.
            while !STOP.load(Ordering::Relaxed) {
                // SeqCst: the key, as an event count's.
                let key = WORD.load(Ordering::SeqCst);
                rcu_sys::futex::wait(&WORD, key, None);
            }
        }));
    }
    for _ in 0..2 {
        threads.push(std::thread::spawn(|| {
            // Relaxed: only ends the loop.
            while !STOP.load(Ordering::Relaxed) {
                // SeqCst: the change before the wake.
                WORD.fetch_add(1, Ordering::SeqCst);
                rcu_sys::futex::wake_all(&WORD);
            }
        }));
    }
    threads.push(std::thread::spawn(|| {
        let mut ctx = Sleepable::enter();
        // Relaxed: only ends the loop.
        while !STOP.load(Ordering::Relaxed) {
            let guard = read_lock(&mut ctx);
            std::thread::yield_now();
            drop(guard);
        }
    }));
    threads.push(std::thread::spawn(|| {
        let ctx = Sleepable::enter();
        // Relaxed: only ends the loop.
        while !STOP.load(Ordering::Relaxed) {
            synchronize_rcu(&ctx);
        }
    }));
    let mut ends = Vec::new();
    for _ in 0..FORKS {
        // SAFETY: (1) the child only calls rcu-core and writes to fd 2; (2) it uses no
        // reference another thread loaded.
        ends.push(unsafe { run_in_child(WATCHDOG, child) });
    }
    // Relaxed: only ends the loops.
    STOP.store(true, Ordering::Relaxed);
    // SeqCst: the change before the wake, so that every parked thread sees STOP.
    WORD.fetch_add(1, Ordering::SeqCst);
    rcu_sys::futex::wake_all(&WORD);
    for t in threads {
        t.join().unwrap();
    }
    let bad: Vec<_> = ends.iter().filter(|e| **e != ChildEnd::Exited(0)).collect();
    assert!(bad.is_empty(), "children that failed, died or hung: {bad:?}");
}
