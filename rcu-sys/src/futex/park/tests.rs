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
    // Most of them are asleep in the table by now.
    thread::sleep(Duration::from_millis(50));
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

// ---------------------------------------------------------------------------------------
// Red team, round 7: the park backend.
// ---------------------------------------------------------------------------------------

/// Forks; the child runs `body` (its value is the exit status; a panic exits with 101) and
/// `_exit`s. Returns how the child ended: `Some(status)` from `waitpid`, `None` if it outlived
/// `HUNG` (then it is killed).
fn red7_in_child(body: fn() -> i32) -> Option<i32> {
    // SAFETY: the child runs `body`, which only uses the park table, `raw_thread` and atomics
    // (no lock another thread of this test binary may hold), and ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(body).unwrap_or(101);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` is writable.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Some(status);
        }
        if start.elapsed() > HUNG {
            // SAFETY: kill and reap our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Red team, round 7: a signal handler that forks while this thread claims a slot. The
/// module supports a fork from a handler that interrupted this thread's wait ("It keeps the
/// forking thread's own slot"). At 541e74d, `claim` stored `owner` only after the CAS and
/// the handle write: a handler landing between them (the slot's previous user being another
/// thread, so `owner` still held that thread's mark) made the child's reset take the slot
/// for a dead parent thread's, store `FREE` and overwrite the handle with `None`; the
/// interrupted claim then stored its address into a slot without a handle, `wake_all`
/// unparked nobody and an untimed waiter slept for ever (and the slot, reading `FREE`, could
/// get a second owner). Now the claimed word names its owner from the CAS on.
///
/// A signal cannot be aimed at one instruction, so the test replays the interleaving in a
/// forked (hence single-threaded) child: `claim_slot` with the child's reset run between
/// every two of its steps (as each landing point of the handler's fork), then the wait
/// (`sleep`), while a second thread changes the word and wakes it.
#[test]
fn red7_fork_inside_claim_loses_the_wake_up() {
    fn child() -> i32 {
        // SAFETY: this forked child has one thread, which is not waiting.
        unsafe { reset_after_fork() };
        static WORD: AtomicU32 = AtomicU32::new(0);
        // Another thread uses a slot first, so its `owner` is that thread's mark, as when
        // the slot's previous user was another thread of the parent.
        crate::raw_thread::spawn("red7-prev", || wait(&WORD, 0, Some(Duration::from_millis(1))))
            .expect("pthread_create")
            .join();
        // The slot it used (not necessarily slot 0: the reset keeps the slots a parent's
        // notifier was reading, and the parent runs other tests meanwhile).
        let me_mark = super::handle::mark();
        let Some(i) = (0..super::SLOTS).find(|&i| {
            let slot = &super::TABLE.slots[i];
            let owner = slot.owner.load(Ordering::SeqCst);
            slot.word.load(Ordering::SeqCst) == super::FREE && owner != 0 && owner != me_mark
        }) else {
            return 10; // set-up failed
        };
        let slot = &super::TABLE.slots[i];
        let mut me = super::handle::current();
        let claimed = super::claim_slot(i, &mut me, || {
            // The handler forks here; in the child, rcu-core's fork handler runs this.
            // SAFETY: single thread; "inside wait, interrupted by the handler that forked",
            // which the park module's contract allows.
            unsafe { reset_after_fork() };
            // Still ours: not freed for another thread to claim.
            assert_eq!(
                slot.word.load(Ordering::SeqCst),
                super::claimed_by(super::handle::mark()),
                "the reset freed the forking thread's slot"
            );
        });
        let Some(slot) = claimed else { return 11 };
        let waker = crate::raw_thread::spawn("red7-waker", || {
            thread::sleep(Duration::from_millis(20));
            WORD.store(1, Ordering::SeqCst);
            wake_all(&WORD);
        })
        .expect("pthread_create");
        let addr = WORD.as_ptr() as usize;
        super::sleep(slot, &WORD, addr, 0, None);
        super::leave(slot);
        waker.join();
        0
    }
    match red7_in_child(child) {
        None => panic!(
            "hung: the waiter never woke although the word changed and wake_all ran (its slot \
             lost its handle to the child's reset_after_fork)"
        ),
        Some(status) => {
            assert!(libc::WIFEXITED(status), "the child died: status {status}");
            assert_eq!(libc::WEXITSTATUS(status), 0, "child failed (10/11: set-up)");
        }
    }
}

/// Suspicion (did not hold): the event count's `waiters` skip on top of the park table (under
/// `--cfg rcu_force_park`; the futex otherwise), with more untimed waiters than slots (some
/// poll), rounds of notifications: none is lost.
#[test]
fn red7_event_count_over_park_many_untimed_waiters() {
    use crate::EventCount;
    struct Shared {
        events: EventCount,
        round: AtomicU32,
        seen: AtomicUsize,
    }
    const WAITERS: usize = 2 * SLOTS;
    const ROUNDS: u32 = 100;
    let shared = Arc::new(Shared {
        events: EventCount::new(),
        round: AtomicU32::new(0),
        seen: AtomicUsize::new(0),
    });
    let handles: Vec<_> = (0..WAITERS)
        .map(|_| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut last = 0;
                while last < ROUNDS {
                    let key = shared.events.key();
                    // SeqCst: the condition, made true before the notification.
                    let now = shared.round.load(Ordering::SeqCst);
                    if now == last {
                        shared.events.wait(key, None);
                        continue;
                    }
                    last = now;
                    // SeqCst: counted by the main thread.
                    shared.seen.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for round in 1..=ROUNDS {
        // SeqCst: the condition before the notification.
        shared.round.store(round, Ordering::SeqCst);
        shared.events.notify_all();
        let want = WAITERS * round as usize;
        // SeqCst: pairs with the waiters' increments.
        await_or_hang("an event-count waiter missed a notification", || {
            shared.seen.load(Ordering::SeqCst) == want
        });
    }
    for h in handles {
        h.join().unwrap();
    }
}

static RED7_SIG_WORD: AtomicU32 = AtomicU32::new(0);
static RED7_SIG_RUNS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn red7_on_signal(_: libc::c_int) {
    // SAFETY: this thread's errno, saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    // SeqCst: the change before the wake (N0).
    RED7_SIG_WORD.fetch_add(1, Ordering::SeqCst);
    wake_all(&RED7_SIG_WORD);
    RED7_SIG_RUNS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Suspicion (did not hold): a signal handler that calls `wake_all` on the word its thread is
/// waiting on, landing anywhere in `wait` (`claim`, `sleep`, `leave`'s spin while another
/// thread's notifier holds `busy`), deadlocks or corrupts the slot. The thread waits in a
/// loop (short timeouts) on the word while another thread notifies it and a third signals
/// it; then an untimed wait must still be woken.
#[test]
fn red7_signal_handler_wakes_its_own_threads_word() {
    // SAFETY: installs a handler that touches atomics and the park table only.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = red7_on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut()), 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            let mut n = 0u64;
            // Relaxed: only ends the loop.
            while !stop.load(Ordering::Relaxed) {
                let key = RED7_SIG_WORD.load(Ordering::SeqCst);
                wait(&RED7_SIG_WORD, key, Some(Duration::from_micros(20 + n % 200)));
                n += 1;
            }
            n
        })
    };
    let target = rx.recv().unwrap() as libc::pthread_t;
    let notifier = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            // Relaxed: only ends the loop.
            while !stop.load(Ordering::Relaxed) {
                RED7_SIG_WORD.fetch_add(1, Ordering::SeqCst);
                wake_all(&RED7_SIG_WORD);
                thread::yield_now();
            }
        })
    };
    let start = Instant::now();
    while RED7_SIG_RUNS.load(Ordering::SeqCst) < 20_000 && start.elapsed() < Duration::from_secs(5)
    {
        // SAFETY: `target` is alive until joined below.
        unsafe { libc::pthread_kill(target, libc::SIGURG) };
        thread::yield_now();
    }
    // Relaxed: only ends the loops.
    stop.store(true, Ordering::Relaxed);
    notifier.join().unwrap();
    await_or_hang("the signalled waiter is stuck", || waiter.is_finished());
    let loops = waiter.join().unwrap();
    assert!(loops > 0);
    assert!(RED7_SIG_RUNS.load(Ordering::SeqCst) > 0, "no handler ran");
    // The table is still sound: an untimed waiter is woken.
    let final_word = Arc::new(AtomicU32::new(0));
    let sleeper = {
        let final_word = Arc::clone(&final_word);
        thread::spawn(move || {
            while final_word.load(Ordering::SeqCst) == 0 {
                wait(&final_word, 0, None);
            }
        })
    };
    thread::sleep(Duration::from_millis(20));
    final_word.store(1, Ordering::SeqCst);
    wake_all(&final_word);
    await_or_hang("an untimed waiter missed its wake-up after the storm", || sleeper.is_finished());
}
