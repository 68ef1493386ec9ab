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
//! Fails (a defect, hence ignored in the suite): the worker reports "forgot scopes or read
//! guards ... 1 read section(s) ended", the grace period completes and the value the live
//! reference points to is dropped. Run it with `-- --ignored`.
//!
//! Alone in its file: it wedges the domain's worker when the runtime is right (the section
//! stays open for ever, as a leaked guard's does), and that domain is leaked.

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Wake, Waker};
use std::time::Duration;

use common::{wait_until, Canary, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::quiet::{quiet_reports, wait_for_reports};

const NAME: &str = "red5-swap";

thread_local! {
    /// A root kept on the worker between two of its iterations.
    static KEPT_ROOT: RefCell<Option<NoReclaimRoot>> = const { RefCell::new(None) };
}

type Step = Box<dyn FnOnce() + Send>;

/// A waker that runs its step once, on whatever thread wakes it.
struct OnWake(Mutex<Option<Step>>);

impl Wake for OnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let step = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(step) = step {
            step();
        }
    }
}

/// The calling thread's name (the runtime's threads are raw pthreads: std has no name).
fn thread_name() -> String {
    let mut buf = [0u8; 32];
    // SAFETY: a live buffer of the given length.
    unsafe { libc::pthread_getname_np(libc::pthread_self(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Runs `step` on the worker of `domain`, as the waker of a grace-period future; returns the
/// name of the thread it ran on.
fn run_on_worker(domain: &'static Domain, step: impl FnOnce() + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel::<String>();
    let step: Step = Box::new(move || {
        step();
        let _ = tx.send(thread_name());
    });
    let waker = Waker::from(Arc::new(OnWake(Mutex::new(Some(step)))));
    let mut fut = domain.synchronize_rcu_async();
    let mut cx = TaskContext::from_waker(&waker);
    assert!(Pin::new(&mut fut).poll(&mut cx).is_pending(), "the future was ready at once");
    let name = rx.recv_timeout(PATIENCE).expect("the waker never ran: hung");
    drop(fut);
    name
}

#[test]
#[ignore = "red5: defect: UserCode::undo ends the section of a live 'static guard when a waker \
            swaps a kept NoReclaimRoot for a leaked one (live_roots unchanged): use-after-free"]
fn a_root_swapped_by_wakers_never_ends_a_live_guards_section() {
    quiet_reports(&format!("on the worker of domain '{NAME}'"));
    quiet_reports(&format!("domain '{NAME}'"));
    let domain: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name(NAME.to_owned()))));
    // The section this test expects to stay open would otherwise print a stall report
    // every few seconds.
    domain.set_stall_handler(Some(Arc::new(|_: &rcu_core::StallReport| {})));
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    static LOADED: OnceLock<&'static Canary> = OnceLock::new();

    // Iteration k: a waker keeps a root in a thread-local of the worker.
    let worker = run_on_worker(domain, || {
        KEPT_ROOT.with(|k| *k.borrow_mut() = Some(NoReclaimRoot::enter()));
    });
    assert!(worker.starts_with("rcu-gp-"), "the waker ran on '{worker}', not the worker");
    assert!(
        wait_for_reports(
            &format!("on the worker of domain '{NAME}' left scopes open"),
            1,
            PATIENCE
        ),
        "the worker did not report the kept root"
    );

    // Iteration k + 1: a waker leaks a root, reads through a 'static guard borrowed from it,
    // and drops the root kept in iteration k.
    let worker = run_on_worker(domain, move || {
        let root: &'static mut NoReclaimRoot = Box::leak(Box::new(NoReclaimRoot::enter()));
        let guard: &'static ReadGuard<'static> = Box::leak(Box::new(domain.read_lock(root)));
        let _ = LOADED.set(cell.load(guard));
        KEPT_ROOT.with(|k| drop(k.borrow_mut().take()));
    });
    assert!(worker.starts_with("rcu-gp-"), "the waker ran on '{worker}', not the worker");
    let loaded: &'static Canary = LOADED.get().expect("the waker loaded the cell");
    assert_eq!(loaded.value(), 42);
    // Whatever the worker made of it, its iteration has ended once a third waker ran.
    let _ = run_on_worker(domain, || {});

    // The value the 'static reference points to is replaced; its grace period must wait for
    // the section of the guard, which is alive.
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(7).0);
    let cookie = domain.start_poll(&ctx);
    let completed = wait_until(Duration::from_secs(2), || domain.poll(cookie));
    if completed {
        // The section was ended under the live guard: show what that does.
        domain.rcu_barrier(&ctx);
        let freed = dropped.load(Ordering::SeqCst);
        panic!(
            "the grace period completed while a 'static guard on the worker (borrowed from a \
             leaked NoReclaimRoot) was alive; the value loaded through it was dropped: \
             {freed}; the worker's undo reported ending it: {}",
            rcu_tests::quiet::reports_containing(&format!(
                "on the worker of domain '{NAME}' forgot scopes or read guards it opened \
                 (depths before Snapshot {{ read_depth: 0, atomic_depth: 0, no_reclaim_depth: \
                 1 }}, after Snapshot {{ read_depth: 1, atomic_depth: 0, no_reclaim_depth: 1 \
                 }}; 1 read section(s) ended)"
            )) == 1
        );
    }
    assert!(!dropped.load(Ordering::SeqCst));
    assert_eq!(loaded.value(), 42);
}
