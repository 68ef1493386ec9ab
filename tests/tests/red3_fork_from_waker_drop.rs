//! (Refuted: this program passed when written; kept as a regression test.)
//! Red team, round 3 (`AsyncWaiters::wake_ready`'s `pass_voided`): a fork from the *drop* of
//! an async waker, on the domain's worker, in the middle of a pass, with nodes still to walk
//! behind the dropped one.
//!
//! Suspicion: `pass_voided` is checked after the contained drop of the list's reference; if
//! the check were missing or the list rearranged wrongly, the child's pass would walk `next`
//! (unlinked and leaked there by `keep_after_fork`) or the parent's pass would stop too and
//! lose the wakes of the nodes behind it.
//!
//! Mechanism: future F1 is polled with a waker whose last reference's drop forks, then
//! dropped (cancelled): the list holds the last reference. Futures F2 and F3 (other wakers)
//! wait behind a reader, F3 in front of F1's node and F2 behind it; once the reader leaves,
//! the worker's pass wakes F3, unlinks F1's node and drops the waker, which forks. In the child (the worker's thread) two new threads queue
//! callbacks and run barriers, under a watchdog; in the parent, F2 and F3 must still be
//! woken once the reader leaves.
//!
//! DESIGN §5.1: a waker's drop never kills or wedges the worker, no wake is lost; §5: every
//! API works in the fork child.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{fork_with_test_thread, reap, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;
use rcu_tests::wakers::FlagWaker;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static CHILD: AtomicI32 = AtomicI32::new(0);
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
    let ran = RAN.load(Ordering::SeqCst);
    i32::from(ran != 10)
}

struct ForkOnDrop;

impl Wake for ForkOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for ForkOnDrop {
    fn drop(&mut self) {
        // SAFETY: the child only spawns threads that use rcu-core, allocation and raw
        // writes, then `_exit`s; in the child this thread is the domain's worker, inside
        // `wake_ready`, and returns to it.
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
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_from_a_wakers_drop_mid_pass_loses_nothing() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red3-wkdrop")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx);
    }
    let reader = HeldGracePeriods::spawn(d);

    let f2_flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let f3_flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let w2 = Waker::from(f2_flag.clone());
    let w3 = Waker::from(f3_flag.clone());
    // F2 first (deepest in the list), then F1, then F3 in front: the pass walks F3, F1, F2.
    let mut f2 = Box::pin(d.synchronize_rcu_async());
    assert!(f2.as_mut().poll(&mut Context::from_waker(&w2)).is_pending());
    {
        let w1 = Waker::from(Arc::new(ForkOnDrop));
        let mut f1 = Box::pin(d.synchronize_rcu_async());
        assert!(f1.as_mut().poll(&mut Context::from_waker(&w1)).is_pending());
        drop(w1);
        drop(f1); // cancelled: the list holds the waker's last reference
    }
    let mut f3 = Box::pin(d.synchronize_rcu_async());
    assert!(f3.as_mut().poll(&mut Context::from_waker(&w3)).is_pending());

    // The worker leads the grace period the reader holds; once it completes, one pass
    // wakes F3, drops F1's waker (which forks) and wakes F2.
    reader.release();
    let start = Instant::now();
    while CHILD.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the waker was never dropped");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The parent's pass went on: F2 and F3 are woken once their grace period completes.
    let start = Instant::now();
    while !(f2_flag.0.load(Ordering::SeqCst) && f3_flag.0.load(Ordering::SeqCst)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "parent: a wake was lost after the fork (F2 woken: {}, F3 woken: {})",
            f2_flag.0.load(Ordering::SeqCst),
            f3_flag.0.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(f2.as_mut().poll(&mut Context::from_waker(&w2)).is_ready());
    assert!(f3.as_mut().poll(&mut Context::from_waker(&w3)).is_ready());

    let end = reap(CHILD.load(Ordering::SeqCst), Duration::from_secs(40));
    assert_ne!(end, ChildEnd::Hung, "child hung past its own watchdog");
    let ctx = Sleepable::enter();
    d.call_rcu_fn(&ctx, |_| {});
    d.rcu_barrier(&ctx);
    if let ChildEnd::Died(status) = end {
        panic!("the child died of signal {}", libc::WTERMSIG(status));
    }
    assert_eq!(end, ChildEnd::Exited(0), "the child's barriers failed (see its message)");
}
