//! loom models of the reader/grace-period protocol, run on the real `rcu_core::raw::protocol`
//! code (under `--cfg loom` rcu-core builds only its `raw` layer, on loom's atomics; both
//! barriers are then `fence(SeqCst)`, i.e. the fence-mode protocol).
//!
//! Every model has the same shape: an RCU-protected pointer (`World::current`, an index into
//! two objects), readers that load it inside read sections and read the object, and a writer
//! that unpublishes the old object, waits for a grace period the way the engine does, and then
//! "frees" it. Freeing writes poison into the object's payload, a loom `UnsafeCell`, so loom's
//! causality checker reports any read of the payload that is not ordered before the free (a
//! data race, that is a use after free), and sets a `freed` flag that readers assert on.
//!
//! See `docs/design.md`, "What the loom models check", for how each model maps to the ordering
//! argument and what loom cannot check (membarrier itself).
//!
//! Run with `ci/loom.sh`, or:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test loom --release`.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use rcu_core::raw::protocol::{GpSequence, ReaderWord};

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

    /// What a reader does with an object it loaded inside a read section.
    fn read(&self) {
        // SAFETY: a plain read of the payload; loom reports it if it races with `free`.
        let v = self.payload.with(|p| unsafe { *p });
        assert_eq!(v, LIVE, "reader saw a poisoned (freed) object");
        // Relaxed: the flag is the model's witness, not part of the protocol; a reader whose
        // section is not ordered before the free may read `true` here.
        assert!(!self.freed.load(Ordering::Relaxed), "reader saw a freed object");
    }

    /// The writer (re)initialises an object before publishing it.
    fn init(&self) {
        // SAFETY: the object is not published yet; loom checks that no reader touches it.
        self.payload.with_mut(|p| unsafe { *p = LIVE });
    }

    /// Models `free`: the memory is overwritten.
    fn free(&self) {
        // SAFETY: a plain write; loom reports it if any reader's access is not ordered before.
        self.payload.with_mut(|p| unsafe { *p = POISON });
        // Relaxed: as in `read`, a witness only.
        self.freed.store(true, Ordering::Relaxed);
    }
}

/// One domain with one pointer and (up to) two readers.
struct World {
    seq: GpSequence,
    words: [ReaderWord; 2],
    /// Index of the published object: 0 at first, 1 after the writer's update.
    current: AtomicUsize,
    /// `registry::Slot::in_use` of the slot that holds `words[0]` (the registry is not built
    /// under loom, so the model carries the flag, with the registry's orderings). Claimed from
    /// the start, by the model's first reader; only the thread-exit models release it.
    in_use: AtomicBool,
    objs: [Obj; 2],
    /// What happened in this execution (outside the model: plain std atomics, not explored).
    witness: Witness,
}

/// Coverage witness of one execution: did a reader hold the old object, and did a grace
/// period have to wait for a reader? Executions with both are the interesting ones.
#[derive(Default)]
struct Witness {
    saw_old: std::sync::atomic::AtomicBool,
    waited: std::sync::atomic::AtomicBool,
    /// A section began after the grace period started and stayed inside until it completed.
    late_section: std::sync::atomic::AtomicBool,
    /// A grace period's scan is running (between `start` and `complete`). loom runs one
    /// thread at a time, so this follows the schedule.
    scanning: std::sync::atomic::AtomicBool,
    /// A new owner claimed the released slot and entered a section on its word while a grace
    /// period was scanning (models D).
    reused_mid_gp: std::sync::atomic::AtomicBool,
    /// A section that read the old object was abandoned, and the grace period was still held
    /// after its thread had ended (model D).
    held_after_exit: std::sync::atomic::AtomicBool,
}

impl World {
    fn new() -> Arc<Self> {
        Arc::new(World {
            seq: GpSequence::new(),
            words: [ReaderWord::new(), ReaderWord::new()],
            current: AtomicUsize::new(0),
            in_use: AtomicBool::new(true),
            objs: [Obj::new(), Obj::new()],
            witness: Witness::default(),
        })
    }

