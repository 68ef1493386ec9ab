//! Red team, round 3 (fork repair of async waiters, `AsyncWaiters::keep_after_fork`, since replaced).
//!
//! Fixed: the child keeps every node; those registered before the fork (an older fork
//! epoch) are woken, once due, on a thread of their own (`wait_async`, "In a fork child").
//!
//! Suspicion: a fork child kept only the async registrations whose *registrar* (the thread
//! that polled the future when the node was pushed, `Waiter::registrar`) is the forking
//! thread. But a grace-period future is `Send`: it may be polled once on one thread, then
//! handed to another, which awaits it. If that other thread forks, the child's copy of the
//! future is held by the forking thread, its node is unlinked and leaked by
//! `keep_after_fork` (registrar != forking thread), and a re-poll with the same waker finds
//! "registered, with this waker" (`poll_target`: `w.wakes(cx.waker())`) and returns
//! `Pending` without registering again. The task waits for a wake that nobody will ever
//! deliver, although the grace period completes in the child.
//!
//! Mechanism: thread A polls `synchronize_rcu_async()` once (a reader holds the grace
//! period), with waker W, and sends the future to the main thread, which forks while the
//! reader still holds the grace period. In the child the main thread parks the task as any
//! executor does after `Pending`: it waits for W's wake (bounded), and reports whether the
//! grace period itself completed meanwhile.
//!
//! DESIGN §5 promises that every API works in a fork child (design.md §5: "a `block_on`
//! there waits for that wake"), and §5.1 that no wake/callback is lost: the child's worker
//! must wake W once the future's grace period has completed there.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;
use rcu_tests::wakers::FlagWaker;

static DOMAIN: OnceLock<Domain> = OnceLock::new();

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_future_polled_elsewhere_is_still_woken_in_the_forking_threads_child() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red3-moved")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx); // the worker runs
    }
    // A reader holds every grace period until told.
    let reader = HeldGracePeriods::spawn(d);

    // Thread A polls the future once, then hands it (and its waker) over.
    let flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let (fut, waker) = std::thread::spawn(move || {
        let mut fut = Box::pin(DOMAIN.get().unwrap().synchronize_rcu_async());
        let polled = fut.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending(), "the reader holds the grace period");
        (fut, waker)
    })
    .join()
    .unwrap();
    let cookie = fut.cookie();
    assert!(!flag.0.load(Ordering::SeqCst));

    // SAFETY: (1) the child uses rcu-core, allocation, sleeps and raw writes only; (2) it
    // uses nothing the reader thread loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(60), move || {
            let mut fut = fut;
            let d = DOMAIN.get().unwrap();
            let start = Instant::now();
            loop {
                // An executor's task: poll, and on `Pending` wait for the wake.
                if let Poll::Ready(()) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return 0;
                }
                let parked = Instant::now();
                while !flag.0.swap(false, Ordering::SeqCst) {
                    if parked.elapsed() > Duration::from_secs(20) {
                        let done = d.poll(cookie);
                        raw_eprint(&format!(
                            "child: the task was never woken in 20 s (the grace period of its \
                             future completed: {done}); polled {} ms after the fork\n",
                            start.elapsed().as_millis()
                        ));
                        return if done { 1 } else { 3 };
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    reader.release();
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "in the fork child, the future the forking thread held (first polled on another \
         thread) was never woken (1: its grace period completed, the wake was lost; 3: the \
         grace period never completed either)"
    );
}
