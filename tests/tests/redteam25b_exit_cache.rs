//! Red team 25b, suspicion 4: thread exit while `FoundCache` names a private domain, and
//! `thread_local!` destructors that read private domains at exit.
//!
//! A thread reads a classic private domain `D` and a sleepable one `S` (the cache names the
//! last one), then exits. Its `thread_local!` destructor (run by glibc's `__call_tls_dtors`,
//! before the pthread key destructor that ends the registrations) enters a section of `D`,
//! then one of `S`, each through the cache or a walk of the list, and waits inside while
//! the test checks from another thread that a grace period of that domain does not complete
//! during `HOLD`, then lets it go (the grace period must then complete). A second thread
//! never reads either domain before its destructor does: it registers from the destructor
//! (arming the exit hook there).
//!
//! After each exit, the registrations ended: the domains count no more readers than before
//! the thread started, no section was left open (`leaked_read_sections` stays 0), and a new
//! thread, which may reuse the dead thread's slots and thread-local block, is counted by a
//! grace period in the same way. Deterministic; held at the time of writing.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};

const HOLD: Duration = Duration::from_millis(150);
const PATIENCE: Duration = Duration::from_secs(60);

static D: OnceLock<Domain> = OnceLock::new();
static S: OnceLock<SrcuStruct> = OnceLock::new();
/// 0: nothing; 1: the exiting thread is inside a section of D; 2: the test let it go;
/// 3: inside a section of S; 4: let go.
static PHASE: AtomicU32 = AtomicU32::new(0);

fn d() -> &'static Domain {
    D.get_or_init(|| Domain::new(DomainConfig::new().name("rt25b-exit-D")))
}

fn s() -> &'static SrcuStruct {
    S.get_or_init(|| SrcuStruct::new(DomainConfig::new().name("rt25b-exit-S")))
}

fn wait_phase(p: u32) {
    let start = Instant::now();
    while PHASE.load(Ordering::SeqCst) != p {
        assert!(start.elapsed() < PATIENCE, "phase {p} never came");
        std::thread::yield_now();
    }
}

/// Reads D then S at thread exit, waiting inside each section for the test's check.
struct ExitReader;

impl Drop for ExitReader {
    fn drop(&mut self) {
        let mut ctx = Sleepable::enter();
        {
            let _g = d().read_lock(&mut ctx);
            PHASE.store(1, Ordering::SeqCst);
            wait_phase(2);
        }
        {
            let _g = s().read_lock(&mut ctx);
            PHASE.store(3, Ordering::SeqCst);
            wait_phase(4);
        }
    }
}

thread_local! {
    static EXIT_READER: std::cell::RefCell<Option<ExitReader>> = const { std::cell::RefCell::new(None) };
}

/// Checks, while the exiting thread is inside a section (phase `inside`), that a grace period
/// of that domain does not complete, then lets the thread go (`inside + 1`) and checks that
/// it completes.
fn check_section_counted(inside: u32, gp: fn()) {
    wait_phase(inside);
    let done = &*Box::leak(Box::new(AtomicBool::new(false)));
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        gp();
        done.store(true, Ordering::SeqCst);
        let _ = tx.send(());
    });
    std::thread::sleep(HOLD);
    assert!(
        !done.load(Ordering::SeqCst),
        "a grace period completed while the exiting thread was inside a section (phase {inside})"
    );
    PHASE.store(inside + 1, Ordering::SeqCst);
    assert!(rx.recv_timeout(PATIENCE).is_ok(), "the grace period hung after the section ended");
    waiter.join().unwrap();
}

fn sync_d() {
    d().synchronize_rcu(&Sleepable::enter());
}

fn sync_s() {
    s().synchronize_srcu(&Sleepable::enter());
}

fn run_exiting_thread(reads_first: bool) {
    PHASE.store(0, Ordering::SeqCst);
    let (d_before, s_before) = (d().stats().readers, s().stats().readers);
    let t = std::thread::spawn(move || {
        if reads_first {
            let mut ctx = Sleepable::enter();
            drop(d().read_lock(&mut ctx));
            drop(s().read_lock(&mut ctx)); // the cache names S
            drop(s().read_lock(&mut ctx));
        }
        EXIT_READER.with(|r| *r.borrow_mut() = Some(ExitReader));
    });
    check_section_counted(1, sync_d);
    check_section_counted(3, sync_s);
    t.join().unwrap();
    assert_eq!(d().stats().readers, d_before, "the exited thread is still registered with D");
    assert_eq!(s().stats().readers, s_before, "the exited thread is still registered with S");
    assert_eq!(d().stats().leaked_read_sections, 0);
    assert_eq!(s().stats().leaked_read_sections, 0);
}

#[test]
fn sections_at_thread_exit_are_counted_and_registrations_end() {
    // Registered beforehand, so the test thread's own registrations are in the baseline.
    let ctx = Sleepable::enter();
    d().register_current_thread(&ctx);
    s().register_current_thread(&ctx);
    // The workers have registered once a barrier (which they serve) has returned.
    d().rcu_barrier(&ctx);
    s().srcu_barrier(&ctx);
    drop(ctx);
    for round in 0..4 {
        run_exiting_thread(round % 2 == 0);
    }
}
