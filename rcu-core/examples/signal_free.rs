//! `kvfree_rcu` from a signal handler. A `SIGUSR1` handler has no caller to receive a token
//! from, so it assumes an `Atomic` one (`unsafe { Atomic::assume() }`) and retires
//! pre-allocated objects with `kvfree_rcu`, which under `Atomic` never allocates, never
//! blocks and takes no lock: it is async-signal-safe and reentrant. Meanwhile the thread the
//! signals interrupt is itself reading and queueing frees. Afterwards `rcu_barrier`, and
//! every object has been freed exactly once.
//!
//! Two things make the handler's calls cheap and safe:
//! - the thread registers with the domain first (`Domain::register_current_thread`), because
//!   registering allocates, which a handler may not do (an unregistered thread's `Atomic`
//!   calls still work, through the objects' embedded heads, counted as `Unregistered`);
//! - the handler only touches atomics, the pre-allocated pool and the RCU `Atomic` path.
//!
//! Run: `cargo run --release -p rcu-core --example signal_free`

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{FallbackReason, Policy};

/// Objects the handler may retire, allocated up front (a handler must not allocate).
const OBJECTS: usize = 5_000;
/// Objects the interrupted thread retires itself meanwhile.
const OWN_OBJECTS: usize = 200_000;

/// A retired object: records its own drop, so double frees and leaks are caught.
struct Tracked {
    id: usize,
    payload: [u64; 8],
}

/// How often each object (handler pool first, then the main thread's own) was dropped.
static DROPS: [AtomicU8; OBJECTS + OWN_OBJECTS] =
    [const { AtomicU8::new(0) }; OBJECTS + OWN_OBJECTS];

impl Drop for Tracked {
    fn drop(&mut self) {
        assert_eq!(self.payload[7], self.id as u64, "object {} was corrupted", self.id);
        DROPS[self.id].fetch_add(1, Ordering::Relaxed);
    }
}

fn tracked(id: usize) -> Box<Rcu<Tracked>> {
    let mut payload = [0u64; 8];
    payload[7] = id as u64;
    Rcu::boxed(Tracked { id, payload })
}

