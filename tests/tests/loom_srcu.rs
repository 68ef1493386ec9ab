//! loom models of the sleepable (SRCU) reader/grace-period protocol, run on the real
//! `rcu_core::raw::srcu` code (under `--cfg loom` both barriers are `fence(SeqCst)`).
//!
//! The shape is model A's of `loom.rs`: an RCU-protected pointer (an index into two
//! objects), readers that load it inside sections and read the object, and a writer that
//! unpublishes the old object, runs a grace period the way the engine will (barrier, drain
//! the inactive index, flip, drain the old one) and "frees" it: it writes poison into the
//! payload, a loom `UnsafeCell`, so loom reports any read of it not ordered before the free.
//!
//! Each broken variant drops or weakens one step of the grace period and must be caught:
//! a model that passes with a step removed says nothing about that step. The heavy barrier's
//! tooth needs three preemptions (the straggler's scan 1 has no other fence before it; before
//! scan 2 the flip's fences stand in for it), so that model sets its own bound.
//!
//! Run with `ci/loom.sh`, or:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test loom_srcu --release`.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use rcu_core::raw::barrier::heavy_barrier;
use rcu_core::raw::srcu::{drained, SrcuCounters, SrcuIndex};

/// Payload of a live object.
const LIVE: u64 = 0x00A1_1CE0;
/// Payload written by "free".
const POISON: u64 = 0xDEAD_BEEF;

/// A heap object as RCU sees it: a payload and a freed mark.
struct Obj {
    payload: UnsafeCell<u64>,
    freed: AtomicBool,
}

impl Obj {
    fn new() -> Self {
        Obj { payload: UnsafeCell::new(LIVE), freed: AtomicBool::new(false) }
    }

    /// What a reader does with an object it loaded inside a section.
    fn read(&self) {
        // SAFETY: a plain read of the payload; loom reports it if it races with `free`.
        let v = self.payload.with(|p| unsafe { *p });
        assert_eq!(v, LIVE, "reader saw a poisoned (freed) object");
        // Relaxed: a witness, not part of the protocol.
        assert!(!self.freed.load(Ordering::Relaxed), "reader saw a freed object");
    }

    /// Models `free`: the memory is overwritten.
    fn free(&self) {
        // SAFETY: a plain write; loom reports it if any reader's access is not ordered before.
        self.payload.with_mut(|p| unsafe { *p = POISON });
        // Relaxed: a witness only.
        self.freed.store(true, Ordering::Relaxed);
    }
}

/// One sleepable domain with one pointer and two reader slots.
struct World {
    index: SrcuIndex,
    slots: [SrcuCounters; 2],
    /// Index of the published object.
    current: AtomicUsize,
    objs: [Obj; 3],
}

/// How the writer's grace period runs: the real one, or one with a step broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gp {
    Correct,
    /// No heavy barrier before the scans.
    NoBarrier,
    /// Only the old index is drained, after the flip (no drain of the inactive one first).
    SingleScan,
    /// Locks summed before unlocks (`drained_locks_first`).
    LocksFirst,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(World {
            index: SrcuIndex::new(),
            slots: [SrcuCounters::new(), SrcuCounters::new()],
            current: AtomicUsize::new(0),
            objs: [Obj::new(), Obj::new(), Obj::new()],
        })
    }

    /// A section through a borrowed guard on slot `s`: load the pointer, read the object.
    fn borrowed_section(&self, s: usize) {
        let idx = self.slots[s].lock(&self.index);
        // Acquire: pairs with the Release publication in `replace`.
        let o = self.current.load(Ordering::Acquire);
        self.objs[o].read();
        self.slots[s].unlock(idx);
    }

    /// Publishes object `new` and returns the one it replaced (the writer is the only one).
    fn replace(&self, new: usize) -> usize {
        // Relaxed: only this thread stores the pointer.
        let old = self.current.load(Ordering::Relaxed);
        // Release: publishes `new`, as `rcu_assign_pointer`.
        self.current.store(new, Ordering::Release);
        old
    }

    /// Waits until index `i` drains.
    fn drain(&self, i: usize, how: Gp) {
        loop {
            let done = if how == Gp::LocksFirst {
                drained_locks_first(&self.slots, i)
            } else {
                drained(&self.slots, i)
            };
            if done {
                return;
            }
            thread::yield_now();
        }
    }

    /// One grace period, the engine's way or with a step broken.
    fn grace_period(&self, how: Gp) {
        if how != Gp::NoBarrier {
            heavy_barrier();
        }
        let active = self.index.current();
        if how != Gp::SingleScan {
            self.drain(1 - active, how);
        }
        let old = self.index.flip();
        self.drain(old, how);
    }
}

