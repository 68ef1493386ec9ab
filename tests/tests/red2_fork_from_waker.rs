//! Red team, round 2 (fork repair + async waiters; fixed: `keep_after_fork` voids the pass
//! in progress, which stops): a fork from inside an async waker, on a domain's worker, in
//! the middle of `AsyncWaiters::wake_ready`'s pass.
//!
//! design.md §8.6 lists "a waker on a worker" among the forks the child handler knows
//! ("the forking thread goes on in the child with what it holds"). But the child handler
//! runs `AsyncWaiters::keep_after_fork(me)`, which unlinks every node not registered by the
//! forking thread, and the forking thread here is the worker, in the middle of a pass whose
//! `prev`/`node`/`next` were read before the fork. When the waker returns in the child, the
//! pass unlinks the node it just woke (`unlink(prev, node, next)`): the CAS of `head` from
//! `node` fails (keep_after_fork already took it off), and the walk "from the pushes in
//! front of it" starts at a null head and dereferences it.
//!
//! Expected (DESIGN §5.1: user code never kills or wedges a runtime thread; §5: works after
//! fork in the child): the child's worker goes on, and a barrier in the child returns.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{fork_with_test_thread, raw_eprint, reap, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static CHILD: AtomicI32 = AtomicI32::new(0);
static FORKED: AtomicBool = AtomicBool::new(false);
static RAN: AtomicU64 = AtomicU64::new(0);

fn child_test() -> i32 {
    let d = DOMAIN.get().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let ctx = Sleepable::enter();
    for _ in 0..10 {
        d.call_rcu_fn(&ctx, |_| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        d.rcu_barrier(&ctx);
    }
    let ran = RAN.load(Ordering::SeqCst);
    if ran != 10 {
        raw_eprint(&format!("child: 10 barriers returned, {ran} callbacks ran\n"));
    }
    i32::from(ran != 10)
}

struct ForkingWaker;

impl Wake for ForkingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if FORKED.swap(true, Ordering::SeqCst) {
            return;
        }
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
fn a_fork_from_a_waker_leaves_the_childs_worker_serving() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("fk-wk")));
    let ctx = Sleepable::enter();
    d.rcu_barrier(&ctx); // the worker runs

    // A reader holds the grace period while the main thread registers its waker, so the
    // first poll is Pending.
    let reader = HeldGracePeriods::spawn(d);
    let waker = Waker::from(Arc::new(ForkingWaker));
    let mut fut = Box::pin(d.synchronize_rcu_async());
    let polled = fut.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(polled.is_pending(), "the reader holds the grace period");
    reader.release();

    let start = Instant::now();
    while CHILD.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the waker never ran");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
    let end = reap(CHILD.load(Ordering::SeqCst), Duration::from_secs(40));
    assert_ne!(end, ChildEnd::Hung, "child hung past its own watchdog");
    // The parent's domain still works.
    d.call_rcu_fn(&ctx, |_| {});
    d.rcu_barrier(&ctx);
    if let ChildEnd::Died(status) = end {
        panic!(
            "the child died of signal {} (status {status:#x}): its worker crashed after the \
             waker returned",
            libc::WTERMSIG(status)
        );
    }
    assert_eq!(end, ChildEnd::Exited(0), "the child's barriers failed (see its message)");
}
