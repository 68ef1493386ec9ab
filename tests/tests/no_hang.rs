//! Hostile programs of the no-hang issue: tokens that did not come from the scope they are
//! used in (a second root, a thread-local root, a token captured by a callback) cannot block
//! or reclaim there, in any build; nothing the runtime runs on a caller's behalf (inline
//! callbacks, stall handlers, `Domain::drop`) waits for something that waits for it; a
//! `Sleepable` writer's backpressure is bounded.
//!
//! A hang here becomes a bounded wait that fails (`Pending::join` waits `PATIENCE`).

mod common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicI32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{thread_names, wait_until, Pending, ReaderThread, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, StallReport};
use rcu_tests::drop_log::DropLog;
use rcu_tests::SpinLock;

/// Runs `f`, which must panic, and returns the message and the file it was raised in (as
/// the panic location says: `#[track_caller]` must point at the caller's line).
fn panic_of(f: impl FnOnce()) -> (String, String) {
    install_panic_hook();
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    let message = message_of(&*err);
    let me = std::thread::current().id();
    let file = LOCATIONS
        .with(|l| l.iter().rev().find(|(t, _)| *t == me).map(|(_, f)| f.clone()))
        .unwrap_or_default();
    (message, file)
}

/// (A `SpinLock`, not a `Mutex`: ThreadSanitizer sees its ordering.)
static LOCATIONS: SpinLock<Vec<(std::thread::ThreadId, String)>> = SpinLock::new(Vec::new());

/// Records where each panic was raised, and keeps the panics these tests provoke on purpose
/// (the runtime's rule messages) out of the output; any other panic is printed. The hook
/// captures nothing: runtime threads started before it was installed call it through std's
/// lock, which ThreadSanitizer cannot see, so it must not read data written by this thread.
/// For the same reason provoked panics are not printed at all: the test harness's output
/// capture, shared with those threads, is synchronised inside std.
fn install_panic_hook() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Some(loc) = info.location() {
                let entry = (std::thread::current().id(), loc.file().to_owned());
                LOCATIONS.with(|l| l.push(entry));
            }
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            let provoked = message.contains("(rule: a call that may block or reclaim checks")
                || message.contains("Sleepable::enter() called inside")
                || message.contains("(expected by this test)");
            if !provoked {
                eprintln!("{info}");
            }
        }));
    });
}

