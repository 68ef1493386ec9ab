//! DESIGN §3/§4: the `Atomic` path is async-signal-safe and reentrant. A `SIGUSR1` handler
//! retires pre-allocated objects with `kvfree_rcu` and `call_rcu` under
//! `unsafe { Atomic::assume() }` (and enters a nested read section), while the thread it
//! interrupts is itself queueing with `Sleepable` and `Atomic` tokens. Another thread sends
//! the signal thousands of times. Afterwards `rcu_barrier`, and every object, the handler's
//! and the loop's, was freed exactly once.
//!
//! How often the handler runs depends on how often the scheduler lets the interrupted thread
//! run: the storm aims at [`TARGET_RUNS`] for a few seconds, and on a loaded machine goes on
//! until the handler has run at least [`MIN_RUNS`] times, so that the floor the test asserts
//! is reached by waiting, not by luck. Only a handler that cannot run that often within
//! [`STORM_LIMIT`] fails it.
//!
//! The handler touches only atomics, a static array of pre-allocated objects and the RCU
//! `Atomic` path: no allocation, no lock. A handler that interrupts the thread's own staging
//! bracket takes the embedded-head path, counted as `FallbackReason::Reentrant`.
#![cfg(not(loom))]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, Once};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FallbackReason, Policy};
use rcu_tests::drop_log::{DropLog, Tracked};

/// Objects the handler may retire, one per run.
const POOL_SIZE: usize = 20_000;
/// Handler runs each test aims for, within `STORM_AIM`.
const TARGET_RUNS: u64 = 3_000;
/// How long the storm aims at `TARGET_RUNS`.
const STORM_AIM: Duration = Duration::from_secs(4);
/// Handler runs each test needs: past `STORM_AIM`, the storm goes on until it has them.
const MIN_RUNS: u64 = 300;
/// Upper bound on the storm, a watchdog meaning hung. A quiet machine needs well under a
/// second for `MIN_RUNS`, a heavily loaded one a few seconds: a handler that has not run
/// `MIN_RUNS` times by then is not being run (a blocked signal, a handler stuck in the
/// runtime).
const STORM_LIMIT: Duration = Duration::from_secs(60);

static POOL: [AtomicPtr<Rcu<Tracked>>; POOL_SIZE] =
    [const { AtomicPtr::new(ptr::null_mut()) }; POOL_SIZE];
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// The domain the handler uses; null: the handler does nothing.
static DOMAIN: AtomicPtr<Domain> = AtomicPtr::new(ptr::null_mut());
static RUNS: AtomicU64 = AtomicU64::new(0);
static RETIRED: AtomicU64 = AtomicU64::new(0);

/// One signal test at a time: the handler and its statics are shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn drop_it(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

extern "C" fn on_sigusr1(_signal: libc::c_int) {
    // Saved and restored: the interrupted code must not see the handler's syscalls change it.
    let errno = rcu_tests::errno::get();
    // SeqCst (all statics here): the test reads them after joining the sender; simplicity.
    let domain = DOMAIN.load(Ordering::SeqCst);
    if !domain.is_null() {
        RUNS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the test clears DOMAIN before the domain goes away, and this handler runs
        // only on the test's thread (pthread_kill), so the domain outlives this use.
        let domain = unsafe { &*domain };
        handle(domain);
    }
    rcu_tests::errno::set(errno);
}

fn handle(domain: &Domain) {
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    if i >= POOL_SIZE {
        return;
    }
    let p = POOL[i].swap(ptr::null_mut(), Ordering::SeqCst);
    if p.is_null() {
        return;
    }
    // SAFETY: pool entries come from `Box::into_raw` and are taken exactly once (swap).
    let obj = unsafe { Box::from_raw(p) };
    // SAFETY: (1) dropped at the end of this function, before the handler returns; (2) the
    // only scope opened after it (the nested read section) is dropped before it.
    let ctx = unsafe { Atomic::assume() };
    {
        // A read section nested inside whatever the interrupted code was doing.
        let guard = domain.read_lock_nested(&ctx);
        // `poll` may run a grace period forward (`try_advance`), here possibly over the
        // interrupted thread's own leadership or read section: it must neither wait nor
        // complete a grace period this section holds up.
        let cookie = domain.start_poll(guard.ctx());
        assert!(!domain.poll(cookie), "a grace period completed inside the section it needs");
    }
    if i % 2 == 0 {
        domain.kvfree_rcu(&ctx, obj);
    } else {
        domain.call_rcu(&ctx, obj, drop_it);
    }
    RETIRED.fetch_add(1, Ordering::SeqCst);
    drop(ctx);
}

fn install_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        rcu_tests::install_signal_handler(libc::SIGUSR1, on_sigusr1);
    });
}

