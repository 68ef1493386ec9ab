//! Red team, round 4 (pre-fork async waiters handed to `rcu-fork-wake`).
//!
//! Fixed: each relayed item runs on a relay thread of its own (`wait_async`, "In a fork child").
//!
//! Suspicion: one blocking pre-fork waker starves every other pre-fork wake of the same
//! pass. The child's worker gathers *all* the due nodes registered before the fork into one
//! `PreForkWakes` and hands them to *one* `rcu-fork-wake` thread, which runs them in list
//! order. The reason for that thread is that such a waker may take a lock a thread of the
//! parent held at the fork and block for ever; but then it blocks the thread that holds the
//! other nodes of the batch too, so the wakes behind it, among them the forking thread's
//! own `block_on` (whose executor is alive in the child), are never delivered.
//!
//! Mechanism: in the parent, a thread X holds its executor's lock and a read section. The
//! main thread polls (Pending) a future with its own flag waker M, then a future with X's
//! waker, whose wake takes X's lock (the list is a stack: X's node comes first in the pass).
//! The main thread forks. In the child the reader is gone, both grace periods complete, the
//! worker hands both nodes to one `rcu-fork-wake`, which blocks on X's lock for ever. The
//! child's main thread waits (bounded) for M's wake, as its `block_on` would.
//!
//! DESIGN §5.1: no wake is lost; design.md §5 ("In a fork child"): a future the forking
//! thread polled before the fork is still woken in the child, and "a waker that blocks for
//! ever blocks only that thread".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::wakers::FlagWaker;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
/// Thread X's executor lock, held by X across the fork.
static EXEC_LOCK: Mutex<()> = Mutex::new(());

/// Thread X's executor's waker: a wake takes its run-queue lock.
struct ExecWaker;

impl Wake for ExecWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        drop(EXEC_LOCK.lock());
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_blocking_pre_fork_waker_does_not_starve_the_forking_threads_wake() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red4-batch")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx); // the worker runs
    }
    // Thread X: holds its executor's lock and a read section until told.
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let x = std::thread::spawn(move || {
        let lock = EXEC_LOCK.lock().unwrap();
        let mut ctx = Sleepable::enter();
        let guard = DOMAIN.get().unwrap().read_lock(&mut ctx);
        held_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        drop(guard);
        drop(lock);
    });
    held_rx.recv().unwrap();

    // The main thread's `block_on` waker.
    let flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let mine = Waker::from(flag.clone());
    let mut fut = d.synchronize_rcu_async();
    assert!(Pin::new(&mut fut).poll(&mut Context::from_waker(&mine)).is_pending());
    let theirs = Waker::from(Arc::new(ExecWaker));
    let mut their_fut = d.synchronize_rcu_async();
    assert!(Pin::new(&mut their_fut).poll(&mut Context::from_waker(&theirs)).is_pending());
    let cookie = fut.cookie();

    // SAFETY: (1) the child uses rcu-core, allocation, sleeps and raw writes only (the
    // executor lock is taken on rcu-fork-wake, by the runtime); (2) it uses nothing X loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(60), || {
            let _their_fut = &their_fut; // X's task, as the child has it
            let d = DOMAIN.get().unwrap();
            // The main thread's block_on: parked after Pending, waits for its wake.
            let start = Instant::now();
            while !flag.0.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(20) {
                    let done = d.poll(cookie);
                    raw_eprint(&format!(
                        "child: the forking thread's task was never woken in 20 s (its grace \
                         period completed: {done})\n"
                    ));
                    return if done { 1 } else { 3 };
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            0
        })
    };
    go_tx.send(()).unwrap();
    x.join().unwrap();
    drop((fut, their_fut));
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "in the fork child, the forking thread's pre-fork future was never woken: its wake \
         was queued on rcu-fork-wake behind a pre-fork waker blocked on a lock held at the \
         fork (1: its grace period completed)"
    );
}