/// The message of a caught panic.
fn message_of(err: &(dyn std::any::Any + Send)) -> String {
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[track_caller]
fn assert_rule(f: impl FnOnce(), call: &str, scope: &str) {
    let (message, file) = panic_of(f);
    assert!(message.contains(&format!("{call} called inside {scope}")), "{message}");
    assert!(message.contains("rule: a call that may block or reclaim checks"), "{message}");
    assert!(file.ends_with("no_hang.rs"), "the panic points into {file}, not at the caller");
}

#[test]
fn a_second_root_cannot_block_or_reclaim_inside_a_scope() {
    let other = Domain::new(DomainConfig::new().name("second-root"));
    let spare = Sleepable::enter();
    let mut ctx = Sleepable::enter();
    other.register_current_thread(&ctx);
    {
        let _spin = ctx.atomic();
        assert_rule(|| synchronize_rcu(&spare), "synchronize_rcu", "an atomic scope");
        assert_rule(
            || kvfree_rcu_mightsleep(&spare, Box::new(1u8)),
            "kvfree_rcu_mightsleep",
            "an atomic scope",
        );
        assert_rule(|| kvfree_rcu(&spare, Rcu::boxed(1u8)), "kvfree_rcu", "an atomic scope");
    }
    {
        let _nr = ctx.no_reclaim();
        assert_rule(|| rcu_barrier(&spare), "rcu_barrier", "a no-reclaim scope");
        // The same call with the scope's own token's rights is fine: NoReclaim may block.
        synchronize_rcu(&spare);
    }
    {
        let _guard = read_lock(&mut ctx);
        assert_rule(|| other.synchronize_rcu(&spare), "synchronize_rcu", "an RCU read section");
        // Backpressure inside a section would wait for a grace period that waits for it:
        // the Sleepable policy is refused before any waiting.
        assert_rule(
            || other.kvfree_rcu(&spare, Rcu::boxed(2u8)),
            "kvfree_rcu",
            "an RCU read section",
        );
    }
    drop(spare);
    other.rcu_barrier(&ctx);
}

thread_local! {
    /// An ambient root, as the seed thread warns against.
    static ROOT: Sleepable = Sleepable::enter();
}

fn deep_in_a_call_chain() {
    ROOT.with(|root| synchronize_rcu(root));
}

#[test]
fn an_ambient_thread_local_root_cannot_block_inside_an_atomic_scope() {
    ROOT.with(|_| ());
    let mut ctx = Sleepable::enter();
    let spin = ctx.atomic();
    assert_rule(deep_in_a_call_chain, "synchronize_rcu", "an atomic scope");
    drop(spin);
    deep_in_a_call_chain(); // fine where the thread may block
}

static BARRIER_REFUSED: AtomicUsize = AtomicUsize::new(0);
static BARRIER_WRONG_REASON: AtomicUsize = AtomicUsize::new(0);
static BARRIER_RAN: AtomicUsize = AtomicUsize::new(0);
static INLINE_RUNS: AtomicUsize = AtomicUsize::new(0);
/// The kernel thread id of the caller whose inline runs are counted (0: not set yet).
static CALLER: AtomicI32 = AtomicI32::new(0);

fn barrier_from_a_callback(obj: Box<Rcu<()>>, _ctx: &Atomic<'_>) {
    drop(obj);
    // Relaxed: set before this caller queued anything; read only to count inline runs.
    if CALLER.load(Ordering::Relaxed) == rcu_sys::thread_id() {
        // SeqCst: statistics read after rcu_barrier.
        INLINE_RUNS.fetch_add(1, Ordering::SeqCst);
    }
    // On the caller, `ROOT` exists and the barrier itself refuses; on the worker, which
    // never had a root, `Sleepable::enter()` (the thread-local's initializer) refuses first.
    if let Err(err) = catch_unwind(|| ROOT.with(|root| rcu_barrier(root))) {
        let message = message_of(&*err);
        let named_rule = message.contains("rcu_barrier called inside an atomic scope")
            || message.contains("Sleepable::enter() called inside an atomic scope");
        // SeqCst: as above.
        BARRIER_REFUSED.fetch_add(1, Ordering::SeqCst);
        if !named_rule {
            BARRIER_WRONG_REASON.fetch_add(1, Ordering::SeqCst);
        }
    }
    BARRIER_RAN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn rcu_barrier_through_a_thread_local_root_inside_a_callback_is_refused_not_deadlocked() {
    const CALLS: usize = 3_000;
    install_panic_hook();
    let caller = Pending::spawn("inline-caller", || {
        // Relaxed: see `barrier_from_a_callback`.
        CALLER.store(rcu_sys::thread_id(), Ordering::Relaxed);
        ROOT.with(|_| ()); // the ambient root exists before any callback runs here
        let ctx = Sleepable::enter();
        // A Sleepable caller runs its own parked blocks inline once their grace period has
        // passed; the worker runs the rest. Either way callbacks run in an atomic context.
        for i in 0..CALLS {
            call_rcu(&ctx, Rcu::boxed(()), barrier_from_a_callback);
            if i % 200 == 0 {
                synchronize_rcu(&ctx);
            }
        }
        rcu_barrier(&ctx);
    });
    caller.join("a caller whose callbacks call rcu_barrier");
    assert_eq!(BARRIER_RAN.load(Ordering::SeqCst), CALLS);
    assert_eq!(BARRIER_REFUSED.load(Ordering::SeqCst), CALLS);
    assert_eq!(BARRIER_WRONG_REASON.load(Ordering::SeqCst), 0);
    println!(
        "{} of {CALLS} callbacks ran inline on the caller",
        INLINE_RUNS.load(Ordering::SeqCst)
    );
}

/// Holds the last handle of a domain; freeing it drops the domain.
struct LastHandle(#[allow(dead_code)] Arc<Domain>);

/// How many of a domain's runtime threads (worker, refill worker) run, by their names as the
/// kernel knows them (at most 15 bytes).
fn domain_threads(name: &str) -> usize {
    let gp = format!("rcu-gp-{name}");
    let refill = format!("rcu-refill-{name}");
    let (gp, refill) = (&gp[..gp.len().min(15)], &refill[..refill.len().min(15)]);
    thread_names().iter().filter(|n| *n == gp || *n == refill).count()
}

fn domain_threads_gone(name: &str) -> bool {
    domain_threads(name) == 0
}

/// Both runtime threads of a new domain are up (so that "gone" later means something).
fn assert_domain_threads_run(name: &str) {
    assert!(wait_until(PATIENCE, || domain_threads(name) == 2), "{:?}", thread_names());
}

#[test]
fn the_last_domain_handle_dropped_in_its_own_callback_frees_everything() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("own-cb")));
    let ctx = Sleepable::enter();
    domain.kvfree_rcu(&ctx, Rcu::boxed(0u8)); // starts the refill worker too
    assert_domain_threads_run("own-cb");
    domain.kvfree_rcu(&ctx, Rcu::boxed(LastHandle(domain.clone())));
    drop(domain); // the queued object holds the last handle; the worker drops it
    assert!(wait_until(PATIENCE, || domain_threads_gone("own-cb")), "{:?}", thread_names());
}