    /// `rcu_dereference` + use: loads the published object and reads it. Caller: inside a read
    /// section.
    fn load_and_read(&self) -> usize {
        // Acquire: as `RcuCell::load`, pairs with the Release half of the swap in `unpublish`.
        let i = self.current.load(Ordering::Acquire);
        self.objs[i].read();
        if i == 0 {
            // Relaxed: coverage bookkeeping outside the model.
            self.witness.saw_old.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        i
    }

    /// `rcu_assign_pointer`: publishes object 1, returns the old one.
    fn unpublish(&self) -> usize {
        self.objs[1].init();
        // AcqRel: as `RcuCell::replace`.
        self.current.swap(1, Ordering::AcqRel)
    }

    /// One grace period exactly as `GracePeriods::run_one` drives it (the caller is the
    /// leader): start, wait until no reader word blocks it, complete. `nreaders` words are
    /// scanned.
    fn grace_period(&self, nreaders: usize) -> u64 {
        let gp = self.seq.start();
        // Relaxed: coverage bookkeeping outside the model.
        self.witness.scanning.store(true, std::sync::atomic::Ordering::Relaxed);
        for word in &self.words[..nreaders] {
            while word.blocks(gp) {
                // Relaxed: coverage bookkeeping outside the model.
                self.witness.waited.store(true, std::sync::atomic::Ordering::Relaxed);
                thread::yield_now();
            }
        }
        // Relaxed: coverage bookkeeping outside the model.
        self.witness.scanning.store(false, std::sync::atomic::Ordering::Relaxed);
        self.seq.complete(gp);
        gp
    }

    /// `Registry::release`: the owner of `words[0]`, outside any section, returns its slot to
    /// the pool.
    fn release_slot(&self) {
        assert_eq!(self.words[0].depth(), 0, "released inside a section");
        // Release: as `Registry::release`; pairs with the Acquire CAS in `claim_slot`.
        self.in_use.store(false, Ordering::Release);
    }

    /// One attempt of `Registry::claim` at the slot of `words[0]`: true if the calling thread
    /// now owns it (a thread that finds it taken uses another slot, outside the model).
    fn claim_slot(&self) -> bool {
        // Acquire: as `Registry::claim`: the previous owner's last word store (its section's
        // end) happens before our first `enter`, whose Relaxed load of the word must read it.
        self.in_use.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// `synchronize_rcu` by a caller that becomes the leader: as
    /// `GracePeriods::wait_until_completed`.
    fn synchronize(&self, nreaders: usize) {
        let cookie = self.seq.cookie();
        while !self.seq.is_completed(cookie) {
            self.grace_period(nreaders);
        }
    }
}

/// What a model explored.
#[derive(Debug)]
struct Explored {
    executions: usize,
    /// Executions in which a reader held the old object and a grace period waited for it.
    held_and_waited: usize,
    /// Executions in which a section that began after the grace period started stayed
    /// inside until it completed (model B).
    late_sections: usize,
    /// Executions in which a new owner entered a section on a released word while a grace
    /// period was scanning it (models D).
    reused_mid_gp: usize,
    /// Executions in which an abandoned section held the old object and the grace period was
    /// still held after its thread ended (model D).
    held_after_exit: usize,
}

/// Runs `f` under loom with the preemption bound and other limits taken from the `LOOM_*`
/// variables. `f` returns its `World` so that coverage can be counted; the counts are
/// printed (visible with `--nocapture`) and returned.
fn model(f: impl Fn() -> Arc<World> + Sync + Send + 'static) -> Explored {
    use std::sync::atomic::{AtomicUsize as Count, Ordering::Relaxed};
    let counts = std::sync::Arc::new([(); 5].map(|()| Count::new(0)));
    let c = counts.clone();
    loom::model::Builder::new().check(move || {
        let w = f();
        // Relaxed (all): plain counters outside the model; loom runs one execution
        // at a time on this thread.
        c[0].fetch_add(1, Relaxed);
        if w.witness.saw_old.load(Relaxed) && w.witness.waited.load(Relaxed) {
            c[1].fetch_add(1, Relaxed);
        }
        if w.witness.late_section.load(Relaxed) {
            c[2].fetch_add(1, Relaxed);
        }
        if w.witness.reused_mid_gp.load(Relaxed) {
            c[3].fetch_add(1, Relaxed);
        }
        if w.witness.held_after_exit.load(Relaxed) {
            c[4].fetch_add(1, Relaxed);
        }
    });
    let explored = Explored {
        executions: counts[0].load(Relaxed),
        held_and_waited: counts[1].load(Relaxed),
        late_sections: counts[2].load(Relaxed),
        reused_mid_gp: counts[3].load(Relaxed),
        held_after_exit: counts[4].load(Relaxed),
    };
    let name = std::thread::current().name().map(str::to_owned);
    eprintln!(
        "loom model {}: {} executions; {} with a reader holding the old object while a grace \
         period waited for it; {} with a section begun after the grace period started; {} \
         with a released word reused during a grace period; {} with an abandoned section \
         holding the grace period",
        name.as_deref().unwrap_or("?"),
        explored.executions,
        explored.held_and_waited,
        explored.late_sections,
        explored.reused_mid_gp,
        explored.held_after_exit,
    );
    explored
}

/// The frame most models share: one reader thread runs `read` while the writer unpublishes
/// the object, runs one grace period (scanning one reader word) and frees the old object.
fn reader_against_grace_period(read: fn(&World)) -> Arc<World> {
    let w = World::new();
    let reader = {
        let w = w.clone();
        thread::spawn(move || read(&w))
    };
    let old = w.unpublish();
    w.grace_period(1);
    w.objs[old].free();
    reader.join().unwrap();
    w
}

/// The model reached the interleaving that matters: a reader holding the old object while
/// the grace period waited for it (so a pass is not just every reader seeing the new one).
fn assert_explored(explored: &Explored) {
    assert!(explored.held_and_waited > 0, "the model never made a grace period wait: {explored:?}");
}

// ---------------------------------------------------------------------------------------------
// Model A: the core safety property.
// ---------------------------------------------------------------------------------------------

/// A reader's section never sees the object freed after a grace period that followed its
/// removal: every read of the old object happens before the free.
#[test]
fn a_reader_never_sees_free_after_grace_period() {
    let explored = model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            })
        };
        let old = w.unpublish();
        let gp = w.grace_period(1);
        assert_eq!(gp, 2);
        w.objs[old].free();
        reader.join().unwrap();
        w
    });
    assert_explored(&explored);
}

