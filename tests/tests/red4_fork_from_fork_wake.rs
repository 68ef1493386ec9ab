//! (Refuted: this program passed when written; kept as a regression test.)
//! Red team, round 4 (pre-fork async waiters handed to `rcu-fork-wake`).
//!
//! Suspicion: a fork from a pre-fork waker running on `rcu-fork-wake` (a nested fork: the
//! grandchild's only thread is that detached runtime thread, all signals blocked, with the
//! rest of its `PreForkWakes` on its stack) leaves the grandchild's domain unusable, or the
//! wakes behind the forking one lost, or runs them twice.
//!
//! Mechanism: two futures are polled (Pending) in the parent while a reader holds the grace
//! period: a flag waker, then a waker that forks when it runs in the child (it runs first:
//! the list is a stack). In the grandchild, the forking waker returns on `rcu-fork-wake`,
//! which goes on with the flag waker; a helper thread checks (bounded) that the flag waker
//! was woken once, then that a barrier and a new async future work there.
//!
//! DESIGN §5.1: no wake is lost, none run twice; design.md §8.6: a fork from a pre-fork
//! waker on `rcu-fork-wake` goes on in the child with what it holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::drop_log::wait_until;
use rcu_tests::fork::{raw_eprint, reap, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;

static DOMAIN: OnceLock<Domain> = OnceLock::new();
static PARENT: AtomicU32 = AtomicU32::new(0);
static GRANDCHILD: AtomicI32 = AtomicI32::new(0);

struct CountWaker(AtomicUsize, AtomicBool);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.store(true, Ordering::SeqCst);
    }
}

static FLAG: OnceLock<Arc<CountWaker>> = OnceLock::new();

fn grandchild() -> i32 {
    let flag = FLAG.get().unwrap();
    if !wait_until(Duration::from_secs(20), || flag.0.load(Ordering::SeqCst) > 0) {
        raw_eprint("grandchild: the wake behind the forking waker was lost\n");
        return 1;
    }
    let d = DOMAIN.get().unwrap();
    let ctx = Sleepable::enter();
    d.call_rcu_fn(&ctx, |_| {});
    d.rcu_barrier(&ctx);
    let fresh = Arc::new(CountWaker(AtomicUsize::new(0), AtomicBool::new(false)));
    let w = Waker::from(fresh.clone());
    let mut fut = d.synchronize_rcu_async();
    let start = Instant::now();
    while Pin::new(&mut fut).poll(&mut Context::from_waker(&w)) == Poll::Pending {
        if !wait_until(Duration::from_secs(20), || fresh.1.swap(false, Ordering::SeqCst)) {
            raw_eprint("grandchild: a new future was never woken\n");
            return 3;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_millis(50));
    let n = flag.0.load(Ordering::SeqCst);
    if n != 1 {
        raw_eprint(&format!("grandchild: the pre-fork waker was woken {n} times\n"));
        return 5;
    }
    0
}

struct ForkingWaker;

impl Wake for ForkingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if std::process::id() == PARENT.load(Ordering::SeqCst)
            || GRANDCHILD.load(Ordering::SeqCst) != 0
        {
            return;
        }
        // SAFETY: the grandchild spawns a thread that uses rcu-core, allocation, sleeps and
        // raw writes, then `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid != 0 {
            GRANDCHILD.store(pid, Ordering::SeqCst);
            return;
        }
        GRANDCHILD.store(-1, Ordering::SeqCst);
        std::thread::spawn(|| {
            let code = grandchild();
            // SAFETY: ends the grandchild.
            unsafe { libc::_exit(code) };
        });
    }
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_from_a_pre_fork_waker_on_rcu_fork_wake() {
    PARENT.store(std::process::id(), Ordering::SeqCst);
    let d = DOMAIN.get_or_init(|| Domain::new(DomainConfig::new().name("red4-nested")));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx);
    }
    let reader = HeldGracePeriods::spawn(d);
    let flag =
        FLAG.get_or_init(|| Arc::new(CountWaker(AtomicUsize::new(0), AtomicBool::new(false))));
    let mine = Waker::from(flag.clone());
    let forking = Waker::from(Arc::new(ForkingWaker));
    let mut futs = Vec::new();
    for w in [&mine, &forking] {
        let mut f = d.synchronize_rcu_async();
        assert!(Pin::new(&mut f).poll(&mut Context::from_waker(w)).is_pending());
        futs.push(f);
    }
    // SAFETY: (1) the child uses rcu-core, sleeps, waitpid and raw writes only; (2) it uses
    // nothing the reader loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(120), || {
            let _futs = &futs;
            if !wait_until(Duration::from_secs(30), || GRANDCHILD.load(Ordering::SeqCst) > 0) {
                raw_eprint("child: the forking pre-fork waker never forked\n");
                return 4;
            }
            match reap(GRANDCHILD.load(Ordering::SeqCst), Duration::from_secs(60)) {
                ChildEnd::Exited(code) => code,
                ChildEnd::Hung => {
                    raw_eprint("child: the grandchild hung\n");
                    6
                }
                ChildEnd::Died(status) => {
                    raw_eprint(&format!("child: the grandchild died, status {status:#x}\n"));
                    7
                }
            }
        })
    };
    reader.release();
    drop(futs);
    assert_eq!(end, ChildEnd::Exited(0), "see the (grand)child's message");
}
