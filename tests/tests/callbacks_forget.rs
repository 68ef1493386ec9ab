//! User code that forgets scopes or read guards on a domain's worker (DESIGN §5.1: user code
//! never wedges a runtime thread). A callback is lent an `&Atomic` for its call; a scope or a
//! guard opened from it and `mem::forget`-ed raised the worker's depths for good, and a
//! forgotten guard of the worker's own domain held every later grace period of the domain,
//! which the worker itself waits for. Nothing can reach through what was forgotten once the
//! call has returned, so the worker undoes it (`worker_thread::UserCode`). Wakers, which run
//! where a root could otherwise be taken, run in a no-reclaim scope, so they cannot take one.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use common::Pending;
use rcu_core::prelude::*;
use rcu_core::DomainConfig;

/// A callback forgets an atomic scope and a read guard of its own domain: later grace
/// periods and barriers of the domain complete, and the section is counted as leaked.
#[test]
fn a_callback_that_forgets_a_guard_of_its_domain_does_not_wedge_it() {
    const FORGOT: &str = "on the worker of domain 'forgetful' forgot scopes or read guards";
    rcu_tests::quiet::quiet_reports(FORGOT);
    let domain = Arc::new(Domain::new(DomainConfig::new().name("forgetful")));
    let ctx = Sleepable::enter();
    let d = domain.clone();
    domain.call_rcu_fn(&ctx, move |atomic| {
        core::mem::forget(atomic.nested());
        core::mem::forget(d.read_lock_nested(atomic));
    });
    let d = domain.clone();
    Pending::spawn("barrier-after-forget", move || {
        let ctx = Sleepable::enter();
        d.rcu_barrier(&ctx); // runs the callback
        d.synchronize_rcu(&ctx); // would wait for the worker's forgotten section
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        d.call_rcu_fn(&ctx, move |_| flag.store(true, Ordering::SeqCst));
        d.rcu_barrier(&ctx);
        assert!(ran.load(Ordering::SeqCst), "a later callback did not run");
    })
    .join("grace periods of a domain whose callback forgot a guard");
    assert!(domain.stats().leaked_read_sections >= 1, "{:?}", domain.stats());
    let patience = std::time::Duration::from_secs(5);
    assert!(rcu_tests::quiet::wait_for_reports(FORGOT, 1, patience), "the worker did not report");
}

/// An async waker on the worker that tries to take a root (to open a read section of the
/// domain and forget its guard, or to wait for a barrier) is refused: wakers run in a
/// no-reclaim scope, where `Sleepable::enter` panics; the panic is contained and counted, and
/// the domain's grace periods and barriers go on.
#[test]
fn a_waker_that_takes_a_root_on_the_worker_is_refused_and_does_not_wedge_it() {
    struct Forgetful(Arc<Domain>, AtomicBool);
    impl Wake for Forgetful {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.1.store(true, Ordering::SeqCst);
            let refused = "Sleepable::enter() called inside a no-reclaim scope";
            let result = rcu_tests::quiet::expect_panic_quietly(refused, || {
                let mut root = Sleepable::enter(); // refused on the worker
                core::mem::forget(self.0.read_lock(&mut root));
            });
            // The refusal goes on to the runtime, which contains it.
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    }
    const WAKER: &str = "an async waker panicked on the worker of domain 'forgetful-waker'";
    rcu_tests::quiet::quiet_reports(WAKER);
    let domain = Arc::new(Domain::new(DomainConfig::new().name("forgetful-waker")));
    let ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    let waker_state = Arc::new(Forgetful(domain.clone(), AtomicBool::new(false)));
    let waker = Waker::from(waker_state.clone());
    // A reader on another thread holds the grace period, so the first poll registers the
    // waker; it leaves once the poll is done.
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (leave_tx, leave) = std::sync::mpsc::channel::<()>();
    let reader = {
        let domain = domain.clone();
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let _guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            leave.recv().unwrap();
        })
    };
    entered.recv().unwrap();
    let mut fut = Box::pin(domain.synchronize_rcu_async());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    leave_tx.send(()).unwrap();
    reader.join().unwrap();
    let d = domain.clone();
    Pending::spawn("after-the-waker", move || {
        let ctx = Sleepable::enter();
        while !waker_state.1.load(Ordering::SeqCst) {
            d.synchronize_rcu(&ctx);
        }
        d.synchronize_rcu(&ctx); // would wait for the worker's forgotten section
        d.rcu_barrier(&ctx);
    })
    .join("grace periods after a waker tried to forget a guard on the worker");
    assert!(domain.stats().contained_panics >= 1, "{:?}", domain.stats());
    let patience = std::time::Duration::from_secs(5);
    assert!(rcu_tests::quiet::wait_for_reports(WAKER, 1, patience), "the worker did not report");
}
