//! Red team (SRCU S2): a reader stalled between reading the index and incrementing its lock
//! counter across two or more whole grace periods (the index flipped twice, so the stale
//! index is the active one again), against a third grace period that removes and frees the
//! object the reader then loads. Real `rcu_core::raw::srcu` code.
//!
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test redteam_srcu_three_gps --release`
#![cfg(loom)]

use rcu_core::raw::barrier::heavy_barrier;
use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const LIVE: u64 = 0x00A1_1CE0;
const POISON: u64 = 0xDEAD_BEEF;

struct Obj {
    payload: UnsafeCell<u64>,
    freed: AtomicBool,
}

impl Obj {
    fn new() -> Self {
        Obj { payload: UnsafeCell::new(LIVE), freed: AtomicBool::new(false) }
    }
    fn read(&self) {
        // SAFETY: loom reports it if it races with `free`.
        let v = self.payload.with(|p| unsafe { *p });
        assert_eq!(v, LIVE, "reader saw a poisoned (freed) object");
        assert!(!self.freed.load(Ordering::Relaxed), "reader saw a freed object");
    }
    fn free(&self) {
        // SAFETY: loom reports it if any reader's access is not ordered before.
        self.payload.with_mut(|p| unsafe { *p = POISON });
        self.freed.store(true, Ordering::Relaxed);
    }
}

struct World {
    index: SrcuIndex,
    slots: [SrcuCounters; 2],
    current: AtomicUsize,
    objs: [Obj; 4],
}

#[allow(dead_code)]
impl World {
    fn new() -> Arc<Self> {
        Arc::new(World {
            index: SrcuIndex::new(),
            slots: [SrcuCounters::new(), SrcuCounters::new()],
            current: AtomicUsize::new(0),
            objs: [Obj::new(), Obj::new(), Obj::new(), Obj::new()],
        })
    }
    /// The section's body: load the pointer, read the object.
    fn body(&self) {
        let o = self.current.load(Ordering::Acquire);
        self.objs[o].read();
    }
    fn borrowed_section(&self, s: usize) {
        let idx = self.slots[s].lock(&self.index);
        self.body();
        self.slots[s].unlock(idx);
    }
    fn replace(&self, new: usize) -> usize {
        let old = self.current.load(Ordering::Relaxed);
        self.current.store(new, Ordering::Release);
        old
    }
    fn drain(&self, i: usize) {
        while !drained(&self.slots, i) {
            thread::yield_now();
        }
    }
    /// The grace period of the brief: heavy_barrier; drain(1 - current); flip; drain(old).
    fn grace_period(&self) {
        heavy_barrier();
        let active = self.index.current();
        self.drain(1 - active);
        let old = self.index.flip();
        self.drain(old);
    }
}

/// The reader reads the index, says so, then (if `forced`) waits until the writer has run
/// `stall_gps` whole grace periods before counting itself; the writer then removes object 0
/// and runs one more grace period before freeing it.
fn stalled(stall_gps: usize, forced: bool) {
    loom::model(move || {
        let w = World::new();
        let idx_read = Arc::new(AtomicBool::new(false));
        let gps_done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (w, idx_read, gps_done) = (w.clone(), idx_read.clone(), gps_done.clone());
            thread::spawn(move || {
                let idx = w.index.current();
                idx_read.store(true, Ordering::Release);
                if forced {
                    while !gps_done.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                }
                w.slots[0].lock_on(idx);
                w.body();
                w.slots[0].unlock(idx);
            })
        };
        while !idx_read.load(Ordering::Acquire) {
            thread::yield_now();
        }
        for _ in 0..stall_gps {
            w.grace_period();
        }
        gps_done.store(true, Ordering::Release);
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}

#[test]
fn stalled_across_two_gps_forced_then_third_frees() {
    stalled(2, true);
}

#[test]
fn stalled_across_three_gps_forced_then_fourth_frees() {
    stalled(3, true);
}

#[test]
fn stalled_two_gps_unforced() {
    stalled(2, false);
}

/// Two stragglers on two slots with different stale indices: A reads the index before GP1,
/// B between GP1 and GP2; both count themselves after GP2; GP3 removes and frees.
#[test]
fn two_stragglers_with_different_stale_indices() {
    // Three spin-waits on flags: raise loom's branch limit (not a protocol matter).
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(|| {
        let w = World::new();
        let a_read = Arc::new(AtomicBool::new(false));
        let gp1 = Arc::new(AtomicBool::new(false));
        let b_read = Arc::new(AtomicBool::new(false));
        let gp2 = Arc::new(AtomicBool::new(false));
        let ra = {
            let (w, a_read, gp2) = (w.clone(), a_read.clone(), gp2.clone());
            thread::spawn(move || {
                let idx = w.index.current();
                a_read.store(true, Ordering::Release);
                while !gp2.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                w.slots[0].lock_on(idx);
                w.body();
                w.slots[0].unlock(idx);
            })
        };
        let rb = {
            let (w, gp1, b_read, gp2) = (w.clone(), gp1.clone(), b_read.clone(), gp2.clone());
            thread::spawn(move || {
                while !gp1.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                let idx = w.index.current();
                b_read.store(true, Ordering::Release);
                while !gp2.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                w.slots[1].lock_on(idx);
                w.body();
                w.slots[1].unlock(idx);
            })
        };
        while !a_read.load(Ordering::Acquire) {
            thread::yield_now();
        }
        w.grace_period();
        gp1.store(true, Ordering::Release);
        while !b_read.load(Ordering::Acquire) {
            thread::yield_now();
        }
        w.grace_period();
        gp2.store(true, Ordering::Release);
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        ra.join().unwrap();
        rb.join().unwrap();
    });
}