/// Fills the handler's pool with fresh tracked objects.
fn fill_pool(log: &'static DropLog) {
    for slot in &POOL {
        let old = slot.swap(Box::into_raw(Rcu::boxed(log.track())), Ordering::SeqCst);
        assert!(old.is_null());
    }
    NEXT.store(0, Ordering::SeqCst);
}

/// Takes back (and drops) the objects the handler did not use.
fn drain_pool() -> usize {
    let mut unused = 0;
    for slot in &POOL {
        let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: from `Box::into_raw` in `fill_pool`, never retired (swapped out once).
            drop(unsafe { Box::from_raw(p) });
            unused += 1;
        }
    }
    unused
}

/// Runs the signal storm against `domain` and checks the outcome.
fn storm(domain: &Domain) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_handler();
    let handler_log = DropLog::new(POOL_SIZE);
    const LOOP_MAX: usize = 400_000;
    let loop_log = DropLog::new(LOOP_MAX);
    fill_pool(handler_log);
    let mut ctx = Sleepable::enter();
    // The handler's Atomic calls find the thread registered (registration allocates).
    domain.register_current_thread(&ctx);
    let stats_before = domain.alloc_stats();
    let runs_before = RUNS.load(Ordering::SeqCst);
    let retired_before = RETIRED.load(Ordering::SeqCst);
    DOMAIN.store(domain as *const Domain as *mut Domain, Ordering::SeqCst);

    let started = Instant::now();
    let sender_done = AtomicBool::new(false);
    let looped = std::thread::scope(|s| {
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let (ready_tx, ready) = mpsc::channel();
        let done = &sender_done;
        let sender = s.spawn(move || {
            ready.recv().unwrap();
            let start = Instant::now();
            let mut sent = 0u64;
            loop {
                let runs = RUNS.load(Ordering::SeqCst) - runs_before;
                let elapsed = start.elapsed();
                if runs >= TARGET_RUNS
                    || (elapsed >= STORM_AIM && runs >= MIN_RUNS)
                    || elapsed >= STORM_LIMIT
                    || done.load(Ordering::SeqCst)
                {
                    break;
                }
                // SAFETY: `target` is the test thread, alive until this thread is joined.
                let rc = unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                assert_eq!(rc, 0);
                sent += 1;
                // Give the handler a moment to run before the next signal (a signal sent while
                // one is pending is merged with it), without giving up the CPU.
                let runs = RUNS.load(Ordering::SeqCst);
                let spin = Instant::now();
                while RUNS.load(Ordering::SeqCst) == runs
                    && spin.elapsed() < Duration::from_micros(50)
                {
                    std::hint::spin_loop();
                }
                if RUNS.load(Ordering::SeqCst) == runs {
                    // Not run yet: perhaps the target waits for this CPU.
                    std::thread::yield_now();
                }
            }
            done.store(true, Ordering::SeqCst);
            sent
        });
        ready_tx.send(()).unwrap();
        let mut looped = 0;
        while !sender_done.load(Ordering::SeqCst) {
            if looped + 4 > LOOP_MAX {
                // Enough objects: keep the thread busy (and interruptible) in read sections.
                let guard = domain.read_lock(&mut ctx);
                std::hint::black_box(&guard);
                drop(guard);
                continue;
            }
            domain.kvfree_rcu(&ctx, Rcu::boxed(loop_log.track()));
            domain.call_rcu(&ctx, Rcu::boxed(loop_log.track()), drop_it);
            let a = Rcu::boxed(loop_log.track());
            let b = Rcu::boxed(loop_log.track());
            {
                let atomic = ctx.atomic();
                domain.kvfree_rcu(&atomic, a);
                domain.call_rcu(&atomic, b, drop_it);
            }
            looped += 4;
        }
        sender_done.store(true, Ordering::SeqCst);
        let sent = sender.join().unwrap();
        (looped, sent)
    });
    // Signals still pending find DOMAIN null and do nothing.
    DOMAIN.store(ptr::null_mut(), Ordering::SeqCst);
    let elapsed = started.elapsed();
    let (looped, sent) = looped;
    let runs = RUNS.load(Ordering::SeqCst) - runs_before;
    let retired = RETIRED.load(Ordering::SeqCst) - retired_before;
    let unused = drain_pool();

    domain.rcu_barrier(&ctx);
    let stats = domain.alloc_stats();
    let reentrant = stats.fallbacks_of(Policy::NoWait, FallbackReason::Reentrant)
        - stats_before.fallbacks_of(Policy::NoWait, FallbackReason::Reentrant);
    println!(
        "signals ({}): {sent} signals sent, handler ran {runs} times ({retired} retirements) in \
         {elapsed:?}, interrupting {looped} loop retirements; Reentrant fallbacks: {reentrant}; \
         fallbacks: {:?}",
        domain.name(),
        stats.fallbacks
    );
    // Thousands when the machine is quiet; on a loaded one the storm waited for the floor.
    assert!(runs >= MIN_RUNS, "the handler ran only {runs} times in {elapsed:?}");
    assert_eq!(retired as usize + unused, POOL_SIZE);
    assert!(looped > 0);
    handler_log.assert_all_freed_once();
    loop_log.assert_all_freed_once();
    assert_eq!(loop_log.allocated(), looped);
}