/// `drained` with the sums in the wrong order (a broken variant): every lock first, then
/// every unlock. A section that begins and ends between the two sums is counted as ended
/// but not as begun, which can balance a section still open.
fn drained_locks_first(slots: &[SrcuCounters; 2], i: usize) -> bool {
    let locks = slots.iter().fold(0u64, |sum, s| sum.wrapping_add(s.locks(i)));
    let unlocks = slots.iter().fold(0u64, |sum, s| sum.wrapping_add(s.unlocks(i)));
    locks == unlocks
}

/// The writer replaces object 0 by 1, runs a grace period, frees 0, while a reader reads.
fn one_reader(how: Gp) {
    loom::model(move || {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || w.borrowed_section(0))
        };
        let old = w.replace(1);
        w.grace_period(how);
        w.objs[old].free();
        reader.join().unwrap();
    });
}

#[test]
fn srcu_borrowed_reader_against_grace_period() {
    one_reader(Gp::Correct);
}

/// An owned guard begun on the reader's thread and ended on a third thread, to which it was
/// handed (a channel: here a flag with Release/Acquire), while the writer runs a grace period.
#[test]
fn srcu_owned_unlock_on_another_thread() {
    loom::model(|| {
        let w = World::new();
        let handed = Arc::new(AtomicUsize::new(usize::MAX));
        let reader = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || {
                let idx = w.slots[0].lock_owned(&w.index);
                // Acquire: as in `borrowed_section`.
                let o = w.current.load(Ordering::Acquire);
                w.objs[o].read();
                // Release: hands the guard (its index) over; pairs with the Acquire below.
                handed.store(idx, Ordering::Release);
            })
        };
        let ender = {
            let (w, handed) = (w.clone(), handed.clone());
            thread::spawn(move || loop {
                // Acquire: the guard's move.
                let idx = handed.load(Ordering::Acquire);
                if idx != usize::MAX {
                    w.slots[0].unlock_owned(idx);
                    return;
                }
                thread::yield_now();
            })
        };
        let old = w.replace(1);
        w.grace_period(Gp::Correct);
        w.objs[old].free();
        reader.join().unwrap();
        ender.join().unwrap();
    });
}

/// A straggler across two grace periods: the reader reads the index, then the first grace
/// period runs whole, then the reader counts itself on the index it read (now the inactive
/// one) and loads the pointer, which the second grace period removed. Forced order: the
/// reader's index read happens before the first grace period starts; the rest is explored.
fn straggler(how: Gp) {
    straggler_within(how, None);
}

/// `straggler`, with loom's preemption bound set to `bound` (None: `LOOM_MAX_PREEMPTIONS`).
fn straggler_within(how: Gp, bound: Option<usize>) {
    let mut builder = loom::model::Builder::new();
    if bound.is_some() {
        builder.preemption_bound = bound;
    }
    builder.check(move || {
        let w = World::new();
        let idx_read = Arc::new(AtomicBool::new(false));
        let reader = {
            let (w, idx_read) = (w.clone(), idx_read.clone());
            thread::spawn(move || {
                // What `lock` does, split so that the model can delay the increment past a
                // whole grace period: the stale index read first.
                let idx = w.index.current();
                // Release: lets the writer start only after the stale read (forcing it).
                idx_read.store(true, Ordering::Release);
                w.slots[0].lock_on(idx);
                // Acquire: as in `borrowed_section`.
                let o = w.current.load(Ordering::Acquire);
                w.objs[o].read();
                w.slots[0].unlock(idx);
            })
        };
        // Acquire: the forcing flag.
        while !idx_read.load(Ordering::Acquire) {
            thread::yield_now();
        }
        w.grace_period(how); // nothing removed yet: may finish before the reader counts
        let old = w.replace(2);
        w.grace_period(how);
        w.objs[old].free();
        reader.join().unwrap();
    });
}

#[test]
fn srcu_straggler_with_a_stale_index_across_two_grace_periods() {
    straggler(Gp::Correct);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn broken_srcu_single_scan_is_caught() {
    straggler(Gp::SingleScan);
}

/// Without the heavy barrier, a straggler's loads may miss the removal while scan 1 misses
/// its lock (store-buffering). Three preemptions are needed to reach it.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_srcu_no_heavy_barrier_is_caught() {
    straggler_within(Gp::NoBarrier, Some(3));
}

/// Two readers, one holding the old object across the grace period, the other a short
/// section that a scan may count as ended but not as begun.
fn two_readers(how: Gp) {
    loom::model(move || {
        let w = World::new();
        let readers: Vec<_> = (0..2)
            .map(|s| {
                let w = w.clone();
                thread::spawn(move || w.borrowed_section(s))
            })
            .collect();
        let old = w.replace(1);
        w.grace_period(how);
        w.objs[old].free();
        for r in readers {
            r.join().unwrap();
        }
    });
}

#[test]
fn srcu_two_readers() {
    two_readers(Gp::Correct);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn broken_srcu_locks_summed_first_is_caught() {
    two_readers(Gp::LocksFirst);
}
