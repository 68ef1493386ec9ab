//! Hostile programs around thread exit (DESIGN §5.1): a read section ends when its guard is
//! dropped, or when nothing can reach through it any more; thread-local destructors of any
//! order may use every API; runtime threads never run signal handlers; an unregistered
//! thread's first section in an atomic context never allocates.
//!
//! Every test uses a private domain of its own, except the ones that count the global
//! domain's readers, which take `GLOBAL` so no other test here registers global readers
//! meanwhile. Interleavings are forced with channels; time only bounds waits (`PATIENCE`) or
//! is a window in which something must not happen (`HOLD`).

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use common::{
    assert_holds_for, settled_domain, thread_names, wait_until, Canary, Pending, HOLD, PATIENCE,
};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, FallbackReason, Policy};
use rcu_tests::drop_log::DropLog;
use rcu_tests::{collect_stalls, with_token, TokenKind};

/// Held by the tests that count the global domain's readers or register with it; test
/// threads themselves never register with the global domain (their exit would change the
/// count), only threads they spawn and join.
static GLOBAL: Mutex<()> = Mutex::new(());

fn leaked_domain(name: &str) -> &'static Domain {
    Box::leak(Box::new(Domain::new(DomainConfig::new().name(name.to_owned()))))
}

#[test]
fn a_guard_leaked_with_its_root_keeps_its_section_open_after_the_thread_exits() {
    rcu_tests::quiet::quiet_reports(
        "read section(s) of domain 'leak-root': a ReadGuard was leaked",
    );
    let domain = leaked_domain("leak-root");
    let reports = collect_stalls(domain);
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    let r: &'static Canary = std::thread::Builder::new()
        .name("leak-root".into())
        .spawn(move || {
            let ctx: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
            let guard: &'static ReadGuard<'static> = Box::leak(Box::new(domain.read_lock(ctx)));
            cell.load(guard)
        })
        .unwrap()
        .join()
        .unwrap();
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(7).0);
    let cookie = domain.start_poll(&ctx);
    assert!(
        wait_until(PATIENCE, || reports.with(|r| r
            .iter()
            .any(|rep| rep.leaked_guard && rep.thread_name.as_deref() == Some("leak-root")))),
        "no stall report named the leaked guard"
    );
    assert_holds_for(HOLD, "the leaked section ended", || {
        !domain.poll(cookie) && !dropped.load(Ordering::SeqCst)
    });
    assert_eq!(r.value(), 42);
    assert_eq!(domain.stats().leaked_read_sections, 1);
}

#[test]
fn a_forgotten_guard_whose_roots_were_dropped_ends_at_thread_exit() {
    // Settled: its worker has registered, so the count changes only with this test's thread.
    const REPORT: &str = "read section(s) of domain 'forgotten': a ReadGuard was leaked";
    rcu_tests::quiet::quiet_reports(REPORT);
    let domain = settled_domain(DomainConfig::new().name("forgotten"));
    let readers_before = domain.stats().readers;
    std::thread::spawn({
        let domain = domain.clone();
        move || {
            let mut ctx = Sleepable::enter();
            std::mem::forget(domain.read_lock(&mut ctx));
            // `ctx` is dropped here: nothing borrowed from it is alive.
        }
    })
    .join()
    .unwrap();
    let writer = Pending::spawn("forgotten-writer", {
        let domain = domain.clone();
        move || domain.synchronize_rcu(&Sleepable::enter())
    });
    writer.join("synchronize_rcu after a thread exited with a forgotten guard");
    let stats = domain.stats();
    assert_eq!(stats.leaked_read_sections, 1, "{stats:?}");
    let patience = std::time::Duration::from_secs(5);
    assert!(rcu_tests::quiet::wait_for_reports(REPORT, 1, patience), "the leak was not reported");
    assert_eq!(stats.readers, readers_before, "the exited thread's slot was not released");
}

#[test]
fn a_forgotten_guard_with_a_leaked_root_keeps_holding_grace_periods() {
    // Nothing escaped here, but a leaked root could have lent the guard out: the runtime
    // cannot tell, so it keeps the section (liveness yields to soundness) and says so.
    rcu_tests::quiet::quiet_reports(
        "read section(s) of domain 'forgotten-leaked-root': a ReadGuard was leaked",
    );
    let domain = leaked_domain("forgotten-leaked-root");
    let reports = collect_stalls(domain);
    std::thread::Builder::new()
        .name("leak-forget".into())
        .spawn(move || {
            let ctx: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
            std::mem::forget(domain.read_lock(ctx));
        })
        .unwrap()
        .join()
        .unwrap();
    let cookie = domain.start_poll(&Sleepable::enter());
    assert!(wait_until(PATIENCE, || reports.with(|r| r.iter().any(|r| r.leaked_guard))));
    assert!(!domain.poll(cookie));
}

