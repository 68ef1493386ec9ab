//! Red team, round 6 (`NoReclaimRoot`): a signal handler against the root counters.
//!
//! Suspicion: the thread's root counts (`live_roots`, `no_reclaim_roots`, rcu-ctx
//! `depths.rs`) are plain `Cell`s updated by a load and a store, and a signal handler on the
//! thread may change them for good: the interrupted code need only be outside every scope
//! for the handler to take a root (`Sleepable::enter()` or `NoReclaimRoot::enter()`, safe
//! code; `signals_bracket.rs` does the former in a handler) and keep it. A `NoReclaimRoot`'s
//! drop ends its no-reclaim scope first (`exit_no_reclaim`), then uncounts the root
//! (`exit_root`: load, store) and the no-reclaim root (load, store): a handler that lands
//! between one of those loads and its store, and keeps the root it takes, has its count
//! overwritten by the stale store. `live_roots()` then reads one less than the roots alive,
//! against its contract ("it can never read 0 while a root lives"), and the thread-exit
//! rule built on it (`registration::end`: with `live_roots() == 0` a section left open is
//! taken for a forgotten guard and ended) ends the section of a guard borrowed from a live,
//! leaked root: the value read through it is freed under a `'static` reference (DESIGN
//! §5.1: "Safe code can never reach freed memory through a reference it loaded").
//!
//! Mechanism: a thread loops `drop(NoReclaimRoot::enter())`; another sends it signals. The
//! handler acts only where it sees the drop's window (no scope open, `no_reclaim_roots() ==
//! 1`), where the interrupted code neither allocates nor holds anything: it takes a root and
//! keeps it in a thread-local list (`Box`, so the thread can drop it later). After each drop
//! the thread checks its counts against the roots alive. The `Sleepable` variant shows that
//! `exit_root` had the window before `NoReclaimRoot` (`Sleepable`'s own drop).
//!
//! Held at a871f3f (all three tests failed 20 runs of 20, within a few hundred signals).
//! Fixed: the root counts are atomics changed by one read-modify-write each
//! (`depths::count_in`, `count_out`), which a handler cannot split.
//!
//! The handler's `unsafe` is only `sigaction`/`pthread_kill` and errno; its body is safe.
//! Alone in its file: it owns `SIGUSR2`.
#![cfg(not(loom))]
// ThreadSanitizer defers signals to its own safe points: the handler would never land in
// the windows this looks for.
#![cfg(not(rcu_sanitizer = "thread"))]

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Mutex, Once};
use std::time::{Duration, Instant};

use common::{wait_until, Canary, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::thread_state::{live_roots, no_reclaim_roots, snapshot, Snapshot};
use rcu_core::{DomainConfig, ReadGuard};

/// How long a variant looks for a lost count before it says the suspicion did not hold (the
/// defect showed within a few hundred signals, well under a second).
const SEARCH: Duration = Duration::from_secs(2);

const OFF: u8 = 0;
/// Inside a `NoReclaimRoot`'s drop, before `exit_root`'s store: keep a `Sleepable`.
const SLEEPABLE_IN_NR_DROP: u8 = 1;
/// Inside a `NoReclaimRoot`'s drop, after `exit_root`: keep a `NoReclaimRoot`.
const NR_IN_NR_DROP: u8 = 2;
/// Anywhere (the thread only takes and drops `Sleepable` roots): keep a `Sleepable`.
const SLEEPABLE_ANYWHERE: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(OFF);
static RUNS: AtomicU64 = AtomicU64::new(0);
static KEPT_ROOTS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The root the handler keeps, until the interrupted thread takes it. Touched first by
    /// the thread itself (`arm`), so that the handler never registers its destructor.
    static KEPT: RefCell<Option<Sleepable>> = const { RefCell::new(None) };
    static KEPT_NR: RefCell<Option<NoReclaimRoot>> = const { RefCell::new(None) };
}

