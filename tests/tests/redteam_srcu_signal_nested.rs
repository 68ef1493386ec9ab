//! Red team (SRCU S2): a signal-handler-like nested section on the reader's own slot, run
//! between the outer section's index read and its lock increment (so the outer section
//! counts itself on an index read before the handler's, perhaps before a flip the handler
//! saw), or between the outer lock and unlock with the handler on the other index. Loom
//! cannot interrupt a thread, so the handler's section is inlined at that point of the
//! reader's program, which is what a handler running there does. Real code.
//!
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test redteam_srcu_signal_nested --release`
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

/// Reader: R; handler section (R', L', body, U'); L on R; body; U. Writer: remove, GP, free.
#[test]
fn handler_section_between_index_read_and_lock() {
    loom::model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let idx = w.index.current();
                w.borrowed_section(0); // the handler
                w.slots[0].lock_on(idx);
                w.body();
                w.slots[0].unlock(idx);
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}

/// As above but the outer index read is forced before a first grace period (a straggler),
/// the handler runs after it, and the second grace period removes and frees.
#[test]
fn handler_section_in_a_straggler() {
    loom::model(|| {
        let w = World::new();
        let idx_read = Arc::new(AtomicBool::new(false));
        let reader = {
            let (w, idx_read) = (w.clone(), idx_read.clone());
            thread::spawn(move || {
                let idx = w.index.current();
                idx_read.store(true, Ordering::Release);
                w.borrowed_section(0); // the handler
                w.slots[0].lock_on(idx);
                w.body();
                w.slots[0].unlock(idx);
            })
        };
        while !idx_read.load(Ordering::Acquire) {
            thread::yield_now();
        }
        w.grace_period();
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}

/// Outer section open; the handler's section (maybe on the other index, after a flip) runs
/// inside it, then the outer section loads again and ends.
#[test]
fn handler_section_inside_an_open_section() {
    loom::model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let idx = w.slots[0].lock(&w.index);
                w.body();
                w.borrowed_section(0); // the handler
                w.body();
                w.slots[0].unlock(idx);
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}
