//! Red team, issue 25 (SRCU), suspicion 2: a signal handler (mimicked with
//! `Atomic::assume`, as `signals.rs` does) that runs a borrowed section of a sleepable
//! domain, makes and ends an owned guard, and ends an owned guard the interrupted thread made
//! and stashed, on a thread interrupted anywhere in its own `lock`, `unlock`, `lock_owned`,
//! nested sections and owned-guard drops; a writer replaces an `RcuCell`'s value and leads
//! grace periods throughout, a poller advances them.
//!
//! Checked: no value loaded under a section (the thread's or the handler's) is freed while
//! it is open; once the signals stop and every guard is dropped, a grace period completes
//! (no increment lost: a lost unlock would hang it, a lost lock could free early); every
//! value is freed once after `srcu_barrier`. Signals stop before the thread exits (a
//! handler that uses the runtime during the thread's exit is out of scope here).
//!
//! An exploration (the interrupted points are whatever the signals hit), bounded by `RUN`
//! per flavour; held at the time of writing (see the report for the counts).
#![cfg(not(loom))]
#![cfg(not(rcu_sanitizer = "thread"))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Fast, Plain, SrcuFlavor, SrcuOwnedGuard, SrcuStruct, Unbranded};
use rcu_tests::drop_log::{DropLog, Tracked};

const RUN: Duration = Duration::from_secs(3);
const WATCHDOG: Duration = Duration::from_secs(30);

/// The statics one flavour's handler uses.
struct World<F: SrcuFlavor> {
    srcu: OnceLock<SrcuStruct<F>>,
    cell: OnceLock<RcuCell<Tracked>>,
    log: OnceLock<&'static DropLog>,
    stash: Mutex<Option<SrcuOwnedGuard<'static, F, Unbranded>>>,
    violations: AtomicU64,
    handled: AtomicU64,
    active: AtomicBool,
}

impl<F: SrcuFlavor> World<F> {
    const fn new() -> Self {
        World {
            srcu: OnceLock::new(),
            cell: OnceLock::new(),
            log: OnceLock::new(),
            stash: Mutex::new(None),
            violations: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            active: AtomicBool::new(false),
        }
    }
}

static FAST: World<Fast> = World::new();
static PLAIN: World<Plain> = World::new();

fn handle<F: SrcuFlavor>(w: &'static World<F>) {
    if !w.active.load(Ordering::SeqCst) {
        return;
    }
    let saved = rcu_tests::errno::get();
    // SAFETY: (1) dropped before the handler returns and not leaked; (2) the scopes opened
    // from it are dropped before it.
    let mut atomic = unsafe { Atomic::assume() };
    let (srcu, cell, log) = (w.srcu.get().unwrap(), w.cell.get().unwrap(), *w.log.get().unwrap());
    {
        let g = srcu.read_lock(&mut atomic);
        let id = cell.load(&g).id();
        if log.is_freed(id) {
            w.violations.fetch_add(1, Ordering::SeqCst);
        }
        drop(g);
    }
    let o = srcu.down_read(&atomic);
    let id = cell.load(&o).id();
    if log.is_freed(id) {
        w.violations.fetch_add(1, Ordering::SeqCst);
    }
    drop(o);
    // The interrupted thread's stashed owned guard, ended here (skipped if it holds the lock).
    if let Ok(mut stash) = w.stash.try_lock() {
        drop(stash.take());
    }
    drop(atomic);
    w.handled.fetch_add(1, Ordering::Relaxed);
    rcu_tests::errno::set(saved);
}

extern "C" fn on_sigusr1(_: libc::c_int) {
    handle(&FAST);
}

extern "C" fn on_sigusr2(_: libc::c_int) {
    handle(&PLAIN);
}

