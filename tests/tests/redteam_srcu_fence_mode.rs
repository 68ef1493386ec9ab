//! Red team (SRCU S2): `SrcuCounters::set_fence_mode(true)` is documented as a fence (the
//! plain flavour's), but `barrier()` with `fence_mode == true` called `reader_barrier()`,
//! which is compiler-only whenever the *process* registered membarrier. A plain-flavour grace
//! period that issues a `fence(SeqCst)` (not membarrier) then paired with nothing on the
//! reader side: the store-buffering outcome (the scan misses the reader's lock increment AND
//! the reader misses the removal) was seen 22 and 151 times in 2 million rounds. `barrier()`
//! now issues a real fence in fence mode; this checks that the outcome never happens.
//!
//! Litmus on real hardware: reader `lock_on(0)` then loads X; writer stores X, `fence(SeqCst)`,
//! then reads `locks(0)`. Both reading the old value is forbidden with a fence on each side.
//! A control run puts an explicit `fence(SeqCst)` after the reader's `lock_on`.
#![cfg(not(loom))]
#![cfg(not(rcu_sanitizer = "thread"))]

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use rcu_core::raw::srcu::SrcuCounters;

fn litmus(iters: u64, extra_reader_fence: bool) -> u64 {
    let slot = Arc::new(SrcuCounters::new());
    slot.set_fence_mode(true); // "always a fence", per the docs
    let x = Arc::new(AtomicU64::new(0));
    let go_r = Arc::new(AtomicU64::new(0));
    let go_w = Arc::new(AtomicU64::new(0));
    let seen_r = Arc::new(AtomicU64::new(0));
    let reader = {
        let (slot, x, go_r, seen_r) = (slot.clone(), x.clone(), go_r.clone(), seen_r.clone());
        std::thread::spawn(move || {
            let mut bad_r = Vec::new();
            for k in 1..=iters {
                while go_r.load(Ordering::Acquire) < k {
                    std::hint::spin_loop();
                }
                slot.lock_on(0);
                if extra_reader_fence {
                    fence(Ordering::SeqCst);
                }
                let r1 = x.load(Ordering::Relaxed);
                bad_r.push(r1 < k);
                slot.unlock(0);
                seen_r.store(k, Ordering::Release);
            }
            bad_r
        })
    };
    let mut bad_w = Vec::new();
    for k in 1..=iters {
        go_r.store(k, Ordering::Release);
        go_w.store(k, Ordering::Relaxed);
        x.store(k, Ordering::Relaxed); // the removal
        fence(Ordering::SeqCst); // the plain flavour's "heavy barrier"
        let r2 = slot.locks(0); // the scan's lock load
        bad_w.push(r2 < k);
        while seen_r.load(Ordering::Acquire) < k {
            std::hint::spin_loop();
        }
    }
    let bad_r = reader.join().unwrap();
    bad_r.iter().zip(&bad_w).filter(|(a, b)| **a && **b).count() as u64
}

#[test]
fn fence_mode_true_is_a_fence_under_membarrier_too() {
    rcu_core::raw::barrier::init();
    let mb = rcu_core::raw::barrier::uses_membarrier();
    let iters = 2_000_000;
    let sb = litmus(iters, false);
    let control = litmus(iters, true);
    eprintln!(
        "uses_membarrier={mb}; store-buffering outcomes in {iters} iterations: \
         fence_mode=true reader: {sb}; control (explicit reader fence): {control}"
    );
    assert_eq!(control, 0);
    assert_eq!(sb, 0, "fence_mode(true) gave no CPU fence: SB outcome observed");
}
