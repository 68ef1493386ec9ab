//! Red team (SRCU S2): a slot whose thread exits (a forgotten borrowed guard ended by
//! `force_end_borrowed`) is handed to a new thread (Release/Acquire, as a registry would),
//! which runs its own section on it, while a grace period removes and frees. Also: the old
//! thread leaves an owned guard alive that a third thread ends after the reuse. Real code.
//!
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test redteam_srcu_slot_reuse --release`
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
fn slot_reused_by_a_new_thread() {
    loom::model(|| {
        let w = World::new();
        let free_slot = Arc::new(AtomicBool::new(false));
        let t1 = {
            let (w, free_slot) = (w.clone(), free_slot.clone());
            thread::spawn(move || {
                let _forgotten = w.slots[0].lock(&w.index);
                w.body();
                w.slots[0].force_end_borrowed(); // thread exit
                free_slot.store(true, Ordering::Release); // slot back to the registry
            })
        };
        let t2 = {
            let (w, free_slot) = (w.clone(), free_slot.clone());
            thread::spawn(move || {
                while !free_slot.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                w.borrowed_section(0); // the new owner
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

#[test]
fn slot_reused_while_old_owned_guard_alive() {
    loom::model(|| {
        let w = World::new();
        let handed = Arc::new(AtomicUsize::new(usize::MAX));
        let t1 = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || {
                let oidx = w.slots[0].lock_owned(&w.index);
                w.body();
                w.slots[0].force_end_borrowed(); // thread exit: owned guard left alone
                handed.store(oidx, Ordering::Release); // guard moves; slot reused
            })
        };
        let t2 = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || loop {
                let idx = handed.load(Ordering::Acquire);
                if idx != usize::MAX {
                    // New owner of slot 0 runs a borrowed section, then ends the old guard.
                    w.borrowed_section(0);
                    w.body();
                    w.slots[0].unlock_owned(idx);
                    return;
                }
                thread::yield_now();
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        t1.join().unwrap();
        t2.join().unwrap();
    });
}