/// What a guard kept in a user `thread_local!` saw when its destructor read through it.
static TLS_SEEN: AtomicU64 = AtomicU64::new(0);

struct HeldGuard {
    held: Option<(ReadGuard<'static>, &'static Canary)>,
    /// Tells the test the destructor runs, then waits for its go-ahead.
    handshake: Option<(Sender<()>, Receiver<()>)>,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        let Some((guard, value)) = self.held.take() else { return };
        if let Some((tx, rx)) = self.handshake.take() {
            let _ = tx.send(());
            let _ = rx.recv();
        }
        // Relaxed: the test reads it after joining this thread.
        TLS_SEEN.store(value.value(), Ordering::Relaxed);
        drop(guard);
    }
}

thread_local! {
    static HELD: RefCell<HeldGuard> = const { RefCell::new(HeldGuard { held: None, handshake: None }) };
}

/// A guard (from a leaked root) kept in a user `thread_local!` whose destructor reads through
/// it after the thread has started exiting, while the test retires the value it reads and
/// polls the grace period. `tls_first`: the thread-local is touched before the thread's first
/// read section (its destructor then runs after any the runtime registered later).
fn guard_in_a_thread_local(tls_first: bool) {
    let domain = leaked_domain(if tls_first { "tls-first" } else { "tls-after" });
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    let (in_dtor_tx, in_dtor_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    TLS_SEEN.store(0, Ordering::Relaxed);
    let thread = std::thread::spawn(move || {
        if tls_first {
            HELD.with(|_| ());
        }
        let ctx: &'static mut Sleepable = Box::leak(Box::new(Sleepable::enter()));
        let guard = domain.read_lock(ctx);
        let value: &'static Canary = {
            // SAFETY: the reference is only used while `guard` lives: both are moved into
            // the thread-local together and the destructor drops the guard last.
            unsafe { &*(cell.load(&guard) as *const Canary) }
        };
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.held = Some((guard, value));
            h.handshake = Some((in_dtor_tx, go_rx));
        });
    });
    in_dtor_rx.recv_timeout(PATIENCE).expect("the thread-local destructor ran");
    // The thread is exiting; its guard is still alive in the destructor.
    let ctx = Sleepable::enter();
    cell.set(&ctx, Canary::new(7).0);
    let cookie = domain.start_poll(&ctx);
    assert_holds_for(HOLD, "a grace period ended under a guard kept in a thread-local", || {
        !domain.poll(cookie) && !dropped.load(Ordering::SeqCst)
    });
    go_tx.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(TLS_SEEN.load(Ordering::Relaxed), 42, "the destructor read freed memory");
    // The destructor dropped the guard: the section ended normally, nothing is leaked.
    let writer = Pending::spawn("tls-writer", move || domain.synchronize_rcu(&Sleepable::enter()));
    writer.join("synchronize_rcu after the destructor dropped its guard");
    domain.rcu_barrier(&ctx);
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(domain.stats().leaked_read_sections, 0);
}

#[test]
fn a_guard_in_a_thread_local_touched_before_the_first_section_is_honoured() {
    let _one_at_a_time = TLS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    guard_in_a_thread_local(true);
}

#[test]
fn a_guard_in_a_thread_local_touched_after_the_first_section_is_honoured() {
    let _one_at_a_time = TLS_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    guard_in_a_thread_local(false);
}

/// The two thread-local tests share `TLS_SEEN`.
static TLS_TESTS: Mutex<()> = Mutex::new(());