#[test]
fn signal_handlers_retire_with_assumed_atomic_tokens_global_domain() {
    storm(Domain::global());
}

#[test]
fn signal_handlers_retire_with_assumed_atomic_tokens_small_blocks() {
    // 4-entry blocks, no thread cache, a tiny pool: block boundaries (and so the slow path
    // the handler may interrupt) every few calls.
    let domain = Domain::new(
        DomainConfig::new().name("signals-small").alloc(AllocConfig::new().small_blocks()),
    );
    storm(&domain);
}

/// Set while the SIGUSR2 handler should stall the thread it interrupts.
static STALL_IN_HANDLER: AtomicBool = AtomicBool::new(false);
static STALLS: AtomicU64 = AtomicU64::new(0);

extern "C" fn stall_on_sigusr2(_signal: libc::c_int) {
    // Saved and restored: see `on_sigusr1`.
    let errno = rcu_tests::errno::get();
    if STALL_IN_HANDLER.load(Ordering::SeqCst) {
        STALLS.fetch_add(1, Ordering::SeqCst);
        let pause = libc::timespec { tv_sec: 0, tv_nsec: 200_000 };
        // SAFETY: nanosleep is async-signal-safe; `pause` is a valid timespec.
        unsafe { libc::nanosleep(&pause, ptr::null_mut()) };
    }
    rcu_tests::errno::set(errno);
}

/// `rcu_barrier` must cover every item whose `kvfree_rcu` call returned before the barrier
/// was called, even while the thread that queued it is stopped at an arbitrary point (here:
/// by a signal handler that sleeps for 200 µs, as a preemption would) in a later call.
/// A producer queues on a small-block domain (a block is sealed every 4 items); another thread
/// repeatedly reads how many calls have returned, calls `rcu_barrier` and checks them all freed.
#[test]
fn rcu_barrier_covers_returned_calls_while_the_producer_is_interrupted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        rcu_tests::install_signal_handler(libc::SIGUSR2, stall_on_sigusr2);
    });
    const N: usize = 600_000;
    let domain = Domain::new(
        DomainConfig::new()
            .name("barrier-vs-signals")
            .alloc(AllocConfig::new().small_blocks())
            .batch_delay(Duration::from_secs(30)),
    );
    let log = DropLog::new(N);
    let returned = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    STALL_IN_HANDLER.store(true, Ordering::SeqCst);
    let stalls_before = STALLS.load(Ordering::SeqCst);
    let (barriers, missed) = std::thread::scope(|s| {
        let (target_tx, target_rx) = mpsc::channel();
        let (domain, returned, stop) = (&domain, &returned, &stop);
        let producer = s.spawn(move || {
            let mut ctx = Sleepable::enter();
            domain.register_current_thread(&ctx);
            // SAFETY: pthread_self has no preconditions.
            target_tx.send(unsafe { libc::pthread_self() }).unwrap();
            for i in 0..N {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let obj = Rcu::boxed(log.track());
                if i % 2 == 0 {
                    domain.kvfree_rcu(&ctx, obj);
                } else {
                    let atomic = ctx.atomic();
                    domain.kvfree_rcu(&atomic, obj);
                }
                // SeqCst: the call above returned before this count says so.
                returned.store(i + 1, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        });
        let target = target_rx.recv().unwrap();
        let sender = s.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: the producer is alive until `stop` is set (it sets it last).
                let rc = unsafe { libc::pthread_kill(target, libc::SIGUSR2) };
                assert_eq!(rc, 0);
                std::thread::sleep(Duration::from_micros(1000));
            }
        });
        let ctx = Sleepable::enter();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut barriers = 0u64;
        let mut missed = Vec::new();
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let n = returned.load(Ordering::SeqCst);
            domain.rcu_barrier(&ctx);
            barriers += 1;
            missed = (0..n).filter(|&id| !log.is_freed(id)).collect::<Vec<_>>();
            if !missed.is_empty() {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        producer.join().unwrap();
        sender.join().unwrap();
        (barriers, missed)
    });
    STALL_IN_HANDLER.store(false, Ordering::SeqCst);
    let stalls = STALLS.load(Ordering::SeqCst) - stalls_before;
    println!(
        "barrier vs signals: {barriers} barriers, {stalls} handler stalls, {} calls returned",
        returned.load(Ordering::SeqCst)
    );
    assert!(
        missed.is_empty(),
        "rcu_barrier returned while {} item(s) whose kvfree_rcu had returned before it were \
         still queued (first: {:?})",
        missed.len(),
        &missed[..missed.len().min(8)]
    );
    let ctx = Sleepable::enter();
    domain.rcu_barrier(&ctx);
    log.assert_all_freed_once();
}
