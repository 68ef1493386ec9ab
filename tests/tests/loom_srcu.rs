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
//! The second half rebuilds the engine's way of running a grace period (`gp/srcu.rs`,
//! `gp/grace_period.rs`; `gp/` is not built under loom) on the same raw code: slots checked
//! one at a time in list order, each waited for before the next, and a grace period that a
//! polling leader gives up on resumed by the next leader (docs/design.md §11, "One slot at a
//! time" and "Resumed grace periods"). Threads that wait for one another there, other than
//! the leader waiting for a slot, block on loom channels: with a flag spun on beside the
//! leader's spin (a guard's hand-over, the worker's request), loom exceeded its maximum number
//! of branches, in executions where the spinning threads take turns (a yield is a free
//! switch) and the thread they wait for does not run.
//!
//! Run with `ci/loom.sh`, or:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test loom_srcu --release`.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{mpsc, Arc};
use loom::thread;
use rcu_core::raw::barrier::heavy_barrier;
use rcu_core::raw::protocol::GpSequence;
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
    /// A section loaded object 0, the one the new models remove (coverage only: a std
    /// atomic outside the model).
    saw_old: std::sync::atomic::AtomicBool,
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
            saw_old: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A section through a borrowed guard on slot `s`: load the pointer, read the object.
    fn borrowed_section(&self, s: usize) {
        let idx = self.slots[s].lock(&self.index);
        self.borrowed_body();
        self.slots[s].unlock(idx);
    }

    /// What a section does: load the pointer, read the object.
    fn borrowed_body(&self) {
        let o = self.load();
        self.objs[o].read();
    }

    /// A section's load of the pointer.
    fn load(&self) -> usize {
        // Acquire: pairs with the Release publication in `replace`.
        let o = self.current.load(Ordering::Acquire);
        if o == 0 {
            Reached::set(&self.saw_old, true);
        }
        o
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
/// handed through a channel, while the writer runs a grace period. (A channel, not a flag the
/// ender spins on: with the flag, the model exceeded loom's branch limit at three preemptions;
/// see the module docs.)
#[test]
fn srcu_owned_unlock_on_another_thread() {
    loom::model(|| {
        let w = World::new();
        let (hand, handed) = mpsc::channel::<usize>();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let idx = w.slots[0].lock_owned(&w.index);
                let o = w.load();
                w.objs[o].read();
                // The guard's move (its index): the send happens before the receive.
                hand.send(idx).unwrap();
            })
        };
        let ender = {
            let w = w.clone();
            thread::spawn(move || {
                let idx = handed.recv().unwrap();
                w.slots[0].unlock_owned(idx);
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
            thread::spawn(move || straggler_section(&w, 0, &idx_read))
        };
        after_the_index_read(&idx_read);
        w.grace_period(how); // nothing removed yet: may finish before the reader counts
        let old = w.replace(2);
        w.grace_period(how);
        w.objs[old].free();
        reader.join().unwrap();
    });
}

/// A straggler's section on slot `s`: what `lock` does, split so that the model can delay the
/// increment past a whole grace period: the stale index read first, then the count on it
/// (whenever loom likes once `idx_read` is set), the pointer's load and the read.
fn straggler_section(w: &World, s: usize, idx_read: &AtomicBool) {
    let idx = w.index.current();
    // Release: lets the writer start only after the stale read (forcing it).
    idx_read.store(true, Ordering::Release);
    w.slots[s].lock_on(idx);
    w.borrowed_body();
    w.slots[s].unlock(idx);
}

/// Waits for `straggler_section`'s index read.
fn after_the_index_read(idx_read: &AtomicBool) {
    // Acquire: the forcing flag.
    while !idx_read.load(Ordering::Acquire) {
        thread::yield_now();
    }
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

// ---------------------------------------------------------------------------------------------
// The engine's grace period (`gp/srcu.rs`, `gp/grace_period.rs`), rebuilt on the raw layer
// (gp/ is not built under loom): slots checked one at a time in list order, each with
// `drained([&slot], i)` and waited for before the next, and a grace period one leader gives
// up on resumed by the next one.
// ---------------------------------------------------------------------------------------------

/// How the rebuilt engine runs its grace periods: as the engine does, or with one thing
/// broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Drive {
    /// `SrcuMachine::drive`, `run_one`, `try_advance` and the leader role as they are.
    Engine,
    /// `drive` does not clear `flipped` when it completes a grace period: the next one takes
    /// itself to be past its flip and completes after scan 1.
    FlippedLeftSet,
    /// A leader that resumes a grace period takes it to be past its flip (as if leaders gave
    /// up only in scan 2): after a give-up in scan 1 it checks the inactive index again and
    /// completes, never draining the active one.
    ResumedPastTheFlip,
    /// The role handed over unordered: a Relaxed give-up, and `start_or_resume` without its
    /// fence. (Either one alone keeps the model passing, as in model C2 of `loom.rs`.)
    UnorderedResume,
}

