//! Red team, round 2 (fork repair, `worker_thread::WORKER_OF`; fixed: the mark is cleared
//! before the worker gives up its reference): the thread-local that tells the child handler
//! "the forking thread is this domain's worker" was set when a worker started and never
//! cleared. A dropped domain's worker frees the state itself when it holds
//! the last reference, then its thread exits, running thread-local destructors, user ones
//! included (one a callback set on the worker). From there on `WORKER_OF` dangles; a domain
//! created meanwhile can get the same address (here the destructor creates it, on the same
//! thread, so on the same malloc arena). A fork from that destructor then makes the child
//! handler take the new domain for "the forking thread's own": its worker is neither reset
//! nor restarted (`reset_after_fork(worker_here)`, `restart_threads`), although its real
//! worker is another thread that does not exist in the child. The child has no worker for
//! it: nothing collects, and `rcu_barrier` never returns.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::fork::{raw_eprint, reap, ChildEnd};
use rcu_tests::thread_name;

static CHILD: AtomicI32 = AtomicI32::new(0);
static ON_WORKER: AtomicBool = AtomicBool::new(false);
static RAN: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicBool = AtomicBool::new(false);
static D2_READY: AtomicBool = AtomicBool::new(false);
static D2: OnceLock<Domain> = OnceLock::new();

struct ForkOnExit;

impl Drop for ForkOnExit {
    fn drop(&mut self) {
        // The first domain's worker, exiting: its state was freed by this thread. The main
        // thread now creates a second domain (on the malloc arena the first was allocated
        // from, so it usually gets the freed address) and starts its worker.
        FREED.store(true, Ordering::SeqCst);
        let start = Instant::now();
        while D2.get().is_none() || !D2_READY.load(Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(10) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let d2 = D2.get().unwrap();
        // SAFETY: the child uses rcu-core, allocation and raw writes, then `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid != 0 {
            CHILD.store(pid, Ordering::SeqCst);
            return;
        }
        // The child: this thread only.
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(10));
            raw_eprint("child: rcu_barrier on the new domain hung 10 s (no worker)\n");
            // SAFETY: ends the child.
            unsafe { libc::_exit(3) };
        });
        let ctx = Sleepable::enter();
        d2.call_rcu_fn(&ctx, |_| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        d2.rcu_barrier(&ctx);
        let code = i32::from(RAN.load(Ordering::SeqCst) != 1);
        if code != 0 {
            raw_eprint("child: the new domain's barrier returned before its callback ran\n");
        }
        // SAFETY: ends the child.
        unsafe { libc::_exit(code) };
    }
}

thread_local! {
    static ON_EXIT: RefCell<Option<ForkOnExit>> = const { RefCell::new(None) };
}

#[test]
#[cfg_attr(
    rcu_sanitizer = "thread",
    ignore = "ThreadSanitizer cannot start threads in the child of a multi-threaded fork"
)]
fn a_fork_from_an_exited_workers_destructor_leaves_other_domains_a_worker() {
    let ctx = Sleepable::enter();
    let d1 = Arc::new(Domain::new(DomainConfig::new().name("stale-1")));
    // Control (RED2_CONTROL=1): a parked thread stays registered with the first domain, so
    // its registration's `Weak` keeps the freed state's allocation, and the second domain
    // gets another address: then the child passes.
    let (parked_tx, parked_rx) = std::sync::mpsc::channel::<()>();
    let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
    let parked = std::env::var_os("RED2_CONTROL").is_some().then(|| {
        let d1 = Arc::clone(&d1);
        std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            d1.register_current_thread(&ctx);
            drop(d1);
            parked_tx.send(()).unwrap();
            let _ = end_rx.recv();
        })
    });
    if parked.is_some() {
        parked_rx.recv().unwrap();
    }
    // Used from a thread that exits first: a live thread's registration (a `Weak`) would
    // keep the state's allocation, and so its address, taken.
    let d1 = std::thread::spawn(move || {
        let ctx = Sleepable::enter();
        d1.call_rcu_fn(&ctx, |_| {
            ON_WORKER.store(thread_name().starts_with("rcu-gp-stale-1"), Ordering::SeqCst);
            ON_EXIT.with(|e| *e.borrow_mut() = Some(ForkOnExit));
        });
        d1.rcu_barrier(&ctx);
        d1
    })
    .join()
    .unwrap();
    assert!(ON_WORKER.load(Ordering::SeqCst), "the callback ran on the worker");
    drop(d1); // the worker exits once it holds the last reference, and frees the state
    let start = Instant::now();
    while !FREED.load(Ordering::SeqCst) {
        assert!(start.elapsed() < Duration::from_secs(60), "the worker never exited");
        std::thread::sleep(Duration::from_millis(1));
    }
    let d2 = D2.get_or_init(|| Domain::new(DomainConfig::new().name("stale-2")));
    d2.call_rcu_fn(&ctx, |_| {});
    d2.rcu_barrier(&ctx); // its worker runs
    D2_READY.store(true, Ordering::SeqCst);

    let start = Instant::now();
    while CHILD.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the worker never exited");
        std::thread::sleep(Duration::from_millis(1));
    }
    let end = reap(CHILD.load(Ordering::SeqCst), Duration::from_secs(30));
    assert_ne!(end, ChildEnd::Hung, "child hung past its own watchdog");
    drop(end_tx);
    if let Some(parked) = parked {
        parked.join().unwrap();
    }
    if let ChildEnd::Died(status) = end {
        panic!("child died: status {status:#x}");
    }
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "the child's barrier on a domain created after the fork-time worker's domain was freed \
         failed (see its message)"
    );
}