/// The handler's pool: taken one by one with `swap`, so each object is retired at most once.
static POOL: [AtomicPtr<Rcu<Tracked>>; OBJECTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; OBJECTS];
static NEXT: AtomicUsize = AtomicUsize::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static RETIRED_IN_HANDLER: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigusr1(_signal: libc::c_int) {
    // The futex wake inside `kvfree_rcu` may set errno: save it for the interrupted code.
    // SAFETY: `__errno_location` returns this thread's errno.
    let saved_errno = unsafe { *libc::__errno_location() };
    // Relaxed (all counters here): the main thread reads them after joining the sender and
    // `rcu_barrier`, which order everything.
    HANDLED.fetch_add(1, Ordering::Relaxed);
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    if i < OBJECTS {
        // Acquire: pairs with the Release store that filled the slot.
        let p = POOL[i].swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: pool slots hold pointers from `Box::into_raw`, and the swap made this
            // one ours alone.
            let obj = unsafe { Box::from_raw(p) };
            // SAFETY: (1) `ctx` is dropped below, before the handler returns; (2) no other
            // scope is opened on this thread while it lives.
            let ctx = unsafe { Atomic::assume() };
            // A read section inside the handler works too (it nests in whatever the
            // interrupted code was doing).
            let guard = read_lock_in_handler(&ctx);
            drop(guard);
            kvfree_rcu(&ctx, obj);
            drop(ctx);
            RETIRED_IN_HANDLER.fetch_add(1, Ordering::Relaxed);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// A read section entered with the handler's shared `Atomic` token.
fn read_lock_in_handler<'a>(ctx: &'a Atomic<'_>) -> ReadGuard<'a> {
    Domain::global().read_lock_nested(ctx)
}

fn set_handler(handler: libc::sighandler_t) {
    // SAFETY: a zeroed `sigaction` is valid (empty mask, no flags); the fields are then set.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid `sigset_t` to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: a valid signal number and `sigaction`; the old action is not wanted.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &action, ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction failed");
}

fn main() {
    println!(
        "signal_free: a SIGUSR1 handler retires {OBJECTS} pre-allocated objects with kvfree_rcu \
         under Atomic::assume(), interrupting a thread that queues {OWN_OBJECTS} frees itself"
    );
    // Before any signal: allocate the handler's objects and register this thread.
    for (i, slot) in POOL.iter().enumerate() {
        // Release: publishes the object to the handler's Acquire swap.
        slot.store(Box::into_raw(tracked(i)), Ordering::Release);
    }
    let mut ctx = Sleepable::enter();
    Domain::global().register_current_thread(&ctx);
    let before = Domain::global().alloc_stats();
    let handler = on_sigusr1 as extern "C" fn(libc::c_int);
    set_handler(handler as libc::sighandler_t);

    let done = AtomicBool::new(false);
    // SAFETY: `pthread_self` has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let start = Instant::now();
    let sent = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut sent = 0u64;
            let deadline = Instant::now() + Duration::from_secs(10);
            while NEXT.load(Ordering::Relaxed) < OBJECTS && Instant::now() < deadline {
                // SAFETY: `target` is the main thread, alive until this scope ends.
                let rc = unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                assert_eq!(rc, 0, "pthread_kill failed");
                sent += 1;
                // Signals sent while one is pending merge; give the handler a moment.
                std::thread::sleep(Duration::from_micros(20));
            }
            done.store(true, Ordering::Relaxed);
            sent
        });

        // The interrupted thread: read sections and its own frees, with its Sleepable token
        // and with an Atomic scope, so the handler lands in the middle of both.
        let mut own = 0;
        while !done.load(Ordering::Relaxed) {
            let guard = read_lock(&mut ctx);
            std::hint::black_box(&guard);
            drop(guard);
            if own < OWN_OBJECTS {
                kvfree_rcu(&ctx, tracked(OBJECTS + own));
                let atomic = ctx.atomic();
                kvfree_rcu(&atomic, tracked(OBJECTS + own + 1));
                drop(atomic);
                own += 2;
            }
        }
        let sent = sender.join().expect("sender panicked");
        // Frees the objects the loop did not get to, so every id is accounted for.
        while own < OWN_OBJECTS {
            kvfree_rcu(&ctx, tracked(OBJECTS + own));
            own += 1;
        }
        sent
    });
    // No more signals are sent; ignore any still pending rather than die of the default
    // action.
    set_handler(libc::SIG_IGN);
    let elapsed = start.elapsed();

    // Everything queued before this point (by the handler too) has run once it returns.
    rcu_barrier(&ctx);

    // Objects the handler never reached are still in the pool: free them here.
    let mut unused = 0;
    for slot in &POOL {
        let p = slot.swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: from `Box::into_raw`, never retired (the handler would have swapped it
            // out first).
            drop(unsafe { Box::from_raw(p) });
            unused += 1;
        }
    }

    let handled = HANDLED.load(Ordering::Relaxed);
    let retired = RETIRED_IN_HANDLER.load(Ordering::Relaxed);
    println!(
        "{sent} signals sent, {handled} handled in {:.2}s; {retired} objects retired from the \
         handler, {unused} left unused",
        elapsed.as_secs_f64()
    );
    let wrong: Vec<_> = DROPS
        .iter()
        .enumerate()
        .filter(|(_, d)| d.load(Ordering::Relaxed) != 1)
        .map(|(i, d)| (i, d.load(Ordering::Relaxed)))
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "objects not freed exactly once: (id, drops) {wrong:?}");
    println!("all {} objects freed exactly once after rcu_barrier", DROPS.len());

    let after = Domain::global().alloc_stats();
    let fallbacks = |reason| {
        after.fallbacks_of(Policy::NoWait, reason) - before.fallbacks_of(Policy::NoWait, reason)
    };
    println!(
        "Atomic-path fallbacks to the embedded head: {} reentrant (the handler interrupted this \
         thread's own queueing), {} no block, {} over budget, {} unregistered",
        fallbacks(FallbackReason::Reentrant),
        fallbacks(FallbackReason::NoBlock),
        fallbacks(FallbackReason::OverBudget),
        fallbacks(FallbackReason::Unregistered)
    );
    assert_eq!(fallbacks(FallbackReason::Unregistered), 0, "the thread registered first");
    println!("SUCCESS");
}