/// What one execution reached (coverage only: std atomics outside the model, Relaxed, as
/// loom runs one thread at a time).
#[derive(Default, Debug)]
struct Reached {
    /// A slot's check found it not drained and its leader waited for it.
    waited: std::sync::atomic::AtomicBool,
    /// `Engine::flipped` as its last store left it (read at a give-up without a loom load,
    /// which would add a step to every execution).
    flipped: std::sync::atomic::AtomicBool,
    /// The grace period a leader gave up on (0: none), and whether it had flipped.
    given_up: std::sync::atomic::AtomicU64,
    given_up_flipped: std::sync::atomic::AtomicBool,
    /// Another leader resumed that grace period and waited for a slot in it.
    resumed_waited: std::sync::atomic::AtomicBool,
    /// A section held the old object across a sleep (`resumed`).
    held_old: std::sync::atomic::AtomicBool,
}

impl Reached {
    fn set(flag: &std::sync::atomic::AtomicBool, value: bool) {
        // Relaxed: coverage bookkeeping outside the model.
        flag.store(value, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(flag: &std::sync::atomic::AtomicBool) -> bool {
        // Relaxed: as in `set`.
        flag.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A domain's grace-period machinery (`GracePeriods` with its `SrcuMachine`).
struct Engine {
    seq: GpSequence,
    /// `SrcuMachine::flipped`: the grace period in progress has done scan 1 and flipped.
    flipped: AtomicBool,
    /// `GracePeriods::leader`.
    leader: AtomicBool,
    how: Drive,
    reached: Reached,
}

impl Engine {
    fn new(how: Drive) -> Arc<Self> {
        Arc::new(Engine {
            seq: GpSequence::new(),
            flipped: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            how,
            reached: Reached::default(),
        })
    }

    /// `GracePeriods::try_lead`.
    fn try_lead(&self) -> bool {
        // Acquire: as `try_lead`; pairs with the store in `stop_leading`: the previous
        // leader's steps (its barrier, scans, flip and `flipped`) happen before ours.
        self.leader.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// `GracePeriods::stop_leading` (without its event: the model's waiters yield).
    fn stop_leading(&self) {
        let ordering =
            if self.how == Drive::UnorderedResume { Ordering::Relaxed } else { Ordering::SeqCst };
        // SeqCst (a Release in effect), as `stop_leading`: pairs with the Acquire above.
        self.leader.store(false, ordering);
    }

    /// `SrcuMachine::start_or_resume`: `GpSequence::start_or_resume` (under loom the heavy
    /// barrier and the plain flavour's fence are the same SeqCst fence).
    fn start_or_resume(&self) -> u64 {
        match self.how {
            Drive::UnorderedResume => start_or_resume_without_the_fence(&self.seq),
            Drive::ResumedPastTheFlip => {
                let resuming = self.seq.completed() < self.seq.started();
                let gp = self.seq.start_or_resume();
                if resuming {
                    // Relaxed: as in `drive`.
                    self.flipped.store(true, Ordering::Relaxed);
                }
                gp
            }
            Drive::Engine | Drive::FlippedLeftSet => self.seq.start_or_resume(),
        }
    }

    /// `SrcuMachine::drive` over `w`'s slots in list order: for a slot not drained on the
    /// index being drained, `wait(slot, index)` waits and returns true, or gives up (false).
    fn drive(&self, w: &World, mut wait: impl FnMut(usize, usize) -> bool) -> bool {
        loop {
            let inactive = 1 - w.index.current();
            for (s, slot) in w.slots.iter().enumerate() {
                if !drained([slot], inactive) && !wait(s, inactive) {
                    return false;
                }
            }
            // Relaxed (all three): leaders only; the role's hand-over orders them.
            if self.flipped.load(Ordering::Relaxed) {
                if self.how != Drive::FlippedLeftSet {
                    self.flipped.store(false, Ordering::Relaxed);
                    Reached::set(&self.reached.flipped, false);
                }
                return true;
            }
            let old = w.index.flip();
            assert_eq!(old, inactive ^ 1, "the index moved under its leader");
            self.flipped.store(true, Ordering::Relaxed);
            Reached::set(&self.reached.flipped, true);
        }
    }

    /// `run_one`'s wait for one slot (`wait_for_srcu_reader`): until it drains.
    fn wait_for_slot(&self, w: &World, s: usize, i: usize) -> bool {
        Reached::set(&self.reached.waited, true);
        while !drained([&w.slots[s]], i) {
            thread::yield_now();
        }
        true
    }

    /// `GracePeriods::run_one` for a sleepable domain: start (advance and barrier) or resume
    /// (a fence) the grace period, drive it waiting for every slot, complete it. Caller: the
    /// leader.
    fn run_one(&self, w: &World) {
        let gp = self.start_or_resume();
        // Relaxed: coverage bookkeeping outside the model.
        let resuming = self.reached.given_up.load(std::sync::atomic::Ordering::Relaxed) == gp;
        let done = self.drive(w, |s, i| {
            if resuming {
                Reached::set(&self.reached.resumed_waited, true);
            }
            self.wait_for_slot(w, s, i)
        });
        assert!(done, "a waiting drive gave up");
        self.seq.complete(gp);
    }

    /// `GracePeriods::try_advance`, what `poll` runs: leads if nobody does, starts or resumes
    /// the grace period `cookie` needs, and completes it if no slot holds it up; else gives
    /// the role up at the first slot not drained, leaving the grace period where it stands.
    fn try_advance(&self, w: &World, cookie: u64) -> bool {
        if self.seq.is_completed(cookie) {
            return true;
        }
        if !self.try_lead() {
            return false;
        }
        while !self.seq.is_completed(cookie) {
            let gp = self.start_or_resume();
            if !self.drive(w, |_, _| false) {
                let r = &self.reached;
                // Relaxed: coverage bookkeeping outside the model.
                r.given_up.store(gp, std::sync::atomic::Ordering::Relaxed);
                Reached::set(&r.given_up_flipped, Reached::get(&r.flipped));
                self.stop_leading();
                return false;
            }
            self.seq.complete(gp);
        }
        self.stop_leading();
        true
    }

    /// `GracePeriods::wait_until_completed`, with a yield where the engine sleeps on the
    /// completion event.
    fn wait_until_completed(&self, w: &World, cookie: u64) {
        loop {
            if self.seq.is_completed(cookie) {
                return;
            }
            if self.try_lead() {
                while !self.seq.is_completed(cookie) {
                    self.run_one(w);
                }
                self.stop_leading();
                return;
            }
            thread::yield_now();
        }
    }
}

/// `GpSequence::start_or_resume` without its SeqCst fence (as in `loom.rs`; `completed()` is
/// an Acquire load where the real code's is Relaxed: stronger, and in the failing execution
/// it reads the initial value, so it orders nothing).
fn start_or_resume_without_the_fence(seq: &GpSequence) -> u64 {
    let started = seq.started();
    if seq.completed() < started {
        started
    } else {
        seq.start()
    }
}

/// Coverage of a model's executions.
#[derive(Debug, Default)]
struct Explored {
    executions: usize,
    /// A section loaded the old object and a leader waited for a slot.
    saw_old_and_waited: usize,
    /// A leader gave up before its flip (in scan 1), another resumed and waited, and a
    /// section held the old object across a sleep (`resumed`).
    resumed_in_scan_1: usize,
    /// The same, with a leader that gave up after its flip (in scan 2).
    resumed_in_scan_2: usize,
}

/// The model reached the interleaving that matters: a section loaded the old object and a
/// grace period waited for a slot (so a pass is not just every section seeing the new one).
fn assert_explored(explored: &Explored) {
    assert!(
        explored.saw_old_and_waited > 0,
        "no grace period waited beside the old object: {explored:?}"
    );
}

/// Runs `f` under loom (bounds from the `LOOM_*` variables) and counts what its executions
/// reached; the counts are printed (visible with `--nocapture`) and returned.
fn explore(f: impl Fn() -> (Arc<World>, Arc<Engine>) + Sync + Send + 'static) -> Explored {
    use std::sync::atomic::{AtomicUsize as Count, Ordering::Relaxed};
    let counts = std::sync::Arc::new([(); 4].map(|()| Count::new(0)));
    let c = counts.clone();
    loom::model(move || {
        let (w, e) = f();
        let r = &e.reached;
        // Relaxed (all): plain counters outside the model.
        c[0].fetch_add(1, Relaxed);
        if Reached::get(&w.saw_old) && Reached::get(&r.waited) {
            c[1].fetch_add(1, Relaxed);
        }
        if Reached::get(&r.resumed_waited) && Reached::get(&r.held_old) {
            let scan = if Reached::get(&r.given_up_flipped) { 3 } else { 2 };
            c[scan].fetch_add(1, Relaxed);
        }
    });
    let explored = Explored {
        executions: counts[0].load(Relaxed),
        saw_old_and_waited: counts[1].load(Relaxed),
        resumed_in_scan_1: counts[2].load(Relaxed),
        resumed_in_scan_2: counts[3].load(Relaxed),
    };
    let name = std::thread::current().name().map(str::to_owned);
    eprintln!(
        "loom model {}: {} executions; {} with a section loading the old object and a leader \
         waiting for a slot; {} with a section holding the old object across a grace period \
         resumed in scan 1, {} in scan 2",
        name.as_deref().unwrap_or("?"),
        explored.executions,
        explored.saw_old_and_waited,
        explored.resumed_in_scan_1,
        explored.resumed_in_scan_2,
    );
    explored
}

/// Two readers, one borrowed section each on its own slot, against the engine's grace period
/// checking the slots one at a time. With `straggler`, slot 1's reader reads the index before
/// a first grace period (which removes nothing) and counts itself whenever loom likes, as in
/// `straggler`; the writer then removes object 0 and frees it after a second one.
fn per_slot_two_readers(how: Drive, straggler: bool) -> Explored {
    explore(move || {
        let w = World::new();
        let e = Engine::new(how);
        let idx_read = Arc::new(AtomicBool::new(false));
        let first = {
            let w = w.clone();
            thread::spawn(move || w.borrowed_section(0))
        };
        let second = {
            let (w, idx_read) = (w.clone(), idx_read.clone());
            thread::spawn(move || {
                if straggler {
                    straggler_section(&w, 1, &idx_read);
                } else {
                    w.borrowed_section(1);
                }
            })
        };
        if straggler {
            after_the_index_read(&idx_read);
            e.run_one(&w);
        }
        let old = w.replace(1);
        e.run_one(&w);
        w.objs[old].free();
        first.join().unwrap();
        second.join().unwrap();
        (w, e)
    })
}

/// The engine checks slots one at a time, each until it drains, in list order (scan 1 over
/// every slot, flip, scan 2 over every slot): two readers on two slots, and a straggler on
/// the second slot beside a reader on the first across two grace periods.
#[test]
fn per_slot_scan_two_readers() {
    let explored = per_slot_two_readers(Drive::Engine, false);
    assert_explored(&explored);
    let explored = per_slot_two_readers(Drive::Engine, true);
    assert_explored(&explored);
}

/// A `drive` that leaves `flipped` set when it completes: the next grace period checks the
/// slots on its inactive index, takes itself to be past its flip and completes, never
/// waiting for the sections on its active index.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_per_slot_flipped_left_set_is_caught() {
    per_slot_two_readers(Drive::FlippedLeftSet, true);
}

/// An owned section begun on slot 0's thread, whose guard (its index, and the object loaded
/// in it) moves through a channel to slot 1's thread, which reads the object through it and
/// ends it with `unlock_owned` on slot 0, inside a borrowed section of its own on slot 1; the
/// engine checks the slots one at a time. (A channel, not a flag the receiver spins on: see
/// the module docs.)
#[test]
fn per_slot_scan_owned_guard_migrates() {
    let explored = explore(|| {
        let w = World::new();
        let e = Engine::new(Drive::Engine);
        let (send, recv) = mpsc::channel::<(usize, usize)>();
        let owner = {
            let w = w.clone();
            thread::spawn(move || {
                let idx = w.slots[0].lock_owned(&w.index);
                let o = w.load();
                w.objs[o].read();
                // The guard's move: the send happens before the receive.
                send.send((idx, o)).unwrap();
            })
        };
        let receiver = {
            let w = w.clone();
            thread::spawn(move || {
                let mine = w.slots[1].lock(&w.index);
                let (idx, o) = recv.recv().unwrap();
                w.objs[o].read();
                w.slots[0].unlock_owned(idx);
                w.borrowed_body();
                w.slots[1].unlock(mine);
            })
        };
        let old = w.replace(1);
        e.run_one(&w);
        w.objs[old].free();
        owner.join().unwrap();
        receiver.join().unwrap();
        (w, e)
    });
    assert_explored(&explored);
}

/// A sleepable section on slot `s`, begun by `begin` (which counts it and returns the index
/// its end is counted on): it loads the pointer and reads the object, sleeps until `wake`
/// has a message, reads the object again and ends.
fn sleeping_section(
    w: &World,
    e: &Engine,
    s: usize,
    begin: impl FnOnce() -> usize,
    wake: mpsc::Receiver<()>,
) {
    let idx = begin();
    let o = w.load();
    w.objs[o].read();
    wake.recv().unwrap();
    w.objs[o].read();
    if o == 0 {
        Reached::set(&e.reached.held_old, true);
    }
    w.slots[s].unlock(idx);
}

/// A grace period given up and resumed (`try_advance`, then `wait_until_completed` on the
/// worker, as model C2 of `loom.rs`). Two sleepable sections, each sleeping until the writer
/// has polled: slot 0's counts on the index it reads; slot 1's is a straggler that read the
/// index before the last grace period flipped it (from 1 to 0, the state the model starts
/// in) and counts on 1, the inactive index, whenever loom likes, so that scan 1 may find its
/// slot not drained as well as scan 2. The writer removes object 0, asks the worker for the
/// grace period and polls once: it leads, starts the grace period and gives up at the first
/// slot not drained, before or after its flip, then wakes the sections. The worker takes the
/// role (Acquire, after the writer's give-up), resumes the grace period after
/// `start_or_resume`'s fence, rescans from the first slot with `flipped` telling it which
/// scan it is in, and completes it. (Or the worker leads first, and the poll finds the role
/// taken.) The writer frees once the cookie has completed.
///
/// The sleeps give loom free switches (a blocked thread costs no preemption), so that at two
/// preemptions a section holds the old object across a grace period resumed in either scan.
fn resumed(how: Drive) -> Explored {
    explore(move || {
        let w = World::new();
        let e = Engine::new(how);
        // The worker's requests (`Worker::request`) and the sections' wake-ups: channels, so
        // that threads block where the engine's sleep, instead of spinning beside the leader
        // (see the module docs).
        let (request, requested) = mpsc::channel::<u64>();
        let (wake_first, first_wakes) = mpsc::channel::<()>();
        let (wake_second, second_wakes) = mpsc::channel::<()>();
        let first = {
            let (w, e) = (w.clone(), e.clone());
            thread::spawn(move || {
                sleeping_section(&w, &e, 0, || w.slots[0].lock(&w.index), first_wakes);
            })
        };
        let second = {
            let (w, e) = (w.clone(), e.clone());
            thread::spawn(move || {
                let begin = || {
                    w.slots[1].lock_on(1);
                    1
                };
                sleeping_section(&w, &e, 1, begin, second_wakes);
            })
        };
        let worker = {
            let (w, e) = (w.clone(), e.clone());
            thread::spawn(move || {
                let cookie = requested.recv().unwrap();
                e.wait_until_completed(&w, cookie);
            })
        };
        let old = w.replace(1);
        let cookie = e.seq.cookie();
        // The request carries nothing the grace period needs: its ordering comes from
        // `cookie`.
        request.send(cookie).unwrap();
        let freed = e.try_advance(&w, cookie);
        wake_first.send(()).unwrap();
        wake_second.send(()).unwrap();
        if freed {
            w.objs[old].free();
        }
        worker.join().unwrap();
        assert!(e.seq.is_completed(cookie), "the worker stopped before serving the cookie");
        if !freed {
            w.objs[old].free();
        }
        first.join().unwrap();
        second.join().unwrap();
        (w, e)
    })
}

/// A grace period given up at the first slot not drained, in scan 1 or in scan 2, and
/// resumed by the next leader, still waits for every section that could hold what was
/// removed before it started.
#[test]
fn resumed_grace_period_mid_phase() {
    let explored = resumed(Drive::Engine);
    assert!(explored.resumed_in_scan_1 > 0, "no grace period resumed in scan 1: {explored:?}");
    assert!(explored.resumed_in_scan_2 > 0, "no grace period resumed in scan 2: {explored:?}");
}

/// A leader that takes every grace period it resumes to be past its flip: after a give-up in
/// scan 1 (the straggler's slot not drained), it checks the inactive index again and
/// completes, while slot 0's section sleeps on the active index holding the old object.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_resume_taken_past_the_flip_is_caught() {
    resumed(Drive::ResumedPastTheFlip);
}

/// The leader role handed over with neither ordering (a Relaxed give-up, no fence in
/// `start_or_resume`): the resuming leader's checks are not ordered after the first leader's
/// barrier, and may read a slot's counters as they were before its section counted itself.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_resume_unordered_is_caught() {
    resumed(Drive::UnorderedResume);
}
