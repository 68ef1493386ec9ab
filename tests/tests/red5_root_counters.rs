//! Red team, round 5 (`NoReclaimRoot`): its counters never wrap (issue 22's rule: no counter
//! that safe code drives may overflow), the way `counters.rs` checks the others.
//!
//! A `NoReclaimRoot` moves three per-thread counters: the no-reclaim depth (refuses at
//! `u32::MAX`), the live roots and the live `NoReclaimRoot`s (both saturate). Forgetting
//! roots in a loop must leave the thread in a no-reclaim scope with a root counted for ever:
//! `Sleepable::enter()` refused, `no_reclaim_roots() != 0` (its frees go to the worker), and a
//! section left open at exit never taken for unreachable. The loop takes 2^32 - 1 roots:
//! seconds optimized, so ignored in debug builds like `counters.rs` (run it with
//! `cargo test --release -p rcu-tests --test red5_root_counters -- --include-ignored`).

use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use rcu_core::prelude::*;
use rcu_core::thread_state::{live_roots, no_reclaim_roots, snapshot};

#[track_caller]
fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match err.downcast::<String>() {
        Ok(message) => *message,
        Err(err) => err.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[inline(never)]
fn forget_no_reclaim_roots(n: u32) {
    for _ in 0..n {
        mem::forget(NoReclaimRoot::enter());
    }
}

static DROPS: AtomicU64 = AtomicU64::new(0);

struct Tracked;

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
#[cfg_attr(debug_assertions, ignore = "forgets 2^32 - 1 roots: run optimized")]
fn forgotten_no_reclaim_roots_saturate_and_refuse_without_wrapping() {
    std::thread::spawn(|| {
        forget_no_reclaim_roots(u32::MAX - 1);
        assert_eq!(snapshot().no_reclaim_depth, u32::MAX - 1);
        assert_eq!((no_reclaim_roots(), live_roots()), (u32::MAX - 1, u32::MAX - 1));
        let last = NoReclaimRoot::enter();
        assert_eq!(snapshot().no_reclaim_depth, u32::MAX);
        assert_eq!((no_reclaim_roots(), live_roots()), (u32::MAX, u32::MAX));
        let msg = panic_message(|| mem::forget(NoReclaimRoot::enter()));
        assert!(msg.contains("no-reclaim scopes nested 4294967295 deep on one thread"), "{msg}");
        assert_eq!(snapshot().no_reclaim_depth, u32::MAX, "the refused root counted");
        assert_eq!((no_reclaim_roots(), live_roots()), (u32::MAX, u32::MAX));
        // Frees still work, and go to the worker.
        for _ in 0..1000 {
            kvfree_rcu(&last, Rcu::boxed(Tracked));
        }
        drop(last);
        // Saturated: counted for ever, the conservative answer.
        assert_eq!((no_reclaim_roots(), live_roots()), (u32::MAX, u32::MAX));
        assert_eq!(snapshot().no_reclaim_depth, u32::MAX - 1);
        let msg = panic_message(|| drop(Sleepable::enter()));
        assert!(msg.contains("Sleepable::enter() called inside a no-reclaim scope"), "{msg}");
    })
    .join()
    .unwrap();
    rcu_barrier(&Sleepable::enter());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1000);
}
