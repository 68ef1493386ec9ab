//! Red team, round 3 (fork repair of async waiters, `AsyncWaiters::keep_after_fork`, since replaced).
//!
//! Fixed: no waker registered before the fork runs on the child's worker; once due, such
//! nodes are woken on a thread of their own (`wait_async`, "In a fork child"), which a
//! waker that blocks for ever blocks alone.
//!
//! Suspicion: the child kept the nodes whose registrar is the forking thread and runs their
//! wakers on its worker, on the argument (design.md §5, `keep_after_fork`'s docs) that
//! only *other* threads' wakers belong to executors that do not exist in the child and may
//! take a lock one of their threads held at the fork. But which thread polled a future says
//! nothing about which executor its waker belongs to: a task polled on the forking thread
//! (a multi-threaded executor's worker, say) has a waker that schedules it through a queue
//! lock shared with the executor's other threads. If one of them held that lock at the fork,
//! the child's worker runs the waker, blocks on the lock for ever, and serves nothing more.
//!
//! Mechanism: the main thread polls `synchronize_rcu_async()` (a reader holds the grace
//! period) with a waker whose `wake` takes a `Mutex` (the executor's queue lock); another
//! thread holds that lock while the main thread forks. In the child the grace period
//! completes (the reader is gone), the worker wakes the kept node, and blocks. The child then
//! queues a callback and waits (bounded) for the worker to run it.
//!
//! DESIGN §5.1: user code never wedges a runtime thread, and §5: every API works in the
//! child. The registrar filter was introduced precisely to keep such wakers off the child's
//! worker (red team of issue 21); it lets this one through.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
/// The executor's run-queue lock, which its wakers take to schedule a task.
static QUEUE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static RAN: AtomicBool = AtomicBool::new(false);

struct QueueWaker;

impl Wake for QueueWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push(1);
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_kept_waker_that_takes_a_lock_held_at_the_fork_does_not_wedge_the_childs_worker() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red3-wedge")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx); // the worker runs
    }
    // A reader holds every grace period until told.
    let reader = HeldGracePeriods::spawn(d);

    // The forking thread's own task, polled here.
    let waker = Waker::from(Arc::new(QueueWaker));
    let mut fut = Box::pin(d.synchronize_rcu_async());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());

    // Another executor thread holds the queue lock across the fork.
    let (locked_tx, locked_rx) = mpsc::channel();
    let (unlock_tx, unlock_rx) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let queue = QUEUE.lock().unwrap();
        locked_tx.send(()).unwrap();
        unlock_rx.recv().unwrap();
        drop(queue);
    });
    locked_rx.recv().unwrap();

    // SAFETY: (1) the child uses rcu-core, allocation, sleeps and raw writes only (never the
    // queue lock); (2) it uses nothing the reader thread loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(60), || {
            let d = DOMAIN.get().unwrap();
            let ctx = Sleepable::enter();
            d.call_rcu_fn(&ctx, |_| RAN.store(true, Ordering::SeqCst));
            let start = Instant::now();
            while !RAN.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(20) {
                    raw_eprint(
                        "child: the worker ran no callback in 20 s (it is blocked in the kept \
                         waker, on a lock a thread that is not in the child held)\n",
                    );
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            0
        })
    };
    unlock_tx.send(()).unwrap();
    other.join().unwrap();
    reader.release();
    drop(fut);
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "the fork child's worker was wedged by a kept async waker (1: no callback ran)"
    );
}