/// As model A, with the writer going through the engine's `synchronize_rcu` path: cookie
/// (AcqRel RMW joining the release sequence of `started`), then leading grace periods until
/// the cookie's has completed.
#[test]
fn a_synchronize_path_with_cookie() {
    let explored = model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            })
        };
        let old = w.unpublish();
        w.synchronize(1);
        w.objs[old].free();
        reader.join().unwrap();
        w
    });
    assert_explored(&explored);
}

// ---------------------------------------------------------------------------------------------
// Model B: nesting, and consecutive sections.
// ---------------------------------------------------------------------------------------------

/// A nested section does not end the protection: the grace period waits for the outermost
/// exit, so the object is still readable after the inner exit.
#[test]
fn b_nested_sections_wait_for_outermost_exit() {
    let explored = model(|| {
        reader_against_grace_period(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            word.enter(w.seq.started_counter());
            let i = w.load_and_read();
            word.exit();
            assert_eq!(word.depth(), 1);
            // Still inside the outer section: the object loaded above must still be live.
            w.objs[i].read();
            word.exit();
            assert_eq!(word.depth(), 0);
        })
    });
    assert_explored(&explored);
}

/// Two sections in a row. The second one begins after the reader has itself seen the grace
/// period start; it then waits *inside* the section for that grace period to complete. If
/// the grace period wrongly waited for it, neither thread could progress and loom would
/// report the model as non-terminating. The second section reads the object after the wait,
/// so it must see the new one (its snapshot is the grace period's, so nothing waits for it).
///
/// The first section does not read the object: with a read there, this model is
/// `b_consecutive_sections_both_read`.
#[test]
fn b_section_after_gp_start_is_not_waited_for() {
    let explored = model(|| {
        reader_against_grace_period(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            word.exit();

            // Acquire: as the load in `enter`; if this sees grace period 2 started, so
            // does the (later) load in `enter`, which then snapshots 2.
            let seen = w.seq.started_counter().load(Ordering::Acquire);
            word.enter(w.seq.started_counter());
            if seen == 2 {
                // Grace period 2 must complete while we stay inside this section.
                while !w.seq.is_completed(2) {
                    thread::yield_now();
                }
                // Relaxed: coverage bookkeeping outside the model.
                w.witness.late_section.store(true, std::sync::atomic::Ordering::Relaxed);
                assert_eq!(
                    w.load_and_read(),
                    1,
                    "a section that saw gp 2 start saw the old object"
                );
            } else {
                w.load_and_read();
            }
            word.exit();
        })
    });
    assert!(explored.late_sections > 0, "no section began after the grace period started");
}