#[test]
fn the_last_domain_handle_dropped_by_an_inline_free_does_not_wait_for_itself() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("inline-drop")));
    domain.kvfree_rcu(&Sleepable::enter(), Rcu::boxed(0u8));
    assert_domain_threads_run("inline-drop");
    let caller = Pending::spawn("inline-dropper", {
        let domain = domain.clone();
        move || {
            let ctx = Sleepable::enter();
            domain.kvfree_rcu(&ctx, Rcu::boxed(LastHandle(domain.clone())));
            // Fill and park blocks, so this caller runs its own earlier frees inline.
            for i in 0..2_000u64 {
                domain.kvfree_rcu(&ctx, Rcu::boxed(i));
                if i % 300 == 0 {
                    domain.synchronize_rcu(&ctx);
                }
            }
        }
    });
    drop(domain);
    caller.join("a caller dropping the last domain handle in an inline free");
    assert!(wait_until(PATIENCE, || domain_threads_gone("inline-drop")), "{:?}", thread_names());
}

#[test]
fn a_dropped_domains_cells_still_drain_with_every_token() {
    let domain = Domain::new(
        DomainConfig::new().name("dropped-cells").alloc(AllocConfig::new().budget_bytes(8 << 10)),
    );
    let log = DropLog::new(6_001);
    let cell = Arc::new(RcuCell::new_in(&domain, log.track()));
    domain.kvfree_rcu(&Sleepable::enter(), Rcu::boxed(0u8));
    assert_domain_threads_run("dropped-cells");
    drop(domain);
    let writer = Pending::spawn("dropped-cell-writer", {
        let cell = cell.clone();
        move || {
            let mut ctx = Sleepable::enter();
            for _ in 0..2_000 {
                cell.set(&ctx, log.track()); // over budget: bounded backpressure
            }
            for _ in 0..2_000 {
                cell.set(&ctx.no_reclaim(), log.track());
            }
            for _ in 0..2_000 {
                let next = Rcu::boxed(log.track());
                cell.replace(&ctx.atomic(), next);
            }
        }
    });
    writer.join("Sleepable/NoReclaim/Atomic writers of a dropped domain's cell");
    // Everything retired is freed while this (registered) thread lives.
    assert!(log.wait_freed(6_000, PATIENCE), "{} of 6000 retired values freed", log.freed());
    drop(cell);
    log.assert_all_freed_once();
    assert!(wait_until(PATIENCE, || domain_threads_gone("dropped-cells")), "{:?}", thread_names());
}

static HANDLER_REFUSED: AtomicBool = AtomicBool::new(false);

#[test]
fn a_stall_handler_that_blocks_or_panics_does_not_stop_grace_periods() {
    let domain: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name("stall-handler"))));
    // The runtime reports each panic of the handler this test installs.
    rcu_tests::quiet::quiet_reports("the stall handler of domain 'stall-handler' panicked");
    domain.set_stall_timeout(Duration::from_millis(20));
    install_panic_hook();
    let reports = Arc::new(AtomicU64::new(0));
    let seen = reports.clone();
    domain.set_stall_handler(Some(Arc::new(move |_: &StallReport| {
        // Waiting for the grace period that waits for this handler: refused, not deadlocked.
        let refused = catch_unwind(|| ROOT.with(|root| domain.synchronize_rcu(root))).is_err();
        // SeqCst (both): read by the test after the grace period completes.
        HANDLER_REFUSED.fetch_or(refused, Ordering::SeqCst);
        seen.fetch_add(1, Ordering::SeqCst);
        panic!("a stall handler that panics (expected by this test)");
    })));
    for round in 0..2 {
        let mut reader = ReaderThread::spawn(DomainRef(domain), &format!("stall-reader-{round}"));
        reader.enter();
        let before = reports.load(Ordering::SeqCst);
        let writer =
            Pending::spawn("stall-writer", move || domain.synchronize_rcu(&Sleepable::enter()));
        assert!(wait_until(PATIENCE, || reports.load(Ordering::SeqCst) > before));
        reader.exit();
        writer.join("synchronize_rcu after a blocking, panicking stall handler");
    }
    assert!(HANDLER_REFUSED.load(Ordering::SeqCst));
    let report = "the stall handler of domain 'stall-handler' panicked";
    assert!(rcu_tests::quiet::wait_for_reports(report, 2, PATIENCE), "not reported");
}

