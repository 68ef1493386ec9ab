//! Red team (SRCU S2): `force_end_borrowed` was a load of `lock[i]` then a store to
//! `unlock[i]`, two instructions on the owner's thread. A handler that ran a whole borrowed
//! section on the same slot between them had its `unlock` increment overwritten by the stale
//! store: `lock[i] - unlock[i]` stayed 1 for ever, and every later `drained(i)` was false
//! although every section had ended (a grace period hangs). It failed within 25 ms; it is
//! now a compare-and-swap that reads `unlock` first, and this checks it for 5 s.
//!
//! The owner loops `force_end_borrowed` (idempotent while no section is open, so the loop is
//! legal use; each call stands for one thread exit, and the loop stops at the first loss,
//! since the next call would repair it) while a second thread sends it SIGUSR2 as fast as it can; the handler runs one
//! borrowed section on the slot. After signals stop, every section has ended, so the slot must
//! drain on both indices.
#![cfg(not(loom))]
#![cfg(not(rcu_sanitizer = "thread"))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};

static INDEX: SrcuIndex = SrcuIndex::new();
static SLOT: SrcuCounters = SrcuCounters::new();
static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_signo: libc::c_int) {
    // A whole borrowed section on the interrupted thread's own slot.
    let idx = SLOT.lock(&INDEX);
    SLOT.unlock(idx);
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn a_handler_section_during_force_end_borrowed_keeps_its_unlock() {
    rcu_core::raw::barrier::init();
    rcu_tests::install_signal_handler(libc::SIGUSR2, on_signal);
    // SAFETY: pthread_self has no preconditions.
    let owner = unsafe { libc::pthread_self() } as usize;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the owner thread outlives this loop (it joins us).
                unsafe { libc::pthread_kill(owner as libc::pthread_t, libc::SIGUSR2) };
                sent += 1;
            }
            sent
        })
    };
    let start = Instant::now();
    let mut iters = 0u64;
    let mut lost_at = None;
    'outer: while start.elapsed() < Duration::from_secs(5) {
        for _ in 0..10_000 {
            SLOT.force_end_borrowed();
            iters += 1;
            // A real loss leaves lock - unlock == 1 (the next force_end_borrowed would repair
            // it, so look after each call; at thread exit there is no next call). A handler
            // running between open_borrowed's two loads reads as u64::MAX, never as 1.
            if SLOT.open_borrowed() == 1 && SLOT.open_borrowed() == 1 {
                lost_at = Some(start.elapsed());
                break 'outer;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // Block the signal and let pending ones drain: none is in flight once blocked.
    // SAFETY: plain sigset manipulation on this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let open = SLOT.open_borrowed();
    let d0 = drained([&SLOT], 0);
    let d1 = drained([&SLOT], 1);
    eprintln!(
        "force_end_borrowed iterations {iters}, signals sent {sent}, handled {}, \
         open_borrowed after all sections ended: {open} (lost at {lost_at:?}); \
         drained(0)={d0} drained(1)={d1}",
        HANDLED.load(Ordering::Relaxed)
    );
    assert_eq!(
        open, 0,
        "a handler's section was counted as begun but its end was overwritten by \
         force_end_borrowed's stale store: the index never drains (grace period hang)"
    );
    assert!(d0 && d1);
}