/// Two consecutive sections of one reader, the first of which reads the object.
///
/// This model found a gap in an earlier protocol, where the outermost `enter` store was
/// Relaxed (loom: "Causality violation: Concurrent read and write accesses to
/// `UnsafeCell`"). The interleaving: section 1 snapshots 1, announces, fences
/// and loads the old object; the writer unpublishes and starts grace period 2; section 1
/// reads the object and exits (Release store of 0); section 2 snapshots 2 (its Acquire load
/// reads the new sequence) and stores `2 << 16 | 1` with a Relaxed store; the grace period's
/// Acquire scan reads *that* store, sees a section that began after it started, and
/// completes; the writer frees. The scan synchronized with nothing: in the C++20/Rust model
/// a later Relaxed store by the same thread is not part of the release sequence headed by
/// the Release exit store (P0982R1), so section 1's read does not happen-before the free.
/// Making every word store Release (`raw/protocol.rs`) closed the gap; see
/// `docs/design.md`, "The consecutive-sections gap".
#[test]
fn b_consecutive_sections_both_read() {
    model(|| {
        reader_against_grace_period(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            w.load_and_read();
            word.exit();
            word.enter(w.seq.started_counter());
            w.load_and_read();
            word.exit();
        })
    });
}

/// A thread that exits with a leaked guard: its exit hook force-ends the section
/// (`ReaderWord::force_exit`, as `Registry::release` does). The force-exit is the section's
/// end: what the section read happens before the free that follows the grace period.
#[test]
fn b_leaked_guard_force_exit() {
    let explored = model(|| {
        reader_against_grace_period(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            w.load_and_read();
            // The guard is leaked; the thread exits and its exit hook runs.
            assert_eq!(word.force_exit(), 1);
        })
    });
    assert_explored(&explored);
}

/// Two readers, each one section, and a writer: the grace period must wait for both.
#[test]
fn b_two_readers() {
    let explored = model(|| {
        let w = World::new();
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let w = w.clone();
                thread::spawn(move || {
                    let word = &w.words[r];
                    word.enter(w.seq.started_counter());
                    w.load_and_read();
                    word.exit();
                })
            })
            .collect();
        let old = w.unpublish();
        w.grace_period(2);
        w.objs[old].free();
        for r in readers {
            r.join().unwrap();
        }
        w
    });
    assert_explored(&explored);
}

// ---------------------------------------------------------------------------------------------
// Model C: the polled API, grace periods driven by a third thread.
// ---------------------------------------------------------------------------------------------

/// The writer unpublishes, takes a cookie, hands it to the leader (as `start_poll` hands it to
/// the worker) and polls; only when `is_completed(cookie)` is true does it free. The leader
/// runs one grace period on its own (so one can be in flight when the cookie is taken), then
/// runs grace periods until the request is served, as the worker does.
///
/// The writer polls a bounded number of times and then joins the leader instead of spinning:
/// with three threads, two unbounded spin loops let loom explore schedules that starve the
/// third thread forever. loom still explores every interleaving of the polls with the reader
/// and the leader, so `is_completed` returning true early is covered.
#[test]
fn c_polled_cookie_with_separate_leader() {
    let explored = model(|| {
        let w = World::new();
        let requested = Arc::new(AtomicU64::new(0));
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            })
        };
        let leader = {
            let w = w.clone();
            let requested = requested.clone();
            thread::spawn(move || leader(&w, &requested))
        };
        let old = w.unpublish();
        let cookie = w.seq.cookie();
        // Release: the request itself; the protocol's ordering comes from `cookie`.
        requested.store(cookie, Ordering::Release);
        let mut freed = false;
        for _ in 0..POLLS {
            if w.seq.is_completed(cookie) {
                w.objs[old].free();
                freed = true;
                break;
            }
            thread::yield_now();
        }
        leader.join().unwrap();
        assert!(w.seq.is_completed(cookie), "the leader stopped before serving the cookie");
        if !freed {
            w.objs[old].free();
        }
        reader.join().unwrap();
        w
    });
    assert_explored(&explored);
}

/// How often the writer of model C polls before it joins the leader.
const POLLS: usize = 2;