fn run<F: SrcuFlavor>(
    w: &'static World<F>,
    signal: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) {
    let srcu = w
        .srcu
        .get_or_init(|| SrcuStruct::new(DomainConfig::new().name(format!("rt25-sig-{}", F::NAME))));
    srcu.set_stall_timeout(Duration::from_secs(3600));
    let log = *w.log.get_or_init(|| DropLog::new(3_000_000));
    let cell = w.cell.get_or_init(|| RcuCell::new_in(srcu, log.track()));
    rcu_tests::install_signal_handler(signal, handler);
    let stop = AtomicBool::new(false);
    let sections = AtomicU64::new(0);

    std::thread::scope(|s| {
        let (target_tx, target_rx) = mpsc::channel();
        let stop = &stop;
        let sections = &sections;
        let victim = s.spawn(move || {
            let mut ctx = Sleepable::enter();
            srcu.register_current_thread(&ctx);
            // SAFETY: pthread_self has no preconditions.
            target_tx.send(unsafe { libc::pthread_self() }).unwrap();
            w.active.store(true, Ordering::SeqCst);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                {
                    let mut g = srcu.read_lock(&mut ctx);
                    let id = cell.load(&g).id();
                    if n % 4 == 0 {
                        let inner = srcu.read_lock(g.ctx_mut());
                        let id2 = cell.load(&inner).id();
                        if log.is_freed(id2) {
                            w.violations.fetch_add(1, Ordering::SeqCst);
                        }
                        drop(inner);
                    }
                    if log.is_freed(id) {
                        w.violations.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let o = srcu.down_read(&ctx);
                if log.is_freed(cell.load(&o).id()) {
                    w.violations.fetch_add(1, Ordering::SeqCst);
                }
                if n % 2 == 0 {
                    *w.stash.lock().unwrap() = Some(o); // drops the one stashed before
                } else {
                    drop(o);
                }
                sections.fetch_add(1, Ordering::Relaxed);
            }
            // No signal after this: the thread goes on to exit.
            w.active.store(false, Ordering::SeqCst);
            drop(w.stash.lock().unwrap().take());
        });
        let target = target_rx.recv().unwrap();
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `target` is the victim's pthread, alive until it is joined (after
                // `stop`, which this loop checks first).
                let rc = unsafe { libc::pthread_kill(target, signal) };
                assert_eq!(rc, 0);
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        s.spawn(move || {
            let ctx = Sleepable::enter();
            while !stop.load(Ordering::Relaxed) {
                let c = srcu.start_poll_synchronize_srcu(&ctx);
                while !srcu.poll_state_synchronize_srcu(c) && !stop.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
            }
        });
        let ctx = Sleepable::enter();
        let start = Instant::now();
        let mut i = 0u64;
        while start.elapsed() < RUN {
            cell.set(&ctx, log.track());
            i += 1;
            if i % 16 == 0 {
                srcu.synchronize_srcu(&ctx);
            }
        }
        stop.store(true, Ordering::SeqCst);
        victim.join().unwrap();
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ctx = Sleepable::enter();
        srcu.synchronize_srcu(&ctx);
        srcu.srcu_barrier(&ctx);
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(WATCHDOG).is_ok(),
        "a grace period hangs after every guard ended: an increment was lost"
    );
    let v = w.violations.load(Ordering::SeqCst);
    eprintln!(
        "{}: {} sections on the victim, {} handler runs, {} writes, {v} violations",
        F::NAME,
        sections.load(Ordering::Relaxed),
        w.handled.load(Ordering::Relaxed),
        log.allocated()
    );
    assert_eq!(v, 0, "a value was freed under an open section");
    log.assert_no_double_free();
    assert_eq!(log.freed(), log.allocated() - 1);
}

#[test]
fn fast_handler_sections_and_owned_guard_ends_lose_nothing() {
    run(&FAST, libc::SIGUSR1, on_sigusr1);
}

#[test]
fn plain_handler_sections_and_owned_guard_ends_lose_nothing() {
    run(&PLAIN, libc::SIGUSR2, on_sigusr2);
}