fn drop_it(obj: Box<Rcu<rcu_tests::drop_log::Tracked>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// Every API with every token, as a late destructor would call it.
fn use_everything(domain: &Domain, log: &'static DropLog, headless: &'static DropLog) {
    let mut ctx = Sleepable::enter();
    for kind in TokenKind::ALL {
        with_token!(&mut ctx, domain, kind, |t| {
            domain.kvfree_rcu(t, Rcu::boxed(log.track()));
            domain.call_rcu(t, Rcu::boxed(log.track()), drop_it);
        });
    }
    domain.kvfree_rcu_mightsleep(&ctx, Box::new(headless.track()));
    domain.call_rcu_fn(&ctx, |_| ());
    drop(domain.read_lock(&mut ctx));
    let cookie = domain.start_poll(&ctx);
    domain.synchronize_rcu(&ctx);
    domain.cond_synchronize(&ctx, cookie);
    domain.rcu_barrier(&ctx);
}

static LATE_DONE: AtomicUsize = AtomicUsize::new(0);

struct LateUser {
    domain: Option<&'static Domain>,
    logs: Option<(&'static DropLog, &'static DropLog)>,
}

impl Drop for LateUser {
    fn drop(&mut self) {
        if let (Some(domain), Some((log, headless))) = (self.domain, self.logs) {
            use_everything(domain, log, headless);
            // SeqCst: read by the test after joining.
            LATE_DONE.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static LATE: RefCell<LateUser> = const { RefCell::new(LateUser { domain: None, logs: None }) };
}

/// A thread-local touched first thing (so its destructor runs after every thread-local the
/// thread touched later, the runtime's included if it had any) uses every API on `domain`.
fn late_destructor_uses_everything(domain: &'static Domain) {
    let log = DropLog::new(16);
    let headless = DropLog::new(2);
    let before = LATE_DONE.load(Ordering::SeqCst);
    std::thread::spawn(move || {
        LATE.with(|l| {
            let mut l = l.borrow_mut();
            l.domain = Some(domain);
            l.logs = Some((log, headless));
        });
        // Register and queue before exiting, so the runtime's per-thread state exists.
        use_everything(domain, DropLog::new(16), DropLog::new(2));
    })
    .join()
    .expect("the thread (and its late destructor) ran to completion");
    assert_eq!(LATE_DONE.load(Ordering::SeqCst), before + 1);
    // On a thread of its own: the test thread never registers (see `GLOBAL`).
    std::thread::spawn(move || domain.rcu_barrier(&Sleepable::enter())).join().unwrap();
    log.assert_all_freed_once();
    headless.assert_all_freed_once();
}

#[test]
fn a_late_thread_local_destructor_uses_every_api_on_a_private_domain() {
    let _one_at_a_time = LATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    late_destructor_uses_everything(leaked_domain("late-private"));
}

#[test]
fn a_late_thread_local_destructor_uses_every_api_on_the_global_domain() {
    let _one_at_a_time = LATE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let _global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    late_destructor_uses_everything(Domain::global());
}

static LATE_TESTS: Mutex<()> = Mutex::new(());

/// A thread-local cache whose destructor frees its contents with `kvfree_rcu`.
struct FreeOnExit(&'static Domain, Option<Box<Rcu<[u64; 8]>>>);

impl Drop for FreeOnExit {
    fn drop(&mut self) {
        if let Some(obj) = self.1.take() {
            self.0.kvfree_rcu(&Sleepable::enter(), obj);
        }
    }
}

thread_local! {
    static CACHE: RefCell<Option<FreeOnExit>> = const { RefCell::new(None) };
}

/// 200 short-lived threads whose thread-local cache frees with `kvfree_rcu` on exit: the
/// destructor registers the thread (its first use of the domain), and that registration ends
/// too, so the registry is back where it started.
fn exiting_threads_leave_no_slot_behind(domain: &'static Domain) {
    // Only the worker completes a barrier, so it has started (and registered) by then; a
    // thread of its own, so that this one stays unregistered.
    std::thread::spawn(move || domain.rcu_barrier(&Sleepable::enter())).join().unwrap();
    let before = domain.stats().readers;
    for _ in 0..200 {
        std::thread::spawn(move || {
            CACHE.with(|c| *c.borrow_mut() = Some(FreeOnExit(domain, Some(Rcu::boxed([7; 8])))));
        })
        .join()
        .unwrap();
    }
    assert_eq!(domain.stats().readers, before, "exited threads left registered slots");
    std::thread::spawn(move || domain.rcu_barrier(&Sleepable::enter())).join().unwrap();
}

#[test]
fn threads_registering_in_a_late_destructor_release_their_private_slot() {
    exiting_threads_leave_no_slot_behind(leaked_domain("late-slots"));
}

#[test]
fn threads_registering_in_a_late_destructor_release_their_global_slot() {
    let _global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    exiting_threads_leave_no_slot_behind(Domain::global());
}

/// A pthread key created after the runtime's: glibc runs its destructor after the runtime's,
/// so the thread registers again once its registrations have ended.
fn after_runtime_key() -> libc::pthread_key_t {
    static KEY: std::sync::OnceLock<libc::pthread_key_t> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| {
        // Make sure the runtime's key exists first (on a thread of its own: the test thread
        // never registers with the global domain, see `GLOBAL`).
        std::thread::spawn(|| drop(read_lock(&mut Sleepable::enter()))).join().unwrap();
        let mut key = 0;
        // SAFETY: `key` is writable; the destructor lives forever.
        assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(key_destructor)) }, 0);
        key
    })
}