/// `&'static Domain` as something `ReaderThread` can hold.
struct DomainRef(&'static Domain);

impl std::ops::Deref for DomainRef {
    type Target = Domain;
    fn deref(&self) -> &Domain {
        self.0
    }
}

#[test]
fn sleepable_writers_keep_going_while_others_keep_the_domain_over_budget() {
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("fairness").alloc(AllocConfig::new().budget_bytes(64 << 10)),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..2)
        .map(|i| {
            let (domain, stop) = (domain.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                domain.register_current_thread(&ctx);
                // Relaxed: a stop flag.
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        if i == 0 {
                            domain.kvfree_rcu(&ctx.no_reclaim(), Rcu::boxed([0u8; 1024]));
                        } else {
                            domain.kvfree_rcu(&ctx.atomic(), Rcu::boxed([0u8; 1024]));
                        }
                    }
                }
            })
        })
        .collect();
    // The floods never wait, so they take the domain over budget within a batch delay: the
    // Sleepable writer starts only once they have (the situation this test is about).
    let over = wait_until(PATIENCE, || domain.stats().peak_pending_bytes > 64 << 10);
    let done = Arc::new(AtomicUsize::new(0));
    let sleepable = Pending::spawn("fair-sleepable", {
        let (domain, done) = (domain.clone(), done.clone());
        move || {
            let ctx = Sleepable::enter();
            for _ in 0..5_000 {
                domain.kvfree_rcu(&ctx, Rcu::boxed([0u8; 1024]));
                // Relaxed: progress, for the failure message.
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let result = catch_unwind(AssertUnwindSafe(|| {
        sleepable.join("a Sleepable writer while NoReclaim/Atomic writers flood the budget")
    }));
    if result.is_err() {
        // Relaxed: progress.
        eprintln!(
            "the Sleepable writer made {} of 5000 calls; {:?}; {:?}",
            done.load(Ordering::Relaxed),
            domain.stats(),
            domain.alloc_stats()
        );
    }
    // Relaxed: a stop flag.
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(over, "the NoReclaim/Atomic floods never took the domain over budget");
    domain.rcu_barrier(&Sleepable::enter());
}

#[test]
fn the_panic_of_a_refused_call_points_at_the_caller() {
    let spare = Sleepable::enter();
    let mut ctx = Sleepable::enter();
    let _spin = ctx.atomic();
    let (_, file) = panic_of(|| kvfree_rcu_mightsleep(&spare, Box::new(0u64)));
    assert!(file.ends_with("no_hang.rs"), "{file}");
    let (_, file) = panic_of(|| {
        let _ = RefCell::new(0); // unrelated code around the call is fine
        rcu_barrier(&spare)
    });
    assert!(file.ends_with("no_hang.rs"), "{file}");
}

/// A `Sleepable` free with every parking slot taken waits for the oldest parked block's
/// grace period (backpressure), but not for ever: here that grace period waits for a reader
/// that leaves only once the frees have returned (the helper reader of `reclaim_model.rs`,
/// which hung a CI run this way). Under budget the frees must return, their blocks handed to
/// the worker, and nothing may be freed while the reader is inside.
#[test]
fn sleepable_frees_with_every_parking_slot_taken_do_not_wait_for_a_reader_that_waits_for_them() {
    const FREES: usize = 2_000; // small blocks: dozens of blocks, far more than the slots
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("parked-full").alloc(AllocConfig::new().small_blocks()),
    ));
    let log = DropLog::new(FREES);
    let mut reader = ReaderThread::spawn(domain.clone(), "parked-reader");
    reader.enter();
    let frees = Pending::spawn("parked-frees", {
        let domain = domain.clone();
        move || {
            let ctx = Sleepable::enter();
            for _ in 0..FREES {
                domain.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
            }
        }
    });
    frees.join("Sleepable frees while a reader that waits for them is inside");
    assert_eq!(log.freed(), 0, "freed while the reader was inside");
    reader.exit();
    domain.rcu_barrier(&Sleepable::enter());
    log.assert_all_freed_once();
}
