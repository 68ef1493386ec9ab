//! (Refuted: this program passed when written; kept as a regression test.)
//! Red team, round 4 (pre-fork async waiters handed to `rcu-fork-wake`).
//!
//! Suspicion: a panic of a pre-fork waker on `rcu-fork-wake` is not contained or not
//! counted, or stops the wakes queued behind it. The thread counts through a `Weak` of a
//! private domain's state (`DomainRef::wake_pre_fork_elsewhere`) and through the `'static`
//! state of the global domain; an upgrade that fails (or a panic escaping `PreForkWakes::run`,
//! which `raw_thread` would catch, ending the thread) would lose the count or the wakes after.
//!
//! Mechanism: for the global domain (`cond_synchronize_async`) and a private one
//! (`rcu_barrier_async`), a future with a flag waker, then one whose waker panics, are
//! polled (Pending) while a reader holds the grace period; the main thread forks. In the
//! child the panicking waker runs first on `rcu-fork-wake`; the child waits (bounded) for the
//! flag waker and for `contained_panics` to grow.
//!
//! DESIGN §5.1: a panic in a waker is contained and counted, and the thread goes on serving;
//! no wake is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::drop_log::wait_until;
use rcu_tests::fork::{raw_eprint, run_in_child, ChildEnd};
use rcu_tests::readers::HeldGracePeriods;
use rcu_tests::wakers::FlagWaker;

struct PanicWaker;

impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if std::process::id() != PARENT.load(Ordering::SeqCst) {
            panic!("red4: a pre-fork waker panics in the fork child (on purpose)");
        }
    }
}

static PARENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn check<F: Future<Output = ()> + Unpin + Send>(d: &'static Domain, make: impl Fn() -> F) {
    let reader = HeldGracePeriods::spawn(d);
    let flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let mine = Waker::from(flag.clone());
    let bomb = Waker::from(Arc::new(PanicWaker));
    let mut futs = Vec::new();
    for w in [&mine, &bomb] {
        let mut f = make();
        assert!(Pin::new(&mut f).poll(&mut Context::from_waker(w)).is_pending());
        futs.push(f);
    }
    let before = d.stats().contained_panics;
    // SAFETY: (1) the child uses rcu-core, allocation, sleeps and raw writes only; (2) it
    // uses nothing the reader loaded.
    let end = unsafe {
        run_in_child(Duration::from_secs(60), || {
            let _futs = &futs;
            if !wait_until(Duration::from_secs(20), || flag.0.load(Ordering::SeqCst)) {
                raw_eprint("child: the wake queued behind a panicking pre-fork waker was lost\n");
                return 1;
            }
            if !wait_until(Duration::from_secs(20), || d.stats().contained_panics > before) {
                raw_eprint("child: the pre-fork waker's panic was not counted\n");
                return 4;
            }
            0
        })
    };
    reader.release();
    for (f, w) in futs.iter_mut().zip([&mine, &bomb]) {
        let start = Instant::now();
        while Pin::new(&mut *f).poll(&mut Context::from_waker(w)) == Poll::Pending {
            assert!(start.elapsed() < Duration::from_secs(60), "parent future never ready");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(end, ChildEnd::Exited(0), "domain '{}': see the child's message", d.name());
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_panicking_pre_fork_waker_is_contained_counted_and_the_rest_woken() {
    PARENT.store(std::process::id(), Ordering::SeqCst);
    rcu_tests::quiet::quiet_deliberate_panics();
    // The children's reports (the parent's wakers do not panic).
    rcu_tests::quiet::quiet_reports("an async waker panicked on the fork-wake relay thread");
    let d: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name("red4-panic"))));
    {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx);
        rcu_core::rcu_barrier(&ctx);
    }
    check(d, || {
        // Something queued (held by the reader's grace period): the barrier waits for it.
        d.call_rcu_fn(&Sleepable::enter(), |_| {});
        d.rcu_barrier_async()
    });
    let g = Domain::global();
    check(g, || {
        let cookie = g.get_state();
        g.cond_synchronize_async(cookie)
    });
}