/// The grace-period driver of model C (and of the broken-cookie model): one unrequested grace
/// period, then grace periods until the requested one has completed.
fn leader(w: &World, requested: &AtomicU64) {
    w.grace_period(1);
    loop {
        // Acquire: pairs with the writer's Release store of the request.
        let want = requested.load(Ordering::Acquire);
        if want == 0 {
            thread::yield_now();
        } else if w.seq.is_completed(want) {
            return;
        } else {
            w.grace_period(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model D: thread exit with an open section (`registration::end`): the slot's release against
// a grace period's scan.
// ---------------------------------------------------------------------------------------------

/// The frame of the slot-release models: thread A owns the slot of `words[0]` and runs
/// `owner` (a section, then its thread's exit hook); thread C is another thread registering,
/// which takes the slot if A has released it and runs one section on the same word; the
/// writer unpublishes, runs one grace period scanning that word, and frees.
fn exit_then_new_owner(owner: fn(&World)) -> Arc<World> {
    let w = World::new();
    let a = {
        let w = w.clone();
        thread::spawn(move || owner(&w))
    };
    let c = {
        let w = w.clone();
        thread::spawn(move || {
            if !w.claim_slot() {
                return;
            }
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            // Our own store, unless a store of A's is ordered after it.
            assert_eq!(
                word.depth(),
                1,
                "the previous owner's word stores are not ordered before this claim"
            );
            // Relaxed: coverage bookkeeping outside the model.
            if w.witness.scanning.load(std::sync::atomic::Ordering::Relaxed) {
                w.witness.reused_mid_gp.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            w.load_and_read();
            word.exit();
        })
    };
    let old = w.unpublish();
    w.grace_period(1);
    w.objs[old].free();
    a.join().unwrap();
    c.join().unwrap();
    w
}

/// The interleavings that matter for a released word were reached: the grace period waited
/// for A holding the old object, and a new owner's section began on the word mid-scan.
fn assert_explored_reuse(explored: &Explored) {
    assert_explored(explored);
    assert!(explored.reused_mid_gp > 0, "no new owner entered during a scan: {explored:?}");
}

/// A thread ends its section, and its exit hook releases the slot (`registration::end` at
/// depth 0: `Registry::release`, a Release store of `in_use`); another thread claims the slot
/// (the Acquire CAS of `Registry::claim`) and runs its own section on the same word, while a
/// grace period scans that word. No reader sees the freed object.
///
/// The interleaving that matters: the scan waits for A's section (which read the old object),
/// A exits and releases, C claims and enters, and the scan's next load reads C's entry store
/// rather than A's exit. If C's snapshot is the grace period's, the scan stops there, so A's
/// reads must happen before the free through C's store: A's reads are sequenced before its
/// Release exit and `in_use` stores, the claim's Acquire CAS reads the latter, and C's entry
/// store is Release (the cross-thread form of `b_consecutive_sections_both_read`). The
/// release/claim pair also orders A's word stores before C's: without it C's first `enter`
/// (a Relaxed load of the word, "our own last store") may read A's entry and nest on it, so
/// the word never returns to 0 (loom: the scan never ends), or A's exit store may come after
/// C's entry in the word's modification order and erase C's section (C's depth assertion;
/// the scan would then pass C while it holds the old object).
#[test]
fn exit_releases_after_the_section_then_a_new_owner_reuses_the_word() {
    let explored = model(|| {
        exit_then_new_owner(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            w.load_and_read();
            word.exit();
            // The thread exits: `registration::end` finds depth 0 and releases the slot.
            w.release_slot();
        })
    });
    assert_explored_reuse(&explored);
}

/// A thread exits with a forgotten guard (every root dropped: nothing can reach the section):
/// its exit hook force-ends the section (`ReaderWord::force_exit`, an AcqRel swap to 0) and
/// releases the slot, as `registration::end` does; another thread may then claim the slot and
/// run a section on the word (as in the model above) while a grace period scans it.
///
/// The interleaving that matters: the scan waits for A's section (which read the old object)
/// and its next load reads the 0 written by `force_exit`, then the writer frees. The swap is
/// the section's end: A's reads are sequenced before it and its Release half synchronizes with
/// the scan's Acquire load, so they happen before the free. (When the scan instead reads C's
/// entry store, the ordering comes through `in_use` as in the model above.)
#[test]
fn forgotten_section_force_ended_at_exit_only_after_its_reads() {
    let explored = model(|| {
        exit_then_new_owner(|w| {
            let word = &w.words[0];
            word.enter(w.seq.started_counter());
            w.load_and_read();
            // The guard is forgotten; the thread exits and `registration::end` runs: the word
            // shows an open section, no root is live, so the section is ended and the slot
            // released.
            assert_eq!(word.depth(), 1);
            assert_eq!(word.force_exit(), 1);
            w.release_slot();
        })
    });
    assert_explored_reuse(&explored);
}

/// How often the writer of the abandoned-section model scans before, and again after, the
/// reader's thread ends (the engine scans until the word stops blocking, i.e. for ever here).
const SCANS: usize = 2;

/// A thread exits inside a section whose guard may still be reached (a leaked root): its exit
/// hook abandons the slot (`Registry::abandon`): `in_use` stays set, so no other thread can
/// own the word, and the word keeps the open section. The grace period that started while the
/// section held the old object must never complete, and the object is never freed.
///
/// The writer runs the engine's scan, bounded (an unbounded one would not terminate): SCANS
/// loads while A may still be running, then, once A's thread has ended (joined), SCANS more.
/// If a scan ever finds the word not blocking, the grace period completes and the writer
/// frees, which is correct only if A's section did not need it: A began after the grace
/// period started (its snapshot is the grace period's, so it read the new object), or A had
/// not announced itself yet (the store-buffering argument: it then reads the new object).
/// Before the join loom checks that through the poison; after it, the assertion does. The
/// interleaving that matters: A's section snapshots the previous grace period and loads the
/// old object, the scan sees it blocking, A's thread ends, and the scans after the join still
/// see it blocking.
#[test]
fn abandoned_section_holds_the_grace_period() {
    let explored = model(|| {
        let w = World::new();
        let a = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                let read = w.load_and_read();
                // The guard and a root are leaked; the thread exits and `registration::end`
                // abandons the slot: it stays claimed and its word is left as it is.
                assert_eq!(word.depth(), 1);
                read
            })
        };
        let word = &w.words[0];
        let old = w.unpublish();
        let gp = w.seq.start();
        let mut ended = false;
        for _ in 0..SCANS {
            if !word.blocks(gp) {
                ended = true;
                break;
            }
            // Relaxed: coverage bookkeeping outside the model.
            w.witness.waited.store(true, std::sync::atomic::Ordering::Relaxed);
            thread::yield_now();
        }
        let read = a.join().unwrap();
        if !ended {
            // A's thread is gone: nothing will ever end its section, and no other thread can
            // claim its slot to write the word.
            assert!(!w.claim_slot(), "an abandoned slot was claimed");
            ended = (0..SCANS).any(|_| !word.blocks(gp));
        }
        if ended {
            w.seq.complete(gp);
            w.objs[old].free();
            assert_ne!(
                read, old,
                "a grace period completed while an abandoned section held the old object"
            );
        } else {
            assert_eq!(word.depth(), 1, "the abandoned section was ended");
            if read == old {
                // Relaxed: coverage bookkeeping outside the model.
                w.witness.held_after_exit.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        w
    });
    assert_explored(&explored);
    assert!(explored.held_after_exit > 0, "no abandoned section held the grace period");
}

// ---------------------------------------------------------------------------------------------
// Sanity: the models have teeth.
// ---------------------------------------------------------------------------------------------

/// A broken writer that starts a grace period but frees without waiting for readers: loom
/// must find the interleaving where the reader reads the freed object.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_writer_skips_waiting_is_caught() {
    model(|| {
        let w = World::new();
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            })
        };
        let old = w.unpublish();
        let gp = w.seq.start();
        // Broken: no wait for readers.
        w.seq.complete(gp);
        w.objs[old].free();
        reader.join().unwrap();
        w
    });
}

