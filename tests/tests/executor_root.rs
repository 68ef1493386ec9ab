//! Hostile programs for `NoReclaimRoot`, the root of an executor's threads: its openings
//! never run a batch of frees or wait for reclaim, the frees made under it are all finished,
//! by the runtime's threads, and a leaked one is a leaked root (DESIGN §5.1).
//!
//! Alone in its file, so in a process of its own: it counts drops on the global domain.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{assert_holds_for, wait_until, Canary, HOLD, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::thread_state::{no_reclaim_roots, snapshot};
use rcu_core::DomainConfig;

static DROPS: AtomicU64 = AtomicU64::new(0);
/// Drops that ran on a thread while one of its `NoReclaimRoot`s was alive.
static DROPS_UNDER_A_ROOT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// `Tracked` values dropped on this thread.
    static DROPPED_HERE: Cell<u64> = const { Cell::new(0) };
}

struct Tracked(#[allow(dead_code)] u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
        if no_reclaim_roots() != 0 {
            DROPS_UNDER_A_ROOT.fetch_add(1, Ordering::SeqCst);
        }
        let _ = DROPPED_HERE.try_with(|d| d.set(d.get() + 1));
    }
}

fn dropped_here() -> u64 {
    DROPPED_HERE.with(Cell::get)
}

/// Serializes the tests that count `DROPS`.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn frees_under_a_no_reclaim_root_all_finish_on_the_runtimes_threads() {
    let _counting = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    const FREES: u64 = 60_000;
    let before = DROPS.load(Ordering::SeqCst);
    let cell: &'static RcuCell<Tracked> = Box::leak(Box::new(RcuCell::new(Tracked(0))));
    std::thread::spawn(move || {
        for i in 1..=FREES {
            // As a task's write: a root per write, in a block that ends before an `.await`.
            let root = NoReclaimRoot::enter();
            if i % 2 == 0 {
                kvfree_rcu(&root, Rcu::boxed(Tracked(i)));
            } else {
                cell.set(&root, Tracked(i));
            }
            drop(root);
            if i % 1000 == 0 {
                // Openings from a Sleepable token find nothing left for this thread either.
                let mut ctx = Sleepable::enter();
                drop(ctx.no_reclaim());
                drop(ctx.atomic());
            }
        }
        assert_eq!(dropped_here(), 0, "frees made under a NoReclaimRoot ran on its thread");
    })
    .join()
    .unwrap();
    rcu_barrier(&Sleepable::enter());
    // Every free but the cell's current value: dropped once each.
    assert_eq!(DROPS.load(Ordering::SeqCst) - before, FREES);
    assert_eq!(DROPS_UNDER_A_ROOT.load(Ordering::SeqCst), 0);
}

#[test]
fn a_no_reclaim_root_opening_runs_none_of_the_reclaim_work_its_thread_owes() {
    let _counting = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let before = DROPS.load(Ordering::SeqCst);
    let mut frees = 0;
    let mut control = 0;
    std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        for _round in 0..20 {
            // Blocks sealed under `NoReclaim` from a Sleepable root are parked for this
            // thread: reclaim work it owes.
            for i in 0..20_000 {
                let nr = ctx.no_reclaim();
                kvfree_rcu(&nr, Rcu::boxed(Tracked(i)));
                frees += 1;
            }
            // Their grace periods pass (led by another thread: this one stays out of it).
            std::thread::spawn(|| synchronize_rcu(&Sleepable::enter())).join().unwrap();
            // The loop's last opening may have paid the debt with blocks not yet ready: owed
            // again, as after a seal, so that a Sleepable opening would run them now.
            rcu_ctx::owed::owe_reclaim();
            let here = dropped_here();
            drop(NoReclaimRoot::enter());
            assert_eq!(dropped_here(), here, "a NoReclaimRoot opening ran owed frees");
            assert!(rcu_ctx::owed::is_owed(), "a NoReclaimRoot opening paid reclaim work");
            // The control: a Sleepable token's opening pays the debt (deterministic) and may
            // run them (unless the worker took them first: counted only).
            drop(ctx.no_reclaim());
            assert!(!rcu_ctx::owed::is_owed(), "the control paid nothing");
            control += dropped_here() - here;
        }
        drop(ctx);
        rcu_barrier(&Sleepable::enter());
        eprintln!("control: {control} of {frees} owed frees ran at a Sleepable opening");
    })
    .join()
    .unwrap();
    assert_eq!(DROPS.load(Ordering::SeqCst) - before, 20 * 20_000);
}

#[test]
fn a_guard_leaked_with_a_no_reclaim_root_keeps_its_section_open_after_the_thread_exits() {
    rcu_tests::quiet::quiet_reports(
        "read section(s) of domain 'leak-no-reclaim-root': a ReadGuard was leaked",
    );
    let domain: &'static Domain = Box::leak(Box::new(Domain::new(
        DomainConfig::new().name("leak-no-reclaim-root".to_owned()),
    )));
    let reports = rcu_tests::collect_stalls(domain);
    let (canary, dropped) = Canary::new(42);
    let cell: &'static RcuCell<Canary> = Box::leak(Box::new(RcuCell::new_in(domain, canary)));
    let r: &'static Canary = std::thread::Builder::new()
        .name("leak-nr-root".into())
        .spawn(move || {
            let root: &'static mut NoReclaimRoot = Box::leak(Box::new(NoReclaimRoot::enter()));
            let guard: &'static ReadGuard<'static> = Box::leak(Box::new(domain.read_lock(root)));
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
            .any(|rep| rep.leaked_guard && rep.thread_name.as_deref() == Some("leak-nr-root")))),
        "no stall report named the leaked guard"
    );
    assert_holds_for(HOLD, "the leaked section ended", || {
        !domain.poll(cookie) && !dropped.load(Ordering::SeqCst)
    });
    assert_eq!(r.value(), 42, "the value read through the leaked guard was freed");
    assert_eq!(domain.stats().leaked_read_sections, 1);
}

#[test]
fn a_callback_cannot_conjure_a_no_reclaim_root() {
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    fn conjure(obj: Box<Rcu<u8>>, _ctx: &Atomic<'_>) {
        // A callback runs in an atomic scope: a root that may block is refused.
        let refused = rcu_tests::quiet::expect_panic_quietly(
            "NoReclaimRoot::enter() called inside an atomic scope",
            NoReclaimRoot::enter,
        );
        let message =
            refused.as_ref().map(|_| "").unwrap_or_else(|p| rcu_tests::quiet::message(&**p));
        if message.contains("rule: context is explicit, never assumed") {
            REFUSED.fetch_add(1, Ordering::SeqCst);
        }
        drop(obj);
    }
    let domain = Domain::new(DomainConfig::new().name("conjure-nr-root".to_owned()));
    let ctx = Sleepable::enter();
    domain.call_rcu(&ctx, Rcu::boxed(1u8), conjure);
    domain.rcu_barrier(&ctx);
    assert_eq!(REFUSED.load(Ordering::SeqCst), 1);
    assert_eq!(domain.stats().callback_panics, 0);
    assert_eq!(snapshot(), Default::default());
}
