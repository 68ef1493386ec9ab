//! Red team (SRCU S2): an owned guard's `unlock_owned` on another thread racing the owner's
//! `force_end_borrowed` (the owner exits with a borrowed guard forgotten), against a grace
//! period that removes and frees the object both sections read. Real code.
//!
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test redteam_srcu_owned_force_end --release`
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

#[test]
fn owned_unlock_races_force_end_borrowed() {
    loom::model(|| {
        let w = World::new();
        let handed = Arc::new(AtomicUsize::new(usize::MAX));
        let owner = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || {
                let oidx = w.slots[0].lock_owned(&w.index);
                w.body();
                handed.store(oidx, Ordering::Release); // the owned guard moves away
                let _forgotten = w.slots[0].lock(&w.index); // a borrowed guard, forgotten
                w.body();
                w.slots[0].force_end_borrowed(); // thread exit
            })
        };
        let ender = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || loop {
                let idx = handed.load(Ordering::Acquire);
                if idx != usize::MAX {
                    w.body(); // the owned guard is still used here
                    w.slots[0].unlock_owned(idx);
                    return;
                }
                thread::yield_now();
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        owner.join().unwrap();
        ender.join().unwrap();
    });
}
