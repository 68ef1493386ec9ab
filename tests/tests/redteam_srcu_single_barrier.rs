//! Red team (SRCU S2): "one heavy barrier per grace period suffices" (docs/design.md §11;
//! the kernel puts a full barrier between the unlock and lock sums of every check). On a
//! copy of the protocol: (a) as shipped; (b) heavy barrier removed; (c) heavy barrier and
//! reader barrier removed; (d) unlock increments and unlock-sum loads Relaxed (what the
//! per-check barrier would otherwise have to supply). If (b)/(c) pass, loom cannot judge the
//! barrier pair at all here; (d) shows whether Release/Acquire on the sums is load-bearing.
//!
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test redteam_srcu_single_barrier --release -- --test-threads=1`
#![cfg(loom)]

use copy::{drained, heavy_barrier, SrcuCounters, SrcuIndex};
use std::sync::atomic::Ordering as StdOrd;

/// A copy of `rcu_core::raw::srcu` (loom build) with switches: `FLIP_FENCES` (the two
/// SeqCst fences around the flip), `READER_FENCE` (B), `RELEASE_ACQUIRE` (unlocks Release,
/// unlock sums Acquire; else both Relaxed).
mod copy {
    use loom::sync::atomic::{fence, AtomicU64, Ordering};

    use std::sync::atomic::{AtomicBool as StdBool, Ordering as StdOrd};
    /// Switches, set before `loom::model` (the test binary runs with --test-threads=1 when
    /// tests set different values).
    pub static FLIP_FENCES: StdBool = StdBool::new(true);
    pub static READER_FENCE: StdBool = StdBool::new(true);
    pub static HEAVY: StdBool = StdBool::new(true);
    pub static RELEASE_ACQUIRE: StdBool = StdBool::new(true);

    fn flip_fences() -> bool {
        FLIP_FENCES.load(StdOrd::SeqCst)
    }
    fn reader_fence() -> bool {
        READER_FENCE.load(StdOrd::SeqCst)
    }
    fn rel() -> Ordering {
        if RELEASE_ACQUIRE.load(StdOrd::SeqCst) {
            Ordering::Release
        } else {
            Ordering::Relaxed
        }
    }
    fn acq() -> Ordering {
        if RELEASE_ACQUIRE.load(StdOrd::SeqCst) {
            Ordering::Acquire
        } else {
            Ordering::Relaxed
        }
    }
    /// The grace period's heavy barrier (a SeqCst fence under loom), or nothing.
    pub fn heavy_barrier() {
        if HEAVY.load(StdOrd::SeqCst) {
            fence(Ordering::SeqCst);
        }
    }

    pub struct SrcuIndex {
        value: AtomicU64,
    }
    impl SrcuIndex {
        pub fn new() -> Self {
            SrcuIndex { value: AtomicU64::new(0) }
        }
        pub fn current(&self) -> usize {
            (self.value.load(Ordering::Relaxed) & 1) as usize
        }
        pub fn flip(&self) -> usize {
            if flip_fences() {
                fence(Ordering::SeqCst);
            }
            let old = self.value.fetch_add(1, Ordering::Relaxed);
            if flip_fences() {
                fence(Ordering::SeqCst);
            }
            (old & 1) as usize
        }
    }
    pub struct SrcuCounters {
        lock: [AtomicU64; 2],
        unlock: [AtomicU64; 2],
        owned_lock: [AtomicU64; 2],
        owned_unlock: [AtomicU64; 2],
    }
    impl SrcuCounters {
        pub fn new() -> Self {
            SrcuCounters {
                lock: [AtomicU64::new(0), AtomicU64::new(0)],
                unlock: [AtomicU64::new(0), AtomicU64::new(0)],
                owned_lock: [AtomicU64::new(0), AtomicU64::new(0)],
                owned_unlock: [AtomicU64::new(0), AtomicU64::new(0)],
            }
        }
        fn barrier(&self) {
            if reader_fence() {
                fence(Ordering::SeqCst);
            }
        }
        pub fn lock(&self, index: &SrcuIndex) -> usize {
            let idx = index.current();
            self.lock_on(idx);
            idx
        }
        pub fn lock_on(&self, idx: usize) {
            self.lock[idx].fetch_add(1, rel());
            self.barrier();
        }
        pub fn unlock(&self, idx: usize) {
            self.unlock[idx].fetch_add(1, rel());
        }
        pub fn lock_owned(&self, index: &SrcuIndex) -> usize {
            let idx = index.current();
            self.owned_lock[idx].fetch_add(1, rel());
            self.barrier();
            idx
        }
        pub fn unlock_owned(&self, idx: usize) {
            self.owned_unlock[idx].fetch_add(1, rel());
        }
        pub fn unlocks(&self, i: usize) -> u64 {
            self.unlock[i].load(acq()).wrapping_add(self.owned_unlock[i].load(acq()))
        }
        pub fn locks(&self, i: usize) -> u64 {
            self.lock[i]
                .load(Ordering::Relaxed)
                .wrapping_add(self.owned_lock[i].load(Ordering::Relaxed))
        }
    }
    pub fn drained<'a, S>(slots: S, i: usize) -> bool
    where
        S: IntoIterator<Item = &'a SrcuCounters>,
        S::IntoIter: Clone,
    {
        let slots = slots.into_iter();
        let unlocks = slots.clone().fold(0u64, |sum, s| sum.wrapping_add(s.unlocks(i)));
        let locks = slots.fold(0u64, |sum, s| sum.wrapping_add(s.locks(i)));
        locks == unlocks
    }
}

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

fn m_one_reader() {
    loom::model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || w.borrowed_section(0))
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}

fn m_two_readers() {
    loom::model(|| {
        let w = World::new();
        let rs: Vec<_> = (0..2)
            .map(|s| {
                let w = w.clone();
                thread::spawn(move || w.borrowed_section(s))
            })
            .collect();
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        for r in rs {
            r.join().unwrap();
        }
    });
}

fn m_straggler(stall_gps: usize) {
    loom::model(move || {
        let w = World::new();
        let idx_read = Arc::new(AtomicBool::new(false));
        let reader = {
            let (w, idx_read) = (w.clone(), idx_read.clone());
            thread::spawn(move || {
                let idx = w.index.current();
                idx_read.store(true, Ordering::Release);
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
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
    });
}

fn m_owned() {
    loom::model(|| {
        let w = World::new();
        let handed = Arc::new(AtomicUsize::new(usize::MAX));
        let reader = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || {
                let idx = w.slots[0].lock_owned(&w.index);
                w.body();
                handed.store(idx, Ordering::Release);
            })
        };
        let ender = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || loop {
                let idx = handed.load(Ordering::Acquire);
                if idx != usize::MAX {
                    w.slots[0].unlock_owned(idx);
                    return;
                }
                thread::yield_now();
            })
        };
        let old = w.replace(1);
        w.grace_period();
        w.objs[old].free();
        reader.join().unwrap();
        ender.join().unwrap();
    });
}

fn set(heavy: bool, reader: bool, relacq: bool) {
    copy::HEAVY.store(heavy, StdOrd::SeqCst);
    copy::READER_FENCE.store(reader, StdOrd::SeqCst);
    copy::RELEASE_ACQUIRE.store(relacq, StdOrd::SeqCst);
}

fn all_models() {
    m_one_reader();
    m_two_readers();
    m_straggler(1);
    m_owned();
}

#[test]
fn a_as_shipped() {
    set(true, true, true);
    all_models();
}

#[test]
fn b_no_heavy_barrier() {
    set(false, true, true);
    all_models();
}

#[test]
fn c_no_barriers_at_all() {
    set(false, false, true);
    all_models();
}

#[test]
fn d_relaxed_unlocks_and_sums() {
    set(true, true, false);
    all_models();
}

fn set_flip(on: bool) {
    copy::FLIP_FENCES.store(on, StdOrd::SeqCst);
}

/// (e) heavy barrier and flip fences removed, reader barrier kept: does loom see H's need
/// once the flip's fences no longer stand in for it before scan 2?
#[test]
fn e1_no_heavy_no_flip_fences_one_reader() {
    set(false, true, true);
    set_flip(false);
    m_one_reader();
    set_flip(true);
}

#[test]
fn e2_no_heavy_no_flip_fences_straggler() {
    set(false, true, true);
    set_flip(false);
    m_straggler(1);
    set_flip(true);
}

/// (f) flip fences removed, heavy barrier kept (the shipped safety claim), two readers and a
/// straggler across two grace periods.
#[test]
fn f_flip_fences_removed_heavy_kept() {
    set(true, true, true);
    set_flip(false);
    m_two_readers();
    m_straggler(2);
    set_flip(true);
}

/// (b2) heavy barrier removed, flip fences kept, straggler only: scan 1 of the second grace
/// period has no fence between the removal and its loads (C11 allows the store-buffering
/// outcome); run with LOOM_MAX_PREEMPTIONS=3 too.
#[test]
fn b2_no_heavy_straggler_only() {
    set(false, true, true);
    set_flip(true);
    m_straggler(1);
}
