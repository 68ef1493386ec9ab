//! Red team, round 5 (`NoReclaimRoot`): a waker on the worker takes roots.
//!
//! Suspicion: the worker runs wakers in a no-reclaim scope so that a waker cannot take a
//! root and wait for the worker's own progress ("inside the scope, taking a root and every
//! reclaiming call panic (contained)", `worker_thread::run`). `NoReclaimRoot::enter()` is
//! allowed inside a no-reclaim scope, so a waker now can: it may wait for a grace period
//! with it (`synchronize_rcu`, a headless free's fallback), free with it on the worker, and
//! leak it, leaving the worker for ever with a live root, a no-reclaim scope open and
//! `no_reclaim_roots() != 0`. Then the worker's own debts (blocks its callbacks sealed on the
//! global domain, parked for it, reclaim work owed) are never paid by its openings, which
//! could strand them, or wedge the worker (DESIGN §5.1: user code never wedges a runtime
//! thread; `rcu_barrier` covers everything queued before it).
//!
//! Held at 98e9ba4 (the worker served on, nothing lost). Since the fix of
//! `red5_waker_root_swap.rs` a root is refused inside a no-reclaim scope, so a waker on the
//! worker can take none: the test checks the refusal, then that the worker serves on with
//! frees from `NoReclaimRoot`s and callbacks that free.
//!
//! Alone in its file: it counts drops on the global domain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::thread_state::{no_reclaim_roots, snapshot};
use rcu_tests::quiet::expect_panic_quietly;
use rcu_tests::wakers::{block_on, run_on_worker};

/// A watchdog meaning "hung".
const PATIENCE: Duration = Duration::from_secs(60);

static DROPS: AtomicU64 = AtomicU64::new(0);
static QUEUED: AtomicU64 = AtomicU64::new(0);

struct Tracked;

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn tracked() -> Box<Rcu<Tracked>> {
    QUEUED.fetch_add(1, Ordering::SeqCst);
    Rcu::boxed(Tracked)
}

/// A callback that frees many values on the global domain with its `Atomic` token: on the
/// worker, enough to seal blocks there (parked for it, with reclaim work owed).
fn frees_more(obj: Box<Rcu<Tracked>>, ctx: &Atomic<'_>) {
    for _ in 0..600 {
        kvfree_rcu(ctx, tracked());
    }
    drop(obj);
}

#[test]
fn a_root_leaked_by_a_waker_on_the_worker_wedges_nothing_and_loses_nothing() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ctx = Sleepable::enter();
        // The worker's own debts: its callbacks' frees sealed there.
        for _ in 0..20 {
            call_rcu(&ctx, tracked(), frees_more);
        }
        rcu_barrier(&ctx);

        // A waker tries to take a root on the worker (to wait, free and leak it): refused.
        let (refused, worker) = run_on_worker(Domain::global(), PATIENCE, || {
            let taken = expect_panic_quietly(
                "NoReclaimRoot::enter() called inside a no-reclaim scope",
                || Box::leak(Box::new(NoReclaimRoot::enter())).validate(),
            );
            (taken.is_err(), (snapshot().no_reclaim_depth, no_reclaim_roots()))
        });
        assert!(worker.starts_with("rcu-gp-"), "the waker ran on '{worker}', not the worker");
        assert_eq!(refused, (true, (1, 0)), "a waker on the worker took a root");

        // The worker serves on: callbacks that free, frees, barriers.
        for _ in 0..20 {
            call_rcu(&ctx, tracked(), frees_more);
            for _ in 0..100 {
                kvfree_rcu(&NoReclaimRoot::enter(), tracked());
            }
        }
        rcu_barrier(&ctx);
        for _ in 0..20 {
            call_rcu(&ctx, tracked(), frees_more);
        }
        block_on(rcu_barrier_async());
        rcu_barrier(&ctx);
        let _ = done_tx.send((QUEUED.load(Ordering::SeqCst), DROPS.load(Ordering::SeqCst)));
    });
    let (queued, dropped) = done_rx.recv_timeout(PATIENCE).expect("hung: a barrier never returned");
    assert_eq!(dropped, queued, "frees lost or run twice");
}
