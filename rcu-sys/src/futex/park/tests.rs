//! The park backend's table, driven directly (so these run in every build, not only under
//! `--cfg rcu_force_park`). `SLOTS` is 8 here: a dozen waiters fill the table and some poll.
//!
//! A lost wake-up shows as a waiter that never returns: waiters wait without a timeout, and
//! each test's watchdog (60 s, far beyond any plausible slowness) means "hung". No test
//! asserts timing.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{occupancy, reset_after_fork, wait, wake_all, SLOTS};

const HUNG: Duration = Duration::from_secs(60);

/// Spins (yielding) until `done()`, panicking with `what` after `HUNG`.
fn await_or_hang(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HUNG, "hung: {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// Rounds of "bump the word, wake everyone, wait until every waiter has seen the bump", with
/// `waiters` threads that wait without a timeout. The threads are detached rather than
/// scoped, so that a hung waiter fails the test instead of hanging it.
fn rounds(waiters: usize, rounds: u32) {
    struct Shared {
        word: AtomicU32,
        seen: AtomicUsize,
    }
    let shared = Arc::new(Shared { word: AtomicU32::new(0), seen: AtomicUsize::new(0) });
    let handles: Vec<_> = (0..waiters)
        .map(|_| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut last = 0;
                while last < rounds {
                    // SeqCst: pairs with the main thread's store (a plain handshake).
                    let now = shared.word.load(Ordering::SeqCst);
                    if now == last {
                        wait(&shared.word, last, None);
                        continue;
                    }
                    last = now;
                    // SeqCst: the main thread counts the acknowledgements.
                    shared.seen.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for round in 1..=rounds {
        // SeqCst: the change comes before the wake (the protocol's N0).
        shared.word.store(round, Ordering::SeqCst);
        wake_all(&shared.word);
        let want = waiters * round as usize;
        // SeqCst: pairs with the waiters' increments.
        await_or_hang("a waiter missed a wake-up", || shared.seen.load(Ordering::SeqCst) == want);
    }
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn waiters_within_the_table_miss_no_wake_up() {
    rounds(SLOTS / 2, 300);
}

#[test]
fn waiters_beyond_the_table_poll_and_miss_no_wake_up() {
    rounds(3 * SLOTS, 100);
}

#[test]
fn a_timed_out_waiter_returns_and_frees_its_slot() {
    let word = AtomicU32::new(7);
    let start = Instant::now();
    wait(&word, 7, Some(Duration::from_millis(5)));
    assert!(start.elapsed() >= Duration::from_millis(5), "returned before the timeout");
    // A huge timeout is no timeout; the word differs, so this returns at once.
    wait(&word, 8, Some(Duration::MAX));
    // Zero: returns at once.
    wait(&word, 7, Some(Duration::ZERO));
}

/// Waiters that come and go with short timeouts (so they leave while notifiers scan), woken
/// by several notifiers at once on the same word and on others; then a final bump must reach
/// every waiter still sleeping without a timeout.
#[test]
fn concurrent_notifiers_and_leaving_waiters() {
    const CHURN: usize = 2 * SLOTS;
    let word = Arc::new(AtomicU32::new(0));
    let other = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..CHURN {
        let (word, other, stop) = (Arc::clone(&word), Arc::clone(&other), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            let mut n = 0u64;
            // Relaxed: only ends the loop.
            while !stop.load(Ordering::Relaxed) {
                let on = if i % 3 == 0 { &other } else { &word };
                // SeqCst: the key, as an event count's.
                let key = on.load(Ordering::SeqCst);
                wait(on, key, Some(Duration::from_micros(50 + (n % 7) * 100)));
                n += 1;
            }
        }));
    }
    for _ in 0..3 {
        let (word, other, stop) = (Arc::clone(&word), Arc::clone(&other), Arc::clone(&stop));
        threads.push(thread::spawn(move || {
            // Relaxed: only ends the loop.
            while !stop.load(Ordering::Relaxed) {
                // SeqCst: the change before the wake.
                word.fetch_add(1, Ordering::SeqCst);
                wake_all(&word);
                wake_all(&other); // a wake with no change: must be harmless
                thread::yield_now();
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    // Now the sleepers without a timeout, while the churn goes on.
    let final_word = Arc::new(AtomicU32::new(0));
    let sleepers: Vec<_> = (0..SLOTS / 2)
        .map(|_| {
            let final_word = Arc::clone(&final_word);
            thread::spawn(move || {
                // SeqCst: pairs with the store below.
                while final_word.load(Ordering::SeqCst) == 0 {
                    wait(&final_word, 0, None);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    // SeqCst: the change before the wake.
    final_word.store(1, Ordering::SeqCst);
    wake_all(&final_word);
    await_or_hang("a sleeper missed the final wake-up", || {
        sleepers.iter().all(|h| h.is_finished())
    });
    // Relaxed: only ends the loops.
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

/// A forked child inherits the parent's sleepers' slots; after `reset_after_fork` the table
/// is empty, and waiting and waking work in the child.
#[test]
fn a_forked_child_starts_with_an_empty_table() {
    let word = Arc::new(AtomicU32::new(0));
    let sleepers: Vec<_> = (0..SLOTS / 2)
        .map(|_| {
            let word = Arc::clone(&word);
            thread::spawn(move || {
                // SeqCst: pairs with the store below.
                while word.load(Ordering::SeqCst) == 0 {
                    wait(&word, 0, None);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(50)); // most of them are asleep in the table by now
                                              // SAFETY: the child calls only what it needs below and ends with `_exit`; it allocates
                                              // and starts threads, which glibc supports in the child of a threaded parent.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: (1) the child has this one thread, which is not waiting.
        unsafe { reset_after_fork() };
        let code = if occupancy() != (0, 0) {
            1
        } else {
            // A full table's worth of waiters, woken once: none may be missed. Started with
            // `pthread_create` (`raw_thread`): std's spawn could block on a lock of std's that
            // a thread of the parent held at the fork.
            static CHILD_WORD: AtomicU32 = AtomicU32::new(0);
            static DONE: AtomicUsize = AtomicUsize::new(0);
            let waiters: Vec<_> = (0..SLOTS)
                .map(|_| {
                    crate::raw_thread::spawn("park-child", || {
                        // SeqCst: pairs with the store below.
                        while CHILD_WORD.load(Ordering::SeqCst) == 0 {
                            wait(&CHILD_WORD, 0, None);
                        }
                        // SeqCst: counted by the child's main thread.
                        DONE.fetch_add(1, Ordering::SeqCst);
                    })
                    .expect("pthread_create in the child")
                })
                .collect();
            thread::sleep(Duration::from_millis(20));
            // SeqCst: the change before the wake.
            CHILD_WORD.store(1, Ordering::SeqCst);
            wake_all(&CHILD_WORD);
            let start = Instant::now();
            // SeqCst: pairs with the waiters' increments.
            while DONE.load(Ordering::SeqCst) < SLOTS && start.elapsed() < HUNG {
                thread::sleep(Duration::from_millis(1));
            }
            // SeqCst: as above.
            if DONE.load(Ordering::SeqCst) == SLOTS {
                waiters.into_iter().for_each(crate::raw_thread::RawThread::join);
                0
            } else {
                2
            }
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let start = Instant::now();
    loop {
        // SAFETY: `pid` is our child; `status` is writable.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        assert!(start.elapsed() < HUNG + Duration::from_secs(5), "hung: the forked child");
        thread::sleep(Duration::from_millis(1));
    }
    assert!(libc::WIFEXITED(status), "the child died: status {status}");
    let code = libc::WEXITSTATUS(status);
    assert_eq!(code, 0, "the child's table was not empty (1) or its waiters hung (2)");
    // SeqCst: the change before the wake.
    word.store(1, Ordering::SeqCst);
    wake_all(&word);
    await_or_hang("a parent sleeper missed the wake-up", || {
        sleepers.iter().all(|h| h.is_finished())
    });
}
