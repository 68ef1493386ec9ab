//! Red team, round 5 (`NoReclaimRoot`): its counters never wrap (issue 22's rule: no counter
//! that safe code drives may overflow), the way `counters.rs` checks the others.
//!
//! A `NoReclaimRoot` moves three per-thread counters: the no-reclaim depth, the live roots
//! and the live `NoReclaimRoot`s. The red team's program forgot 2^32 - 1 of them in a loop;
//! since a root is refused inside a no-reclaim scope (another root's included: the fix of
//! `red5_waker_root_swap.rs`), a forgotten one is the last the thread can take: its counts
//! stay at 1 for ever, the thread stays in a no-reclaim scope (`Sleepable::enter()` refused,
//! its frees go to the worker) and a section left open at exit is never taken for
//! unreachable. The depth's own refusal at `u32::MAX` is `counters.rs`'s.

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

static DROPS: AtomicU64 = AtomicU64::new(0);

struct Tracked;

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_forgotten_no_reclaim_root_is_the_last_its_thread_takes() {
    std::thread::spawn(|| {
        mem::forget(NoReclaimRoot::enter());
        assert_eq!(snapshot().no_reclaim_depth, 1);
        assert_eq!((no_reclaim_roots(), live_roots()), (1, 1));
        for _ in 0..10 {
            let msg = panic_message(|| mem::forget(NoReclaimRoot::enter()));
            assert!(msg.contains("NoReclaimRoot::enter() called inside a no-reclaim"), "{msg}");
            let msg = panic_message(|| drop(Sleepable::enter()));
            assert!(msg.contains("Sleepable::enter() called inside a no-reclaim scope"), "{msg}");
        }
        assert_eq!(snapshot().no_reclaim_depth, 1, "a refused root counted");
        assert_eq!((no_reclaim_roots(), live_roots()), (1, 1));
        // Frees still work, from the scope the forgotten root left (a token for it is
        // conjured the one way safe code can: `Atomic`-bounded calls need none).
        // SAFETY: (1) dropped at the end of this block; (2) nothing is opened after it.
        let atomic = unsafe { Atomic::assume() };
        for _ in 0..1000 {
            kvfree_rcu(&atomic, Rcu::boxed(Tracked));
        }
        drop(atomic);
    })
    .join()
    .unwrap();
    rcu_barrier(&Sleepable::enter());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1000);
}
