//! Red team, round 2 (async waiters in a fork child; fixed first by counted thread
//! identities, then for good by round 3: no waker registered before a fork runs on the
//! child's worker, whoever registered it): `keep_after_fork(me)` kept the nodes whose `registrar`
//! equals the forking thread's `registry::current_owner_mark()`, which was the address of a
//! thread-local. That address is not a thread's identity over time: a thread
//! that exited leaves its static TLS block in glibc's stack cache, and the next thread
//! spawned with the same stack size gets the same addresses. A node a dead thread registered
//! (its future kept alive elsewhere, its grace period still held) is then taken for the
//! forking thread's own, kept in the child, and its waker (an executor whose threads do not
//! exist in the child) runs on the child's worker. Here that waker takes a lock another
//! parent thread held at the fork: the child's worker wedges, and a barrier in the child
//! never returns, which is exactly what the fix of issue 21's red team meant to rule out
//! ("other threads' nodes are unlinked and leaked, never run", design.md §5).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, GracePeriodFuture};
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static EXECUTOR_LOCK: Mutex<()> = Mutex::new(());
static RAN: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::type_complexity)]
static KEPT: Mutex<Option<Pin<Box<GracePeriodFuture>>>> = Mutex::new(None);

thread_local! {
    static PROBE: u8 = const { 0 };
}

fn probe() -> usize {
    PROBE.with(|p| p as *const u8 as usize)
}

/// An executor's waker: its `wake` takes the executor's lock (as a run queue's would).
struct ExecutorWaker;

impl Wake for ExecutorWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        drop(EXECUTOR_LOCK.lock());
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_dead_threads_waker_never_runs_in_a_fork_child() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("fk-reuse")));
    let ctx = Sleepable::enter();
    d.rcu_barrier(&ctx);

    // A reader holds every grace period until after the fork.
    let reader = HeldGracePeriods::spawn(d);

    // Another thread of the "executor" holds its lock across the fork.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (unlock_tx, unlock_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let held = EXECUTOR_LOCK.lock().unwrap();
        locked_tx.send(()).unwrap();
        unlock_rx.recv().unwrap();
        drop(held);
    });
    locked_rx.recv().unwrap();

    // Thread A registers a waker for the next grace period, hands its future on, and exits.
    let a_mark = std::thread::spawn(|| {
        let waker = Waker::from(Arc::new(ExecutorWaker));
        let mut fut = Box::pin(DOMAIN.get().unwrap().synchronize_rcu_async());
        assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        *KEPT.lock().unwrap() = Some(fut);
        probe()
    })
    .join()
    .unwrap();

    // Thread B forks. It is a new thread, spawned right after A exited (so it reuses A's
    // cached stack and static TLS block); A is gone.
    let (b_mark, end) = std::thread::spawn(|| {
        let b_mark = probe();
        // SAFETY: the child uses rcu-core, allocation and raw writes only.
        let end = unsafe {
            run_in_child(Duration::from_secs(20), || {
                let d = DOMAIN.get().unwrap();
                let ctx = Sleepable::enter();
                // The child's worker completes the held grace period (the reader's section
                // is ended here) and wakes what the child kept.
                std::thread::sleep(Duration::from_millis(300));
                d.call_rcu_fn(&ctx, |_| {
                    RAN.fetch_add(1, Ordering::SeqCst);
                });
                // Bounded: a watchdog thread reports a barrier that never returns.
                std::thread::spawn(|| {
                    std::thread::sleep(Duration::from_secs(10));
                    raw_eprint("child: rcu_barrier still waiting after 10 s (worker wedged)\n");
                    // SAFETY: ends the child.
                    libc::_exit(3);
                });
                d.rcu_barrier(&ctx);
                i32::from(RAN.load(Ordering::SeqCst) != 1)
            })
        };
        (b_mark, end)
    })
    .join()
    .unwrap();
    unlock_tx.send(()).unwrap();
    holder.join().unwrap();
    reader.release();
    drop(KEPT.lock().unwrap().take());
    d.rcu_barrier(&ctx);
    // With identities taken from a thread-local's address, the program failed only when B
    // reused A's (most runs on glibc); now it must pass either way.
    eprintln!("thread-local of A at {a_mark:#x}, of B at {b_mark:#x}; child: {end:?}");
    assert_eq!(end, ChildEnd::Exited(0), "the child's worker ran a dead thread's waker");
}
