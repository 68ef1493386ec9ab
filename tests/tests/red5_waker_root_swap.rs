//! Red team, round 5 (`NoReclaimRoot`): a waker on the worker can now take a root.
//!
//! Suspicion: before `NoReclaimRoot`, no user code the worker runs could take a root (a
//! callback runs in an atomic scope, a waker in a no-reclaim scope, and `Sleepable::enter()`
//! panics in both), so the worker's `UserCode` check ("did the user code leak a root?
//! `live_roots()` before and after the iteration") could only ever see an unchanged count.
//! `NoReclaimRoot::enter()` is allowed inside a no-reclaim scope, so a waker can now take
//! roots, keep one in a `thread_local!` of the worker across iterations, and drop it in a
//! later iteration. A waker that then leaks a *new* root (`Box::leak`), borrows a `'static`
//! read guard from it and drops the kept root leaves `live_roots()` where it was at the start
//! of the iteration: `UserCode::undo` takes the guard for a forgotten one, ends its read
//! section (`end_forgotten_sections`) and restores the depths, while the guard, and a
//! reference loaded through it, are alive and `'static`. The grace period then completes
//! and the value is freed under the live reference: DESIGN §5.1, "Safe code can never reach
//! freed memory through a reference it loaded" and "Thread exit, slot release, fork or a
//! stall never end a section whose guard may still be alive".
//!
//! Mechanism: two `synchronize_rcu_async` futures of an owned domain, polled once each with a
//! waker that runs a step on the worker (checked by its thread name); each step waits for the
//! worker's report of the previous iteration, so the steps run in different iterations.
//!
//! Failed at 98e9ba4 (20 runs of 20): the worker reported "forgot scopes or read guards ... 1
//! read section(s) ended", the grace period completed and the value the live reference
//! pointed to was dropped. Fixed by refusing `NoReclaimRoot::enter()` inside a no-reclaim
//! scope, as `Sleepable::enter()` is: no user code the worker runs can take a root again.
//! The test now runs both steps and checks that each root is refused on the worker; if one
//! were taken, the original scenario's check (the value must not be dropped under the live
//! reference) still runs.

mod common;

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{wait_until, Canary, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::quiet::{expect_panic_quietly, quiet_reports};
use rcu_tests::wakers::run_on_worker;
use std::sync::atomic::AtomicU32;

const NAME: &str = "red5-swap";

thread_local! {
    /// A root kept on the worker between two of its iterations.
    static KEPT_ROOT: RefCell<Option<NoReclaimRoot>> = const { RefCell::new(None) };
}

/// Roots a waker on the worker was refused, by the rule named in the panic.
static REFUSED: AtomicU32 = AtomicU32::new(0);

/// `NoReclaimRoot::enter()`, as a waker on the worker calls it: `None` if refused (counted).
fn try_root() -> Option<NoReclaimRoot> {
    match expect_panic_quietly("NoReclaimRoot::enter() called inside", NoReclaimRoot::enter) {
        Ok(root) => Some(root),
        Err(p) => {
            let msg = rcu_tests::quiet::message(&*p);
            if msg.contains("NoReclaimRoot::enter() called inside a no-reclaim scope") {
                REFUSED.fetch_add(1, Ordering::SeqCst);
            }
            None
        }
    }
}

#[test]
fn a_root_swapped_by_wakers_never_ends_a_live_guards_section() {
    quiet_reports(&format!("on the worker of domain '{NAME}'"));
    quiet_reports(&format!("domain '{NAME}'"));
    let domain: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name(NAME.to_owned()))));
    // A section left open (if a root were taken) would print a stall report every few
    // seconds.
    domain.set_stall_handler(Some(Arc::new(|_: &rcu_core::StallReport| {})));
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    static LOADED: OnceLock<&'static Canary> = OnceLock::new();

    // Iteration k: a waker tries to keep a root in a thread-local of the worker.
    let (_, worker) = run_on_worker(domain, PATIENCE, || {
        KEPT_ROOT.with(|k| *k.borrow_mut() = try_root());
    });
    assert!(worker.starts_with("rcu-gp-"), "the waker ran on '{worker}', not the worker");

    // Iteration k + 1: a waker tries to leak a root, read through a 'static guard borrowed
    // from it, and drop the root kept in iteration k.
    let (_, worker) = run_on_worker(domain, PATIENCE, move || {
        if let Some(root) = try_root() {
            let root: &'static mut NoReclaimRoot = Box::leak(Box::new(root));
            let guard: &'static ReadGuard<'static> = Box::leak(Box::new(domain.read_lock(root)));
            let _ = LOADED.set(cell.load(guard));
        }
        KEPT_ROOT.with(|k| drop(k.borrow_mut().take()));
    });
    assert!(worker.starts_with("rcu-gp-"), "the waker ran on '{worker}', not the worker");
    assert_eq!(REFUSED.load(Ordering::SeqCst), 2, "a waker on the worker took a root");

    // The original scenario's check, should a root ever be taken again: the value a live
    // 'static reference points to must outlive it.
    if let Some(loaded) = LOADED.get() {
        let ctx = Sleepable::enter();
        cell.set(&ctx, Canary::new(7).0);
        let cookie = domain.start_poll(&ctx);
        let completed = wait_until(Duration::from_secs(2), || domain.poll(cookie));
        assert!(!completed && !dropped.load(Ordering::SeqCst), "freed under a live guard");
        assert_eq!(loaded.value(), 42);
    } else {
        // The worker goes on serving.
        domain.synchronize_rcu(&Sleepable::enter());
        assert!(!dropped.load(Ordering::SeqCst));
    }
}
