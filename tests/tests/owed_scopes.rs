//! Hostile programs for the work a restricted scope leaves to its thread (`rcu_ctx::owed`):
//! frees queued under `NoReclaim` and `Atomic` scopes on the global domain are finished
//! (dropped, deallocated) when the thread next opens a scope from its `Sleepable` token,
//! inside the runtime's own atomic scope.
//!
//! Alone in its file, so in a process of its own: it counts the global domain's callback
//! panics.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::Rcu;

static OUTER_DROPS: AtomicU64 = AtomicU64::new(0);
static INNER_DROPS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// A second root of the flooding thread, kept where any code can reach it (DESIGN §5.1's
    /// smuggled root), for the drops to misuse.
    static SMUGGLED: RefCell<Option<Sleepable>> = const { RefCell::new(None) };
    /// `Outer` values dropped on this thread (at its scope openings).
    static DROPPED_HERE: Cell<u64> = const { Cell::new(0) };
}

/// Freed by the drop of an `Outer`.
struct Inner;

impl Drop for Inner {
    fn drop(&mut self) {
        INNER_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value whose drop, when run at a scope opening, tries what the smuggled root allows: it
/// opens a scope from it (which must pay nothing: no recursion into the payer), queues a free
/// under that scope (the thread's bracket is open, so it takes the fallback list), and
/// panics every 1000th time.
struct Outer(u64);

impl Drop for Outer {
    fn drop(&mut self) {
        OUTER_DROPS.fetch_add(1, Ordering::SeqCst);
        let _ = DROPPED_HERE.try_with(|d| d.set(d.get() + 1));
        let queued = SMUGGLED
            .try_with(|root| {
                let Ok(mut root) = root.try_borrow_mut() else { return false };
                let Some(root) = root.as_mut() else { return false };
                let atomic = root.atomic();
                kvfree_rcu(&atomic, Rcu::boxed(Inner));
                true
            })
            .unwrap_or(false);
        if !queued {
            // Dropped on another thread (the worker): queue the inner free from here.
            // SAFETY: (1) dropped before this function returns; (2) nothing is opened after
            // it.
            let atomic = unsafe { Atomic::assume() };
            kvfree_rcu(&atomic, Rcu::boxed(Inner));
        }
        assert!(self.0 % 1000 != 0, "hostile drop {} panics (on purpose)", self.0);
    }
}

/// The runtime's report of callbacks (here: drops) that panicked on the global domain.
const CALLBACK_REPORT: &str = "RCU callback(s) of domain 'global' panicked";

#[test]
fn drops_run_at_a_scope_opening_neither_recurse_nor_deadlock_and_all_run() {
    const MORE: u64 = 50_000;
    rcu_tests::quiet::quiet_deliberate_panics();
    rcu_tests::quiet::quiet_reports(CALLBACK_REPORT);
    std::thread::spawn(|| {
        SMUGGLED.with(|root| *root.borrow_mut() = Some(Sleepable::enter()));
        let mut ctx = Sleepable::enter();
        rcu_core::init(&ctx);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut queued = 0;
        let free_one = |ctx: &mut Sleepable, i: u64| {
            let node = Rcu::boxed(Outer(i));
            if i % 2 == 0 {
                let atomic = ctx.atomic();
                kvfree_rcu(&atomic, node);
            } else {
                let nr = ctx.no_reclaim();
                kvfree_rcu(&nr, node);
            }
        };
        // Until an opening has run some (bounded: the worker would otherwise run them).
        while DROPPED_HERE.with(Cell::get) == 0 {
            assert!(Instant::now() < deadline, "no scope opening ran a drop in 60 s");
            free_one(&mut ctx, queued);
            queued += 1;
        }
        for _ in 0..MORE {
            free_one(&mut ctx, queued);
            queued += 1;
        }
        rcu_barrier(&ctx);
        assert_eq!(OUTER_DROPS.load(Ordering::SeqCst), queued, "an outer free never ran");
        // The inner frees were queued by drops that ran before the barrier's collection, or
        // during its batches: a second barrier covers the latter.
        rcu_barrier(&ctx);
        assert_eq!(INNER_DROPS.load(Ordering::SeqCst), queued, "an inner free never ran");
        let panics = Domain::global().stats().callback_panics;
        assert_eq!(panics, queued.div_ceil(1000), "every hostile panic is counted once");
        // The report of a batch follows its count.
        let reported = || rcu_tests::quiet::reported_callback_panics("global");
        let deadline = Instant::now() + Duration::from_secs(5);
        while reported() < panics && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reported(), panics, "every hostile panic is reported once");
        SMUGGLED.with(|root| root.borrow_mut().take());
    })
    .join()
    .unwrap();
}
