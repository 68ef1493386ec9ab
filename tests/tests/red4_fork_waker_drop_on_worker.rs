//! Red team, round 4 (pre-fork async waiters handed to `rcu-fork-wake`).
//!
//! Fixed: the epoch is read again after each wake; in the child, the node whose waker forked
//! leaves as a handed one, dropped by a relay.
//!
//! Suspicion: a pre-fork waker's user code still runs on the child's worker when the fork
//! comes from a waker in the middle of a pass (the worker forking). `wake_ready` reads the
//! fork epoch at each node *before* running its wake; the node whose waker forks passed that
//! check in the parent, so in the child the pass goes on with it as with any current node:
//! marks it, unlinks it and drops the list's reference on the worker. If the future has gone
//! meanwhile (dropped by its task while the wake ran: an executor's task may be cancelled at
//! any time), that reference is the last one, and the waker's drop (user code of the parent's
//! executor, which may take a lock a thread of the parent held at the fork) runs on the
//! child's worker. The module docs say a node registered before the fork is never woken on the
//! worker in a child and that its wake *and its drop* run on `rcu-fork-wake`.
//!
//! Mechanism: the worker wakes a waker that waits until the main thread has dropped the
//! future and its own copy of the waker (the node's copy is then the last), then forks. In the
//! child, the waker's `Drop` reports which thread runs it; a helper thread of the child runs a
//! barrier (served only after the worker's pass is over) and ends the child successfully.
//!
//! DESIGN §5.1: user code never wedges a runtime thread (a waker's drop that takes a lock
//! held at the fork would wedge the child's worker for good: every callback and barrier of
//! the domain); design.md §5 "In a fork child": pre-fork wakes and drops never run on the
//! worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::drop_log::wait_until;
use rcu_tests::fork::{raw_eprint, reap, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;
use rcu_tests::thread_name;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static IN_WAKE: AtomicBool = AtomicBool::new(false);
static FUTURE_GONE: AtomicBool = AtomicBool::new(false);
static FORKED: AtomicBool = AtomicBool::new(false);
static IN_CHILD: AtomicBool = AtomicBool::new(false);
static CHILD: AtomicI32 = AtomicI32::new(0);

struct ForkingWaker;

impl Drop for ForkingWaker {
    fn drop(&mut self) {
        if !IN_CHILD.load(Ordering::SeqCst) {
            return;
        }
        let name = thread_name();
        if name.starts_with("rcu-gp") {
            raw_eprint(&format!(
                "child: the pre-fork waker was dropped on the worker ('{name}'); a drop that \
                 takes a lock held at the fork wedges it\n"
            ));
            // SAFETY: ends the child.
            unsafe { libc::_exit(1) };
        }
    }
}

impl Wake for ForkingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if FORKED.swap(true, Ordering::SeqCst) {
            return;
        }
        IN_WAKE.store(true, Ordering::SeqCst);
        // Bounded: the task drops its future meanwhile.
        if !wait_until(Duration::from_secs(60), || FUTURE_GONE.load(Ordering::SeqCst)) {
            return;
        }
        // SAFETY: the child only spawns a thread that uses rcu-core and raw writes, then
        // `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid != 0 {
            CHILD.store(pid, Ordering::SeqCst);
            return;
        }
        IN_CHILD.store(true, Ordering::SeqCst);
        std::thread::spawn(|| {
            let ctx = Sleepable::enter();
            // Served by a later loop of the worker, after the pass it is in now.
            DOMAIN.get().unwrap().rcu_barrier(&ctx);
            DOMAIN.get().unwrap().rcu_barrier(&ctx);
            // SAFETY: ends the child.
            unsafe { libc::_exit(0) };
        });
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_pre_fork_wakers_drop_never_runs_on_the_childs_worker() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red4-wkdrop")));
    let ctx = Sleepable::enter();
    d.rcu_barrier(&ctx); // the worker runs
    let reader = HeldGracePeriods::spawn(d);
    let waker = Waker::from(Arc::new(ForkingWaker));
    let mut fut = d.synchronize_rcu_async();
    assert!(Pin::new(&mut fut).poll(&mut Context::from_waker(&waker)).is_pending());
    reader.release();

    assert!(wait_until(Duration::from_secs(60), || IN_WAKE.load(Ordering::SeqCst)), "no wake");
    // The task is cancelled while its wake runs: the node's waker is the last one.
    drop(fut);
    drop(waker);
    FUTURE_GONE.store(true, Ordering::SeqCst);

    assert!(wait_until(Duration::from_secs(60), || CHILD.load(Ordering::SeqCst) != 0), "no fork");
    let end = reap(CHILD.load(Ordering::SeqCst), Duration::from_secs(30));
    assert_ne!(end, ChildEnd::Hung, "the child hung for 30 s");
    if let ChildEnd::Died(status) = end {
        panic!("the child died (status {status:#x})");
    }
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "in the child of a fork from a waker on the worker, that (pre-fork) waker's drop ran \
         on the child's worker"
    );
}
