//! Red team (issue 21): async registrations are now kept linked across `fork()` and woken in
//! the child (then by the restarted worker; since round 3 of the red team, pre-fork ones on a
//! thread of their own, `wait_async`). At 1acacce
//! the child forgot them, precisely because "waking a parent's waker could take a lock that
//! one of them held at the fork". The child's worker now runs wakers that belong to executor
//! threads that do not exist in the child; one whose `wake` takes a lock another parent
//! thread held at the fork (any executor's run-queue lock) blocks the child's worker for good,
//! and with it every callback and barrier of the domain in the child.
//!
//! The parent program is ordinary: an executor thread polls `synchronize_rcu_async` with a
//! waker that takes the executor's queue lock; another executor thread holds that lock for a
//! moment; the main thread forks meanwhile and, in the child, uses `call_rcu` + `rcu_barrier`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};

/// The executor's run queue lock.
static QUEUE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

struct QueueWaker(u32);

impl Wake for QueueWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn the_childs_worker_runs_a_dead_executors_waker() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("fork-wake")));
    let ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);

    // A reader holds the grace period so the future stays pending in the parent.
    let (in_tx, in_rx) = mpsc::channel::<()>();
    let (out_tx, out_rx) = mpsc::channel::<()>();
    let reader = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let _g = domain.read_lock(&mut ctx);
            in_tx.send(()).unwrap();
            out_rx.recv().unwrap();
        })
    };
    in_rx.recv().unwrap();

    // Executor thread 1 polls a grace-period future once (it registers its waker).
    // (The executor keeps the task, and so the future, alive.)
    let (registered, _task) = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let mut fut = Box::pin(domain.synchronize_rcu_async());
            let waker = Waker::from(Arc::new(QueueWaker(1)));
            let mut cx = TaskContext::from_waker(&waker);
            (fut.as_mut().poll(&mut cx).is_pending(), fut)
        })
        .join()
        .unwrap()
    };
    assert!(registered, "the future was not pending");

    // Executor thread 2 holds the queue lock for a moment (as an executor does).
    let held = Arc::new(AtomicBool::new(false));
    let holder = {
        let held = held.clone();
        std::thread::spawn(move || {
            // Control: RED21_CONTROL=1 holds no lock at the fork (the child then passes).
            let _q = std::env::var_os("RED21_CONTROL").is_none().then(|| QUEUE.lock().unwrap());
            held.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
        })
    };
    while !held.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }

    let d = domain.clone();
    // SAFETY: the child uses rcu-core, allocation and raw_eprint only (not QUEUE itself).
    let end = unsafe {
        run_in_child(Duration::from_secs(20), move || {
            let ctx = Sleepable::enter();
            for _ in 0..3 {
                let ran = Arc::new(AtomicBool::new(false));
                let flag = ran.clone();
                d.call_rcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
                d.rcu_barrier(&ctx);
                if !ran.load(Ordering::SeqCst) {
                    raw_eprint("child: barrier returned before the callback ran\n");
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            0
        })
    };
    holder.join().unwrap();
    out_tx.send(()).unwrap();
    reader.join().unwrap();
    drop(ctx);
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "the child's rcu_barrier never returned: its worker is blocked in a waker of an \
         executor thread that does not exist in the child"
    );
}
