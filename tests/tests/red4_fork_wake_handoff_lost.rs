//! Red team, round 4 (pre-fork async waiters handed to `rcu-fork-wake`).
//!
//! Fixed: a handed node stays linked until its wake is done, and a fork child's handler
//! un-hands what is not done, so its own worker hands it again.
//!
//! Suspicion: a lost wake when a fork happens while a hand-off is pending. In a fork child,
//! the worker's pass *unlinks* the due nodes registered before the fork and moves them into
//! a `Vec` (`PreForkWakes`) that the detached `rcu-fork-wake` thread walks, waking them one
//! after the other. While that thread is inside one pre-fork waker, the rest of the `Vec`
//! exists only on its stack: the nodes are on no list. If another thread of the child forks
//! now, the grandchild has neither that thread nor the nodes on its domain's list, so a task
//! of the grandchild whose future returned `Pending` (registered in the grandparent, woken
//! nowhere yet) is never woken, although its grace period completes. Before this change, a
//! node left the list only after its wake (wake, mark, unlink), which is what made "a fork at
//! any point of a pass keeps every waiting node for the child" true; the hand-off unlinks
//! first and wakes later, on another thread.
//!
//! Mechanism: two futures are polled (Pending) in the parent while a reader holds the grace
//! period. Their wakers are one kind: the first of them to be woken blocks (bounded) until
//! told to go on. In the child (the reader's section is ended there), the worker hands both
//! nodes to `rcu-fork-wake`, which blocks in the first wake. The child's main thread then
//! forks a grandchild, which waits (bounded) for the other waker, as an executor parked
//! after `Pending` does.
//!
//! DESIGN §5.1: no wake is lost (a `block_on` in a fork child waits for that wake, design.md
//! §5), and "a fork at any point of a pass leaves every waiting node" (design.md §5); §8.6
//! lists a fork from any thread of a child as supported.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::drop_log::wait_until;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
/// Set by the first waker woken (it then blocks until `RELEASE`).
static BLOCKER_TAKEN: AtomicBool = AtomicBool::new(false);
/// Which waker blocks (1 or 2; 0: none yet).
static BLOCKER_ID: AtomicUsize = AtomicUsize::new(0);
static RELEASE: AtomicBool = AtomicBool::new(false);

struct GateWaker {
    id: usize,
    woken: AtomicBool,
}

impl Wake for GateWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !BLOCKER_TAKEN.swap(true, Ordering::SeqCst) {
            BLOCKER_ID.store(self.id, Ordering::SeqCst);
            // Bounded: an executor's wake that waits on one of its locks for a while.
            let start = Instant::now();
            while !RELEASE.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_while_rcu_fork_wake_is_in_a_waker_loses_the_rest_of_its_wakes() {
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red4-handoff")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx); // the worker runs
    }
    // A reader holds every grace period in the parent until told.
    let reader = HeldGracePeriods::spawn(d);

    let flags: Vec<Arc<GateWaker>> =
        (1..=2).map(|id| Arc::new(GateWaker { id, woken: AtomicBool::new(false) })).collect();
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut futs = Vec::new();
    for w in &wakers {
        let mut f = d.synchronize_rcu_async();
        assert!(Pin::new(&mut f).poll(&mut Context::from_waker(w)).is_pending(), "reader holds it");
        futs.push(f);
    }

    let (flags_ref, futs_ref) = (&flags, &futs);
    // SAFETY: (1) the child uses rcu-core, allocation, sleeps, raw writes and a nested
    // `run_in_child` (fork, waitpid; same conditions for the grandchild) only; (2) it uses
    // nothing the reader thread loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(150), move || {
            let d = DOMAIN.get().unwrap();
            // The child's worker hands both nodes to rcu-fork-wake, which blocks in one wake.
            if !wait_until(Duration::from_secs(30), || BLOCKER_TAKEN.load(Ordering::SeqCst)) {
                raw_eprint("child: no pre-fork waker ran in 30 s\n");
                return 4;
            }
            let blocker = BLOCKER_ID.load(Ordering::SeqCst);
            let victim = 3 - blocker; // the other one: still in rcu-fork-wake's Vec
            let (flags, futs) = (flags_ref, futs_ref);
            let grandchild = run_in_child(Duration::from_secs(60), move || {
                let flag = &flags[victim - 1];
                // An executor parked after `Pending`: wait for the wake (bounded).
                if wait_until(Duration::from_secs(20), || flag.woken.load(Ordering::SeqCst)) {
                    return 0;
                }
                let done = d.poll(futs[victim - 1].cookie());
                raw_eprint(&format!(
                    "grandchild: waker {victim} (registered in the grandparent, pending in \
                     rcu-fork-wake's hand-off when the child forked) never woken in 20 s; its \
                     grace period completed: {done}\n"
                ));
                if done {
                    1
                } else {
                    3
                }
            });
            RELEASE.store(true, Ordering::SeqCst);
            // The child itself: the victim is woken once the blocker returns.
            let flag = &flags[victim - 1];
            let child_ok =
                wait_until(Duration::from_secs(30), || flag.woken.load(Ordering::SeqCst));
            match grandchild {
                ChildEnd::Exited(0) if child_ok => 0,
                ChildEnd::Exited(0) => 5,
                ChildEnd::Exited(c) => c,
                _ => 6,
            }
        })
    };
    RELEASE.store(true, Ordering::SeqCst);
    reader.release();
    for (f, w) in futs.iter_mut().zip(&wakers) {
        let start = Instant::now();
        while Pin::new(&mut *f).poll(&mut Context::from_waker(w)) == Poll::Pending {
            assert!(start.elapsed() < Duration::from_secs(60), "parent future never ready");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "a grandchild forked while rcu-fork-wake ran a pre-fork waker lost the wake of the \
         other pre-fork future (1: its grace period completed and it was never woken; see \
         stderr)"
    );
}
