//! Red team, issue 25 (SRCU), suspicion 7: guards whose drop runs at thread exit, from a
//! `thread_local!` destructor, against the end of the thread's registration (the pthread
//! key destructor, which glibc runs after `__call_tls_dtors`).
//!
//! 1. A borrowed guard (of a leaked root) kept in a `thread_local!`: its destructor ends the
//!    section before the registration ends, so no section is left open or abandoned;
//! 2. an owned guard kept in a `thread_local!`: likewise;
//! 3. a `thread_local!` destructor that takes a root, enters a borrowed section (the thread's
//!    first use of the domain: it registers from the destructor) and forgets the guard, then
//!    drops the root: the registration ends after it, with no root live, and ends the
//!    section.
//!
//! After each thread is joined a grace period completes and the value loaded under the
//! guard was not freed before the guard's end. Deterministic; held at the time of writing.
#![cfg(not(loom))]

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, Fast, SrcuGuard, SrcuOwnedGuard, SrcuStruct, Unbranded};

const WATCHDOG: Duration = Duration::from_secs(20);

static SRCU: OnceLock<SrcuStruct> = OnceLock::new();

fn srcu() -> &'static SrcuStruct {
    SRCU.get_or_init(|| {
        let s = SrcuStruct::new(DomainConfig::new().name("rt25-tls"));
        s.set_stall_timeout(Duration::from_secs(3600));
        s
    })
}

/// A value whose drop during a section would be a use-after-free.
struct Watched(&'static AtomicBool);
impl Drop for Watched {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

static CELL: OnceLock<RcuCell<Watched>> = OnceLock::new();
static FREED_0: AtomicBool = AtomicBool::new(false);
static FREED_1: AtomicBool = AtomicBool::new(false);

fn cell() -> &'static RcuCell<Watched> {
    CELL.get_or_init(|| RcuCell::new_in(srcu(), Watched(&FREED_0)))
}

/// A grace period of the domain completes within the watchdog.
fn gp_completes() -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        srcu().synchronize_srcu(&Sleepable::enter());
        let _ = tx.send(());
    });
    rx.recv_timeout(WATCHDOG).is_ok()
}

thread_local! {
    static BORROWED: RefCell<Option<SrcuGuard<'static, Fast, Unbranded, Sleepable>>> =
        const { RefCell::new(None) };
    static OWNED: RefCell<Option<SrcuOwnedGuard<'static, Fast, Unbranded>>> =
        const { RefCell::new(None) };
}

struct EntersInDrop;
impl Drop for EntersInDrop {
    fn drop(&mut self) {
        let mut root = Sleepable::enter();
        core::mem::forget(srcu().read_lock(&mut root));
        drop(root);
    }
}

thread_local! {
    static ENTERS_IN_DROP: RefCell<Option<EntersInDrop>> = const { RefCell::new(None) };
}

#[test]
fn guards_ended_by_thread_local_destructors_leave_nothing_open() {
    rcu_tests::quiet::quiet_reports("rt25-tls");
    let _ = cell();
    // 1 and 2, and a retire under them.
    let (loaded_tx, loaded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let root: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
        let g = srcu().read_lock(root);
        let _ = cell().load(&g);
        BORROWED.with(|b| *b.borrow_mut() = Some(g));
        let o = srcu().down_read(&Sleepable::enter());
        OWNED.with(|b| *b.borrow_mut() = Some(o));
        loaded_tx.send(()).unwrap();
        let _ = go_rx.recv();
        // Exits: the thread-locals' destructors drop the guards.
    });
    loaded_rx.recv().unwrap();
    let ctx = Sleepable::enter();
    cell().set(&ctx, Watched(&FREED_1));
    std::thread::sleep(Duration::from_millis(50));
    let early = FREED_0.load(Ordering::SeqCst);
    go_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(!early, "the value was freed while the thread-local guards held it");
    assert!(gp_completes(), "a grace period hangs after the thread-local guards' thread exited");
    srcu().srcu_barrier(&ctx);
    assert!(FREED_0.load(Ordering::SeqCst), "the retired value was never freed");
    assert_eq!(srcu().stats().leaked_read_sections, 0, "{:?}", srcu().stats());

    // 3: a destructor that registers, enters and forgets.
    std::thread::spawn(|| ENTERS_IN_DROP.with(|e| *e.borrow_mut() = Some(EntersInDrop)))
        .join()
        .unwrap();
    assert!(
        gp_completes(),
        "a grace period hangs after a thread-local destructor forgot a borrowed guard with no \
         root left"
    );
    assert_eq!(srcu().stats().leaked_read_sections, 1, "{:?}", srcu().stats());
}