static KEY_DOMAIN: std::sync::OnceLock<&'static Domain> = std::sync::OnceLock::new();
static KEY_DONE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn key_destructor(_: *mut libc::c_void) {
    let domain = *KEY_DOMAIN.get().expect("set by the test");
    let mut ctx = Sleepable::enter();
    drop(domain.read_lock(&mut ctx));
    domain.kvfree_rcu(&ctx, Rcu::boxed(1u64));
    // SeqCst: read by the test after joining.
    KEY_DONE.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_pthread_key_destructor_after_the_runtimes_registers_again_and_is_released() {
    let domain = *KEY_DOMAIN.get_or_init(|| leaked_domain("key-after"));
    let key = {
        let _global = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        after_runtime_key()
    };
    // As in `exiting_threads_leave_no_slot_behind`: the worker has registered once a barrier
    // returns.
    std::thread::spawn(move || domain.rcu_barrier(&Sleepable::enter())).join().unwrap();
    let before = domain.stats().readers;
    for _ in 0..20 {
        std::thread::spawn(move || {
            drop(domain.read_lock(&mut Sleepable::enter()));
            // SAFETY: a key from pthread_key_create; the value is never dereferenced.
            unsafe {
                libc::pthread_setspecific(key, std::ptr::NonNull::<u8>::dangling().as_ptr().cast())
            };
        })
        .join()
        .unwrap();
    }
    assert_eq!(KEY_DONE.load(Ordering::SeqCst), 20);
    assert_eq!(
        domain.stats().readers,
        before,
        "a registration made after the runtime's exit hook leaked"
    );
    domain.rcu_barrier(&Sleepable::enter());
}

/// The signals a runtime thread must have blocked, as bits of /proc's `SigBlk` mask.
fn blocked_signals(tid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("SigBlk:"))?;
    u64::from_str_radix(line.trim_start_matches("SigBlk:").trim(), 16).ok()
}

// Reads the masks from /proc and names a real-time signal: Linux's.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn runtime_threads_block_every_signal() {
    let domain = Domain::new(DomainConfig::new().name("sigmask"));
    domain.kvfree_rcu(&Sleepable::enter(), Rcu::boxed(1u8));
    assert!(wait_until(PATIENCE, || {
        let names = thread_names();
        names.iter().any(|n| n == "rcu-gp-sigmask")
            && names.iter().any(|n| n.starts_with("rcu-refill-sig"))
    }));
    let mut checked = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !name.starts_with("rcu-") {
            continue;
        }
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        let Some(mask) = blocked_signals(&tid) else { continue };
        for sig in [
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGALRM,
            libc::SIGPROF,
            libc::SIGRTMIN() + 1,
        ] {
            assert!(
                mask & (1 << (sig - 1)) != 0,
                "{} does not block signal {sig}: {mask:x}",
                name.trim()
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "found no runtime thread to check");
}

#[test]
fn an_unregistered_thread_entering_its_first_section_from_an_atomic_context_panics_clearly() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("atomic-first")));
    let d = domain.clone();
    let message = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        let mut spin = ctx.atomic();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(d.read_lock(&mut spin));
        }))
        .expect_err("registration in an atomic scope must not happen");
        drop(spin);
        // The thread is still usable once out of the scope.
        drop(d.read_lock(&mut ctx));
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    })
    .join()
    .unwrap();
    assert!(message.contains("entered from an atomic context"), "{message}");
    assert!(message.contains("register_current_thread"), "{message}");
    // `kvfree_rcu` with `Atomic` on an unregistered thread falls back, never registers.
    let d = domain.clone();
    std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        d.kvfree_rcu(&ctx.atomic(), Rcu::boxed(3u32));
    })
    .join()
    .unwrap();
    assert_eq!(domain.alloc_stats().fallbacks_of(Policy::NoWait, FallbackReason::Unregistered), 1);
    domain.rcu_barrier(&Sleepable::enter());
}