/// A broken cookie taken with a plain load of `started` instead of `cookie()`'s RMW: the load
/// may return a value older than a grace period that has already started, whose readers were
/// not ordered after the removal; the cookie then names that grace period, which does not
/// wait for them.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_cookie_from_plain_load_is_caught() {
    model(|| {
        let w = World::new();
        let requested = Arc::new(AtomicU64::new(0));
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let word = &w.words[0];
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            })
        };
        let leader = {
            let w = w.clone();
            let requested = requested.clone();
            thread::spawn(move || leader(&w, &requested))
        };
        let old = w.unpublish();
        // Broken: a load, not the RMW of `GpSequence::cookie`.
        let cookie = w.seq.started_counter().load(Ordering::Acquire) + 1;
        // Release: the request.
        requested.store(cookie, Ordering::Release);
        leader.join().unwrap();
        w.objs[old].free();
        reader.join().unwrap();
        w
    });
}

/// A signal lands between the outermost word store and its barrier, and the handler runs a
/// whole nested read section that reads the object. In fence mode the nested path needs its
/// own barrier (an earlier protocol had none there, and this model failed on it).
#[test]
fn b_signal_handler_in_the_enter_window() {
    model(|| {
        reader_against_grace_period(|w| {
            let word = &w.words[0];
            word.enter_interrupted(w.seq.started_counter(), || {
                word.enter(w.seq.started_counter());
                w.load_and_read();
                word.exit();
            });
            word.exit();
        })
    });
}