static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn on_sigusr2(_signal: libc::c_int) {
    // SAFETY: this thread's errno, saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    RUNS.fetch_add(1, Ordering::SeqCst);
    handle();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The handler's body: safe code, no allocation, no lock (thread-local cells and the
/// roots' own counters). It keeps a root only where the interrupted code is outside every
/// scope, so that taking it is allowed (`Sleepable::enter()` and `NoReclaimRoot::enter()`
/// check it).
fn handle() {
    let mode = MODE.load(Ordering::SeqCst);
    if mode == OFF || snapshot() != Snapshot::default() {
        return;
    }
    match mode {
        // The drop's window before `exit_root`'s store: the root still counted.
        SLEEPABLE_IN_NR_DROP if no_reclaim_roots() == 1 && live_roots() == 1 => keep_sleepable(),
        // After `exit_root`, before the no-reclaim root's store.
        NR_IN_NR_DROP if no_reclaim_roots() == 1 && live_roots() == 0 => {
            let _ = KEPT_NR.try_with(|k| {
                if let Ok(mut k) = k.try_borrow_mut() {
                    if k.is_none() {
                        *k = Some(NoReclaimRoot::enter());
                        KEPT_ROOTS.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        SLEEPABLE_ANYWHERE => keep_sleepable(),
        _ => {}
    }
}

fn keep_sleepable() {
    let _ = KEPT.try_with(|k| {
        if let Ok(mut k) = k.try_borrow_mut() {
            if k.is_none() {
                *k = Some(Sleepable::enter());
                KEPT_ROOTS.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}

fn install_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        rcu_tests::install_signal_handler(libc::SIGUSR2, on_sigusr2);
    });
}

/// Runs `body` on the calling thread in `mode` while another thread sends it `SIGUSR2`.
fn under_signals<R>(mode: u8, body: impl FnOnce() -> R) -> R {
    // The thread-locals' destructors are registered here, not in the handler.
    KEPT.with(|k| assert!(k.borrow().is_none()));
    KEPT_NR.with(|k| assert!(k.borrow().is_none()));
    // SAFETY: no preconditions.
    let target = unsafe { libc::pthread_self() };
    let done = AtomicBool::new(false);
    let runs = RUNS.load(Ordering::SeqCst);
    let (r, sent) = std::thread::scope(|s| {
        let done = &done;
        let sender = s.spawn(move || {
            let mut sent = 0u64;
            while !done.load(Ordering::SeqCst) {
                // SAFETY: `target` is joined after this thread (scope), so alive.
                assert_eq!(unsafe { libc::pthread_kill(target, libc::SIGUSR2) }, 0);
                sent += 1;
                let runs = RUNS.load(Ordering::SeqCst);
                let spin = Instant::now();
                while RUNS.load(Ordering::SeqCst) == runs
                    && spin.elapsed() < Duration::from_micros(50)
                {
                    std::hint::spin_loop();
                }
                if RUNS.load(Ordering::SeqCst) == runs {
                    std::thread::yield_now();
                }
            }
            sent
        });
        MODE.store(mode, Ordering::SeqCst);
        let r = body();
        MODE.store(OFF, Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        (r, sender.join().unwrap())
    });
    println!(
        "mode {mode}: {sent} signals sent, handler ran {} times, kept {} roots so far",
        RUNS.load(Ordering::SeqCst) - runs,
        KEPT_ROOTS.load(Ordering::SeqCst)
    );
    r
}

/// Loops `drop(take())` under signals in `mode`; after each, if the handler kept a root,
/// checks the counts with it alive (`counted`): on a mismatch, returns the kept root and
/// what was seen; otherwise drops it and goes on, for at most `SEARCH`.
fn search<T, K: 'static>(
    mode: u8,
    take: impl Fn() -> T,
    kept: &'static std::thread::LocalKey<RefCell<Option<K>>>,
    counted: (u32, u32, u32),
) -> Option<(K, (u32, u32, u32))> {
    under_signals(mode, || {
        let start = Instant::now();
        while start.elapsed() < SEARCH {
            drop(take());
            // The handler rests while the kept root is checked: one it kept meanwhile would
            // be counted, rightly, on top of the one in hand.
            MODE.store(OFF, Ordering::SeqCst);
            let kept = kept.with(|k| k.borrow_mut().take());
            let seen = (live_roots(), no_reclaim_roots(), snapshot().no_reclaim_depth);
            match kept {
                Some(root) if seen != counted => return Some((root, seen)),
                Some(root) => drop(root),
                None => {}
            }
            MODE.store(mode, Ordering::SeqCst);
        }
        None
    })
}

/// The `roots` count of a `NoReclaimRoot`'s drop, and what the thread-exit rule does with
/// it: a guard borrowed from a live root, leaked, outlives the section it needs.
#[test]
fn a_root_kept_by_a_handler_inside_a_no_reclaim_roots_drop_stays_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_handler();
    rcu_tests::quiet::quiet_reports("exited inside 1 read section(s) of domain 'red6-sig-roots'");
    let domain: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name("red6-sig-roots"))));
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    let (tx, rx) = mpsc::channel::<Option<&'static Canary>>();
    let thread = std::thread::Builder::new()
        .name("red6-sig-target".into())
        .spawn(move || {
            let found = search(SLEEPABLE_IN_NR_DROP, NoReclaimRoot::enter, &KEPT, (1, 0, 0));
            let Some((root, seen)) = found else {
                println!("no lost root count within {SEARCH:?}");
                tx.send(None).unwrap();
                return;
            };
            println!("a kept root alive, counts (roots, no-reclaim roots, depth): {seen:?}");
            assert_eq!(live_roots(), 0);
            // The root, leaked, lends a `'static` guard; what it reads is `'static` too.
            let root: &'static mut Sleepable = Box::leak(Box::new(root));
            let guard: &'static ReadGuard<'static> = Box::leak(Box::new(domain.read_lock(root)));
            tx.send(Some(cell.load(guard))).unwrap();
            // Exits with the section open and its root alive (leaked).
        })
        .unwrap();
    let read = rx.recv().unwrap();
    thread.join().unwrap();
    let Some(read) = read else {
        return; // the suspicion did not hold within the search
    };
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(7).0);
    let cookie = domain.start_poll(&ctx);
    // The section must hold this grace period for ever; a few seconds stand for that.
    let completed = wait_until(Duration::from_secs(5), || domain.poll(cookie));
    let freed = completed && wait_until(PATIENCE, || dropped.load(Ordering::SeqCst));
    assert!(
        !completed && !freed,
        "a grace period completed (value freed: {freed}) while a guard borrowed from a live \
         (leaked) root was alive, with a reference read through it: the thread's exit ended \
         its section because live_roots() read 0"
    );
    assert_eq!(read.value(), 42);
}

/// The `no_reclaim_roots` count of a `NoReclaimRoot`'s drop: a `NoReclaimRoot` the handler
/// keeps is uncounted, so the thread is left work (`keeps_work()`) while it lives.
#[test]
fn a_no_reclaim_root_kept_by_a_handler_inside_a_no_reclaim_roots_drop_stays_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_handler();
    let outcome = std::thread::spawn(|| {
        // The control: frees under a counted root leave the thread nothing owed.
        {
            let root = NoReclaimRoot::enter();
            for i in 0..2_000u64 {
                kvfree_rcu(&root, Rcu::boxed(i));
            }
            assert!(!rcu_ctx::owed::is_owed(), "frees under a counted root left work owed");
        }
        let (root, seen) = search(NR_IN_NR_DROP, NoReclaimRoot::enter, &KEPT_NR, (1, 1, 1))?;
        // Frees under the uncounted root, on the global domain: a few blocks' worth.
        for i in 0..2_000u64 {
            kvfree_rcu(&root, Rcu::boxed(i));
        }
        let owed = rcu_ctx::owed::is_owed();
        drop(root);
        Some((seen, owed))
    })
    .join()
    .unwrap();
    if let Some((seen, owed)) = outcome {
        panic!(
            "a NoReclaimRoot alive but uncounted: (roots, no-reclaim roots, depth) = {seen:?}; \
             frees under it left the thread work owed: {owed}"
        );
    }
}

/// Attribution: `Sleepable`'s own `enter`/`drop` (`enter_root`, `exit_root`) have the window
/// too, before `NoReclaimRoot`.
#[test]
fn a_root_kept_by_a_handler_inside_a_sleepables_enter_or_drop_stays_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_handler();
    let seen = std::thread::spawn(|| {
        search(SLEEPABLE_ANYWHERE, Sleepable::enter, &KEPT, (1, 0, 0)).map(|(root, seen)| {
            drop(root);
            seen
        })
    })
    .join()
    .unwrap();
    assert!(
        seen.is_none(),
        "a root alive but uncounted: (roots, no-reclaim roots, depth) = {seen:?}"
    );
}
