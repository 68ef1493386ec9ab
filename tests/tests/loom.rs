//! loom models of the reader/grace-period protocol, run on the real `rcu_core::raw::protocol`
//! code (under `--cfg loom` rcu-core builds only its `raw` layer and its staging area, on
//! loom's atomics; both barriers are then `fence(SeqCst)`, i.e. the fence-mode protocol).
//!
//! Every model has the same shape: an RCU-protected pointer (`World::current`, an index into
//! three objects), readers that load it inside read sections and read the object, and a writer
//! that unpublishes the old object, waits for a grace period the way the engine does, and then
//! "frees" it. Freeing writes poison into the object's payload, a loom `UnsafeCell`, so loom's
//! causality checker reports any read of the payload that is not ordered before the free (a
//! data race, that is a use after free), and sets a `freed` flag that readers assert on.
//!
//! Model E is of another shape: the deferred-reclamation staging protocol (`queue/staging.rs`: an
//! owner's brackets against the worker's steals and collections), run on the real `Staging`,
//! with items whose runs loom checks are ordered after their queueing and before whoever
//! relies on them (an `rcu_barrier`).
//!
//! See `docs/design.md`, "What the loom models check", for how each model maps to the ordering
//! argument and what loom cannot check (membarrier itself).
//!
//! Run with `ci/loom.sh`, or:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p rcu-tests --test loom --release`.
#![cfg(loom)]

use core::ptr::NonNull;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use rcu_alloc::{AllocConfig, Block, BlockAllocator, Entry, Policy, ThreadCache, MIN_BLOCK_BYTES};
use rcu_core::raw::barrier::heavy_barrier;
use rcu_core::raw::protocol::{GpSequence, ReaderWord};
use rcu_core::staging::{Bracket, Staging};
use rcu_ctx::Atomic;

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
    /// A reader word the test writes itself, for the broken twins of models Q: the code of
    /// `ReaderWord` with one defect (its orderings cannot be changed from outside). Models that
    /// use it scan it instead of `words`.
    hand_rolled: HandRolledWord,
    /// Index of the published object: 0 at first, 1 after the writer's update (2 after a
    /// second one, model Q5).
    current: AtomicUsize,
    /// `registry::Slot::in_use` of the slot that holds `words[0]` (the registry is not built
    /// under loom, so the model carries the flag, with the registry's orderings). Claimed from
    /// the start, by the model's first reader; only the thread-exit models release it.
    in_use: AtomicBool,
    objs: [Obj; 3],
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
    /// The grace period a leader gave up on, left in progress (model C2; 0: none).
    given_up: std::sync::atomic::AtomicU64,
    /// Another leader resumed it and its scan waited for a reader holding the old object
    /// (model C2).
    resumed: std::sync::atomic::AtomicBool,
    /// Where the reader of `words[0]` is (models Q: `Phase`), set by the reader at each store
    /// to its word.
    phase: std::sync::atomic::AtomicUsize,
    /// Per grace period (indexed by its number): 1 + the reader's phase when the scan passed
    /// the last word (0: not yet).
    passed_in: [std::sync::atomic::AtomicUsize; 4],
    /// Per grace period: the reader's phases (bits) in which a word held the scan up.
    waited_in: [std::sync::atomic::AtomicUsize; 4],
    /// The interleaving the model is about happened (model-specific, set at its end).
    key: std::sync::atomic::AtomicBool,
}

/// Where a QSBR reader is, for the witnesses of models Q (`Witness::phase`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Not online yet.
    Before = 0,
    /// Online for the first time, from its word's store in `enter`, before the fence (the
    /// readers mark it in `enter_interrupted`'s hook, which adds no loom operation).
    Online = 1,
    /// Offline between two online periods (model Q4).
    Between = 2,
    /// Online after a quiescent state (model Q5) or online again (model Q4).
    OnlineAgain = 3,
    /// Offline for good.
    After = 4,
}

impl Witness {
    /// The reader is now in `phase`.
    fn enter_phase(&self, phase: Phase) {
        // Relaxed (all std atomics of the witness): bookkeeping outside the model; loom runs
        // one thread at a time, so this follows the schedule.
        self.phase.store(phase as usize, std::sync::atomic::Ordering::Relaxed);
    }

    /// The reader's phase now.
    fn phase(&self) -> usize {
        self.phase.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The reader's phase when the scan of grace period `gp` passed the last word (None: it
    /// did not, or `gp` is beyond what the witness tracks).
    fn passed(&self, gp: u64) -> Option<Phase> {
        let slot = self.passed_in.get(gp as usize)?;
        let phases =
            [Phase::Before, Phase::Online, Phase::Between, Phase::OnlineAgain, Phase::After];
        phases.get(slot.load(std::sync::atomic::Ordering::Relaxed).checked_sub(1)?).copied()
    }

    /// A word held grace period `gp` up while the reader was in `phase`.
    fn waited(&self, gp: u64, phase: Phase) -> bool {
        self.waited_in.get(gp as usize).is_some_and(|bits| {
            bits.load(std::sync::atomic::Ordering::Relaxed) & (1 << phase as usize) != 0
        })
    }
}

/// What a grace period's scan asks of a reader word.
trait Announcement {
    /// `ReaderWord::blocks`.
    fn blocks(&self, gp: u64) -> bool;
}

impl Announcement for ReaderWord {
    fn blocks(&self, gp: u64) -> bool {
        ReaderWord::blocks(self, gp)
    }
}

/// The one thing a `HandRolledWord` does differently from `ReaderWord`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Defect {
    /// None: the word is `ReaderWord`'s code, step for step.
    None,
    /// `refresh` loads the sequence Relaxed instead of Acquire.
    RelaxedQuiescentSnapshot,
    /// `refresh` stores the word Relaxed instead of Release.
    RelaxedQuiescentStore,
    /// `enter` issues no fence after its store (going online without the fence).
    EnterWithoutFence,
}

/// `ReaderWord`'s code for outermost sections (as `rcu_core::raw::protocol` has it under loom:
/// the barrier is a SeqCst fence), on a word of the same layout, with one `Defect`. Each
/// method makes the loom operations of its `ReaderWord` twin, in the same order, so a model
/// run on it explores the same interleavings (`q_hand_rolled_word_is_faithful_to_reader_word`);
/// each ordering comment abridges the original's.
struct HandRolledWord {
    word: AtomicU64,
    defect: Defect,
}

impl HandRolledWord {
    /// Bits of the word that count nesting (`protocol::NEST_BITS`).
    const NEST_BITS: u32 = 16;
    const NEST_MASK: u64 = (1 << Self::NEST_BITS) - 1;

    fn new(defect: Defect) -> Self {
        HandRolledWord { word: AtomicU64::new(0), defect }
    }

    /// `ReaderWord::enter`, outermost only.
    fn enter(&self, gp_seq: &AtomicU64) {
        // Relaxed: only this thread writes the word, so this reads our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        assert_eq!(cur & Self::NEST_MASK, 0, "the hand-rolled word has outermost sections only");
        // Acquire: pairs with the AcqRel fetch_add in `GpSequence::start_with`.
        let snapshot = gp_seq.load(Ordering::Acquire);
        // Release: a scan that reads this store also sees the previous section's loads done.
        self.word.store((snapshot << Self::NEST_BITS) | 1, Ordering::Release);
        if self.defect != Defect::EnterWithoutFence {
            // SeqCst: `reader_barrier` under loom; pairs with the grace period's fence.
            fence(Ordering::SeqCst);
        }
    }

    /// `ReaderWord::refresh`.
    fn refresh(&self, gp_seq: &AtomicU64) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        assert_ne!(cur & Self::NEST_MASK, 0, "refresh outside a section");
        // Acquire: as in `enter` (pairs with the AcqRel fetch_add in `GpSequence::start_with`);
        // keeps the loads after the quiescent state after it.
        let snapshot = gp_seq.load(match self.defect {
            Defect::RelaxedQuiescentSnapshot => Ordering::Relaxed,
            _ => Ordering::Acquire,
        });
        // Release: every load before the quiescent state happens before this store.
        self.word.store(
            (snapshot << Self::NEST_BITS) | (cur & Self::NEST_MASK),
            match self.defect {
                Defect::RelaxedQuiescentStore => Ordering::Relaxed,
                _ => Ordering::Release,
            },
        );
    }

    /// `ReaderWord::exit`, outermost only.
    fn exit(&self) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        assert_eq!(cur & Self::NEST_MASK, 1, "the hand-rolled word has outermost sections only");
        // Release: every load of the section happens before this store; pairs with the
        // Acquire load in `blocks`.
        self.word.store(0, Ordering::Release);
    }
}

impl Announcement for HandRolledWord {
    /// `ReaderWord::blocks`.
    fn blocks(&self, gp: u64) -> bool {
        // Acquire: pairs with the Release stores of `exit` and `refresh`.
        let w = self.word.load(Ordering::Acquire);
        w & Self::NEST_MASK != 0 && (w >> Self::NEST_BITS) != (gp & (u64::MAX >> Self::NEST_BITS))
    }
}

impl World {
    fn new() -> Arc<Self> {
        Self::with_hand_rolled(Defect::None)
    }

    /// A world whose `hand_rolled` word has `defect`.
    fn with_hand_rolled(defect: Defect) -> Arc<Self> {
        Arc::new(World {
            seq: GpSequence::new(),
            words: [ReaderWord::new(), ReaderWord::new()],
            current: AtomicUsize::new(0),
            hand_rolled: HandRolledWord::new(defect),
            in_use: AtomicBool::new(true),
            objs: [Obj::new(), Obj::new(), Obj::new()],
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
        self.replace(1)
    }

    /// `rcu_assign_pointer`: publishes object `new`, returns the old one.
    fn replace(&self, new: usize) -> usize {
        self.objs[new].init();
        // AcqRel: as `RcuCell::replace`.
        self.current.swap(new, Ordering::AcqRel)
    }

    /// One grace period exactly as `GracePeriods::run_one` drives it (the caller is the
    /// leader): start, wait until no reader word blocks it, complete. `nreaders` words are
    /// scanned.
    fn grace_period(&self, nreaders: usize) -> u64 {
        let gp = self.seq.start();
        self.wait_and_complete(gp, &self.words[..nreaders]);
        gp
    }

    /// The rest of `run_one` once grace period `gp` has started: waits until no word of
    /// `words` blocks it, then completes it.
    fn wait_and_complete(&self, gp: u64, words: &[impl Announcement]) {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed (witness stores): coverage bookkeeping outside the model.
        self.witness.scanning.store(true, Relaxed);
        for word in words {
            while word.blocks(gp) {
                self.witness.waited.store(true, Relaxed);
                if let Some(bits) = self.witness.waited_in.get(gp as usize) {
                    bits.fetch_or(1 << self.witness.phase(), Relaxed);
                }
                thread::yield_now();
            }
        }
        if let Some(slot) = self.witness.passed_in.get(gp as usize) {
            slot.store(self.witness.phase() + 1, Relaxed);
        }
        self.witness.scanning.store(false, Relaxed);
        self.seq.complete(gp);
    }

    /// `synchronize_rcu` of a QSBR domain by a caller that becomes the leader
    /// (`GracePeriods::wait_until_completed`, `run_one`): a cookie, then grace periods until
    /// the cookie's has completed, each begun by `start_or_resume_with` a SeqCst fence as a
    /// QSBR domain's are (`ReaderFlavor::grace_periods_fence`: no heavy barrier; loom's heavy
    /// barrier is a fence too, so the models check the orderings, not the saving).
    fn qsbr_synchronize(&self, words: &[impl Announcement]) {
        let cookie = self.seq.cookie();
        while !self.seq.is_completed(cookie) {
            // SeqCst: the QSBR grace period's half of the store-buffering pair whose other half
            // is the fence after each outermost `enter` (going online).
            let gp = self.seq.start_or_resume_with(|| fence(Ordering::SeqCst));
            self.wait_and_complete(gp, words);
        }
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
    /// Executions in which a leader resumed a grace period another gave up on, and waited in
    /// it for a reader holding the old object (model C2).
    resumed: usize,
    /// Executions in which the interleaving the model is about happened (`Witness::key`).
    key: usize,
}

/// Runs `f` under loom with the preemption bound and other limits taken from the `LOOM_*`
/// variables. `f` returns its `World` so that coverage can be counted; the counts are
/// printed (visible with `--nocapture`) and returned.
fn model(f: impl Fn() -> Arc<World> + Sync + Send + 'static) -> Explored {
    model_preempting_at_least(0, f)
}

/// `model`, with loom's preemption bound raised to `min` if `LOOM_MAX_PREEMPTIONS` is lower
/// (for a model whose key interleaving loom reaches only from that bound).
fn model_preempting_at_least(
    min: usize,
    f: impl Fn() -> Arc<World> + Sync + Send + 'static,
) -> Explored {
    use std::sync::atomic::{AtomicUsize as Count, Ordering::Relaxed};
    let counts = std::sync::Arc::new([(); 7].map(|()| Count::new(0)));
    let c = counts.clone();
    let mut builder = loom::model::Builder::new();
    // None (no variable) is unbounded: already at least `min`.
    builder.preemption_bound = builder.preemption_bound.map(|bound| bound.max(min));
    builder.check(move || {
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
        if w.witness.resumed.load(Relaxed) {
            c[5].fetch_add(1, Relaxed);
        }
        if w.witness.key.load(Relaxed) {
            c[6].fetch_add(1, Relaxed);
        }
    });
    let explored = Explored {
        executions: counts[0].load(Relaxed),
        held_and_waited: counts[1].load(Relaxed),
        late_sections: counts[2].load(Relaxed),
        reused_mid_gp: counts[3].load(Relaxed),
        held_after_exit: counts[4].load(Relaxed),
        resumed: counts[5].load(Relaxed),
        key: counts[6].load(Relaxed),
    };
    let name = std::thread::current().name().map(str::to_owned);
    eprintln!(
        "loom model {}: {} executions; {} with a reader holding the old object while a grace \
         period waited for it; {} with a section begun after the grace period started; {} \
         with a released word reused during a grace period; {} with an abandoned section \
         holding the grace period; {} with a resumed grace period waiting for a reader \
         holding the old object; {} with the model's key interleaving",
        name.as_deref().unwrap_or("?"),
        explored.executions,
        explored.held_and_waited,
        explored.late_sections,
        explored.reused_mid_gp,
        explored.held_after_exit,
        explored.resumed,
        explored.key,
    );
    explored
}

/// The frame most models share: one reader thread runs `read` while the writer unpublishes
/// the object, runs one grace period (scanning one reader word) and frees the old object.
fn reader_against_grace_period(read: fn(&World)) -> Arc<World> {
    reader_against_grace_period_over(World::new(), read, first_word)
}

/// `reader_against_grace_period` in `w`, the grace period scanning the words `words` names.
fn reader_against_grace_period_over<W: Announcement>(
    w: Arc<World>,
    read: fn(&World),
    words: fn(&World) -> &[W],
) -> Arc<World> {
    let reader = {
        let w = w.clone();
        thread::spawn(move || read(&w))
    };
    let old = w.unpublish();
    // `World::grace_period` over `words`.
    let gp = w.seq.start();
    w.wait_and_complete(gp, words(&w));
    w.objs[old].free();
    reader.join().unwrap();
    w
}

/// The reader word of the models' first reader.
fn first_word(w: &World) -> &[ReaderWord] {
    &w.words[..1]
}

/// The hand-rolled word, as the only reader word of a model.
fn hand_rolled_word(w: &World) -> &[HandRolledWord] {
    core::slice::from_ref(&w.hand_rolled)
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
// Models Q: QSBR (issue 26). An online thread is a reader inside one long section (its word
// stored by `enter`, whose fence QSBR words always issue); a quiescent state is
// `ReaderWord::refresh`; offline is `exit`. QSBR grace periods begin with a SeqCst fence, not the
// heavy barrier (`World::qsbr_synchronize`). docs/design.md §12.
// ---------------------------------------------------------------------------------------------

/// A QSBR thread online across a quiescent state (issue 26): `ReaderWord::refresh` ends the
/// section so far and begins the next in one store. What was read before it happens before
/// the free (the store is Release, as for `b_consecutive_sections_both_read`), and what is read
/// after it is waited for or sees the new object: `refresh` issues no fence after its store
/// (argued at `ReaderWord::refresh`), and this model checks that argument.
#[test]
fn q_online_reader_with_a_quiescent_state_between_reads() {
    let explored = model(|| reader_against_grace_period(online_quiescent_state_offline));
    assert_explored(&explored);
}

/// Model Q on the hand-rolled word without a defect explores exactly the executions model Q
/// explores on `ReaderWord`: the hand-rolled word makes the same loom operations, so its
/// broken twins (`broken_quiescent_state_*`) differ from model Q by their defect alone.
#[test]
fn q_hand_rolled_word_is_faithful_to_reader_word() {
    let real = model(|| reader_against_grace_period(online_quiescent_state_offline));
    let hand_rolled = model(|| {
        reader_against_grace_period_over(
            World::with_hand_rolled(Defect::None),
            hand_rolled_online_quiescent_state_offline,
            hand_rolled_word,
        )
    });
    assert_eq!(real.executions, hand_rolled.executions, "{real:?} against {hand_rolled:?}");
    assert_eq!(real.held_and_waited, hand_rolled.held_and_waited, "{real:?} / {hand_rolled:?}");
}

/// Model Q's reader: online, a read, a quiescent state, a read, offline.
fn online_quiescent_state_offline(w: &World) {
    let word = &w.words[0];
    word.enter(w.seq.started_counter()); // online
    w.load_and_read();
    word.refresh(w.seq.started_counter()); // quiescent state
    w.load_and_read();
    word.exit(); // offline
}

/// Model Q's reader on the hand-rolled word.
fn hand_rolled_online_quiescent_state_offline(w: &World) {
    let word = &w.hand_rolled;
    word.enter(w.seq.started_counter()); // online
    w.load_and_read();
    word.refresh(w.seq.started_counter()); // quiescent state
    w.load_and_read();
    word.exit(); // offline
}

/// The frame of models Q3 to Q5: one QSBR reader runs `read` while the writer, `updates` times,
/// publishes the next object, runs a QSBR `synchronize_rcu` (`World::qsbr_synchronize`,
/// scanning the words `words` names) and frees the object it replaced.
///
/// The reader runs on the model's first thread and the writer is spawned (the other way round
/// from the other models): loom then reaches the interleavings these models are about (a
/// grace period running whole between two steps of the reader) with fewer preemptions.
fn qsbr_reader_against_synchronize<W: Announcement + 'static>(
    w: Arc<World>,
    updates: usize,
    read: fn(&World),
    words: fn(&World) -> &[W],
) -> Arc<World> {
    let writer = {
        let w = w.clone();
        thread::spawn(move || {
            for new in 1..=updates {
                let old = w.replace(new);
                w.qsbr_synchronize(words(&w));
                w.objs[old].free();
            }
        })
    };
    read(&w);
    writer.join().unwrap();
    w
}

/// Q3's key: grace period 2 passed the reader's word while the reader was online (its word
/// stored) and never waited for it: the scan read the word as offline (the store not visible
/// to it) or with the fresh snapshot. The reader's load must then see the new object.
fn passed_an_online_reader_without_waiting(w: &World) -> bool {
    w.witness.passed(2) == Some(Phase::Online) && w.witness.waited_in[2].load(RELAXED) == 0
}

/// Relaxed (witness loads): bookkeeping outside the model.
const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// Q3: a thread going online (`enter`, whose fence QSBR words issue in every build) and
/// reading, against a QSBR grace period, which begins with a SeqCst fence instead of the heavy
/// barrier and may find every word offline. The two fences make a store-buffering pair: either
/// the scan sees the word online and waits, or the reader's loads after its fence see the
/// removal. So a QSBR domain can skip membarrier; without the reader's fence it cannot
/// (`broken_going_online_without_the_fence_is_caught`).
///
/// loom reaches the key interleaving (`passed_an_online_reader_without_waiting`) only from 3
/// preemptions (its bounded search is not exhaustive below the bound), so this model runs
/// with at least 3 (a few dozen executions).
#[test]
fn q_going_online_against_a_qsbr_grace_period() {
    let explored = model_preempting_at_least(3, || {
        let w = qsbr_reader_against_synchronize(World::new(), 1, going_online, first_word);
        if passed_an_online_reader_without_waiting(&w) {
            w.witness.key.store(true, RELAXED);
        }
        w
    });
    assert_explored(&explored);
    assert!(explored.key > 0, "no scan passed an online reader without waiting: {explored:?}");
}

/// Q3's reader: online, a read, offline.
fn going_online(w: &World) {
    let word = &w.words[0];
    // Online; the phase changes at the word's store, before the fence.
    word.enter_interrupted(w.seq.started_counter(), || w.witness.enter_phase(Phase::Online));
    w.load_and_read();
    word.exit(); // offline
    w.witness.enter_phase(Phase::After);
}

/// Q4: a thread online, offline, online again, reading in each online period, against a QSBR
/// grace period. The grace period may end while the thread is offline (between its periods,
/// after waiting for the first): the second period's read must still never see the freed
/// object (its `enter` and fence order it after the scan or make the scan wait).
#[test]
fn q_offline_then_online_again_across_a_grace_period() {
    let explored = model(|| {
        let w = qsbr_reader_against_synchronize(World::new(), 1, offline_then_online, first_word);
        // The key: grace period 2 waited for the first period and ended while offline.
        if w.witness.waited(2, Phase::Online) && w.witness.passed(2) == Some(Phase::Between) {
            w.witness.key.store(true, RELAXED);
        }
        w
    });
    assert_explored(&explored);
    assert!(explored.key > 0, "no grace period ended between the periods: {explored:?}");
}

/// Q4's reader.
fn offline_then_online(w: &World) {
    let word = &w.words[0];
    // Online; the phase changes at the word's store, before the fence.
    word.enter_interrupted(w.seq.started_counter(), || w.witness.enter_phase(Phase::Online));
    w.load_and_read();
    word.exit(); // offline
    w.witness.enter_phase(Phase::Between);
    // Online again.
    word.enter_interrupted(w.seq.started_counter(), || {
        w.witness.enter_phase(Phase::OnlineAgain);
    });
    w.load_and_read();
    word.exit(); // offline
    w.witness.enter_phase(Phase::After);
}

/// Q5: a thread online across two grace periods, with one quiescent state between its two
/// reads. The writer replaces object 0 by 1 (grace period 2, free 0), then 1 by 2 (grace period
/// 3, free 1). Grace period 2 may end at the quiescent state, with the thread still online;
/// grace period 3 must then still wait for the thread (its word's snapshot is 2) until the
/// next quiescent state or offline, since the read after the quiescent state may hold object
/// 1. A quiescent state ends only the grace periods that began before it.
#[test]
fn q_online_across_two_grace_periods_with_one_quiescent_state() {
    let explored = model(|| {
        let w = qsbr_reader_against_synchronize(World::new(), 2, online_across_two, first_word);
        // The key: grace period 2 waited for the first read, ended at the quiescent state,
        // and grace period 3 then waited for the thread, still online.
        if w.witness.waited(2, Phase::Online)
            && w.witness.passed(2) == Some(Phase::OnlineAgain)
            && w.witness.waited(3, Phase::OnlineAgain)
        {
            w.witness.key.store(true, RELAXED);
        }
        w
    });
    assert_explored(&explored);
    assert!(explored.key > 0, "no grace period ended at the quiescent state: {explored:?}");
}

/// Q5's reader.
fn online_across_two(w: &World) {
    let word = &w.words[0];
    // Online; the phase changes at the word's store, before the fence.
    word.enter_interrupted(w.seq.started_counter(), || w.witness.enter_phase(Phase::Online));
    w.load_and_read();
    word.refresh(w.seq.started_counter()); // quiescent state
    w.witness.enter_phase(Phase::OnlineAgain);
    w.load_and_read();
    word.exit(); // offline
    w.witness.enter_phase(Phase::After);
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
// Model C2: a grace period one leader gave up on, resumed by the next
// (`GpSequence::start_or_resume`, `GracePeriods::try_advance`).
// ---------------------------------------------------------------------------------------------

/// How the leaders of model C2 hand a grace period over: the engine's way, or a broken one.
#[derive(Clone, Copy)]
struct HandOver {
    /// The ordering of `stop_leading`'s store (SeqCst in the engine).
    give_up: Ordering,
    /// What a leader calls to pick its grace period (`GpSequence::start_or_resume`).
    start_or_resume: fn(&GpSequence) -> u64,
}

/// The engine's hand-over.
const HAND_OVER: HandOver =
    HandOver { give_up: Ordering::SeqCst, start_or_resume: GpSequence::start_or_resume };

/// `GracePeriods`' leader role (`gp/grace_period.rs` is not built under loom, so the model
/// carries its flag, with `try_lead`'s and `stop_leading`'s orderings).
struct Leader {
    flag: AtomicBool,
    how: HandOver,
}

impl Leader {
    fn new(how: HandOver) -> Arc<Self> {
        Arc::new(Leader { flag: AtomicBool::new(false), how })
    }

    /// `try_lead`.
    fn try_lead(&self) -> bool {
        // Acquire: as `try_lead`; pairs with the store in `stop_leading`: the previous
        // leader's grace-period steps (its heavy barrier) happen before ours.
        self.flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// `stop_leading` (without its event: the model's waiters yield instead of sleeping).
    fn stop_leading(&self) {
        // SeqCst in the engine (a Release in effect): pairs with the Acquire in `try_lead`.
        self.flag.store(false, self.how.give_up);
    }
}

/// `GracePeriods::try_advance`, what `poll` runs, over the reader word of `words[0]`: leads if
/// nobody does, starts (or resumes) the grace period `cookie` needs, and completes it unless
/// the reader holds it up; then it gives the role up and leaves the grace period in progress.
fn try_advance(w: &World, leader: &Leader, cookie: u64) -> bool {
    if w.seq.is_completed(cookie) {
        return true;
    }
    if !leader.try_lead() {
        return false;
    }
    while !w.seq.is_completed(cookie) {
        let gp = (leader.how.start_or_resume)(&w.seq);
        if w.words[0].blocks(gp) {
            // Relaxed: coverage bookkeeping outside the model.
            w.witness.given_up.store(gp, std::sync::atomic::Ordering::Relaxed);
            leader.stop_leading();
            return false;
        }
        w.seq.complete(gp);
    }
    leader.stop_leading();
    true
}

/// `GracePeriods::wait_until_completed` (`run_one` for each grace period) over the reader
/// word of `words[0]`, with a yield where the engine sleeps on the completion event.
fn wait_until_completed(w: &World, leader: &Leader, cookie: u64) {
    loop {
        if w.seq.is_completed(cookie) {
            return;
        }
        if leader.try_lead() {
            while !w.seq.is_completed(cookie) {
                let gp = (leader.how.start_or_resume)(&w.seq);
                let mut waited = false;
                while w.words[0].blocks(gp) {
                    waited = true;
                    // Relaxed: coverage bookkeeping outside the model.
                    w.witness.waited.store(true, std::sync::atomic::Ordering::Relaxed);
                    thread::yield_now();
                }
                // Relaxed (both): coverage bookkeeping outside the model.
                let witness = &w.witness;
                if waited
                    && witness.saw_old.load(std::sync::atomic::Ordering::Relaxed)
                    && witness.given_up.load(std::sync::atomic::Ordering::Relaxed) == gp
                {
                    witness.resumed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                w.seq.complete(gp);
            }
            leader.stop_leading();
            return;
        }
        thread::yield_now();
    }
}

/// The frame of model C2. A reader runs one section (it loads the published object and
/// reads it). The writer unpublishes, takes a cookie and asks the worker for it (as
/// `start_poll`), then polls once (`try_advance`): it leads, starts grace period 2 (advance
/// and heavy barrier), and if the reader's word blocks it, gives up leading with the grace
/// period in progress. The worker, the third thread, serves the request as the engine's
/// worker does (`wait_until_completed`): it leads, and if grace period 2 is in progress it
/// resumes it (no advance, no heavy barrier), waits for the reader and completes it. The
/// writer frees once it sees the cookie completed: at once if its poll completed it, else
/// after joining the worker.
fn resumed_against_reader(how: HandOver, read: fn(&World)) -> Arc<World> {
    let w = World::new();
    let leader = Leader::new(how);
    let requested = Arc::new(AtomicU64::new(0));
    let reader = {
        let w = w.clone();
        thread::spawn(move || read(&w))
    };
    let worker = {
        let w = w.clone();
        let leader = leader.clone();
        let requested = requested.clone();
        thread::spawn(move || loop {
            // Acquire: pairs with the writer's Release store of the request.
            let want = requested.load(Ordering::Acquire);
            if want != 0 {
                wait_until_completed(&w, &leader, want);
                return;
            }
            thread::yield_now();
        })
    };
    let old = w.unpublish();
    let cookie = w.seq.cookie();
    // Release: the request itself (`Worker::request`); the protocol's ordering comes from
    // `cookie`, and the store precedes the writer's grace period, so it carries nothing of it.
    requested.store(cookie, Ordering::Release);
    let freed = try_advance(&w, &leader, cookie);
    if freed {
        w.objs[old].free();
    }
    worker.join().unwrap();
    assert!(w.seq.is_completed(cookie), "the worker stopped before serving the cookie");
    if !freed {
        w.objs[old].free();
    }
    reader.join().unwrap();
    w
}

/// Model C2's reader: one section that reads the object.
fn one_section(w: &World) {
    let word = &w.words[0];
    word.enter(w.seq.started_counter());
    w.load_and_read();
    word.exit();
}

/// C2: a grace period resumed by the next leader still waits for every reader that could
/// hold what was removed before it started. The resuming leader issues no heavy barrier,
/// only a SeqCst fence after taking the role (`start_or_resume`).
///
/// The interleaving that matters (counted): the reader announces its section (snapshot 1)
/// and loads the old object; the writer's grace period 2 advances, issues its barrier, finds
/// the reader's word blocking it and gives up; the worker takes the role and resumes 2; its
/// scan must see the reader's announcement (or its end), never the word's earlier 0.
///
/// What orders the resumed scan after the first leader's heavy barrier, which it relies on:
/// the engine has two things, and either one suffices (C++20 [atomics.order] p4, quoted in
/// `docs/design.md` §4). The role's hand-over: the give-up's Release store read by the
/// Acquire `try_lead` makes the barrier happen before the scan. The SeqCst fence in
/// `start_or_resume`: the barrier is sequenced before the give-up store, which is
/// coherence-ordered before the `try_lead` CAS that reads it, which is sequenced before the
/// fence, so the barrier precedes the fence in the order of SeqCst operations even with a
/// Relaxed give-up, and the scan follows the fence. loom agrees: the model passes with the
/// fence removed, and with a Relaxed give-up (checked at up to 4 preemptions), and fails
/// with both (`broken_resume_unordered_after_the_give_up_is_caught`). So this model cannot
/// show either one alone to be needed; the fence is kept for the argument of
/// `start_or_resume`'s doc comment, which does not lean on how the caller took the role.
#[test]
fn c_resumed_grace_period_waits_for_the_reader() {
    let explored = model(|| resumed_against_reader(HAND_OVER, one_section));
    assert_explored(&explored);
    assert!(explored.resumed > 0, "no resumed grace period waited for the reader: {explored:?}");
}

/// As C2, with a reader that runs two sections in a row, both reading the object (the shape
/// of `b_consecutive_sections_both_read`). The resuming leader's scan may then read a store
/// of the word the first leader never read: the first section's exit, or the second
/// section's entry. If the first leader gave up on the first section, the second section's
/// fence comes after that leader's barrier (else its scan would have read the second entry
/// or a later store), so the second section reads the new object whatever its snapshot; a
/// resumed scan that stops at a second entry with snapshot 2 must still have the first
/// section's reads ordered before the free, which that entry's Release store carries
/// (`docs/design.md` §6.1).
#[test]
fn c_resumed_grace_period_with_consecutive_sections() {
    let explored = model(|| {
        resumed_against_reader(HAND_OVER, |w| {
            one_section(w);
            one_section(w);
        })
    });
    assert_explored(&explored);
    assert!(explored.resumed > 0, "no resumed grace period waited for the reader: {explored:?}");
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
// Model E: staging, collection and rcu_barrier (`queue/staging.rs`, `reclaim/enqueue.rs`,
// `reclaim/collection.rs`).
// ---------------------------------------------------------------------------------------------

/// The models' blocks: `MIN_BLOCK_BYTES`, so two entries fill one. Outside the model (std
/// atomics): each execution takes its blocks before its threads start and gives them back
/// after they are joined.
static BLOCKS: BlockAllocator =
    BlockAllocator::new(AllocConfig::new().block_bytes(MIN_BLOCK_BYTES));

/// A queued item: an object its owner initialises before queueing it, and how often it ran.
/// Both are loom cells: loom reports a run not ordered after the queueing, and a check of the
/// count that a run is not ordered before (a block run inline that nobody waited for).
struct Item {
    payload: UnsafeCell<u64>,
    runs: UnsafeCell<u32>,
}

impl Item {
    fn new() -> Self {
        Item { payload: UnsafeCell::new(0), runs: UnsafeCell::new(0) }
    }

    /// The owner initialises the object and makes the entry it queues.
    fn entry(&self) -> Entry {
        // SAFETY: a plain write; loom reports it if a run's read is not ordered after it.
        self.payload.with_mut(|p| unsafe { *p = LIVE });
        Entry { obj: (self as *const Item).cast_mut().cast(), run: run_by_the_model }
    }

    /// Runs the item: its callback reads the object.
    fn run(&self) {
        // SAFETY: a plain read; loom reports it if it is not ordered after `entry`'s write.
        let v = self.payload.with(|p| unsafe { *p });
        assert_eq!(v, LIVE, "an item ran before it was queued");
        // SAFETY: a plain read and write; loom reports two runs not ordered with each other.
        self.runs.with_mut(|r| unsafe { *r += 1 });
    }

    /// How often it ran, as seen by the caller (loom reports a run not ordered before this).
    fn runs(&self) -> u32 {
        // SAFETY: a plain read, see above.
        self.runs.with(|r| unsafe { *r })
    }
}

/// The models' entries name this trampoline but never call it: the models run a block's
/// entries themselves (`Staged::run_block`), without the `Atomic` token it would need.
fn run_by_the_model(_obj: *mut (), _ctx: &Atomic<'_>) {
    unreachable!("the loom models run their entries themselves");
}

/// One thread's staging area of one domain (the real `rcu_core::staging::Staging`, on loom's
/// atomics), with what the models need around it: the domain's grace-period sequence, its
/// sealed list, two blocks and two items.
///
/// `reclaim/enqueue.rs` and `reclaim/collection.rs` are not built under loom (they need the whole
/// domain state), so the models do what their `stage_slow`, `seal`, `run_ready_parked`,
/// `finish_returned`, `run_batch`'s give-back, `finish_idle_given_back` and `adopt` do with the
/// real `Staging` and `Bracket` calls, in the same order and brackets; the collection calls the
/// real `Staging::collect` (the staging half of `DomainState::collect`) and then swaps the model's
/// sealed list as `collect` does, and a barrier's end calls the real
/// `Staging::finish_returned_for_barrier` (`finish_given_back`'s part for one slot).
struct Staged {
    staging: Staging,
    gp: GpSequence,
    /// `Reclaim::sealed`, with the orderings of `push_sealed_charged` and `collect`.
    sealed: AtomicPtr<Block>,
    /// The owner queued its item: the model's `rcu_barrier` caller. A collection that reads
    /// it began after the item was queued (as the barrier's RMW on `collections`, which the
    /// worker's collection RMW reads, orders it).
    queued: AtomicBool,
    blocks: [NonNull<Block>; 2],
    items: [Item; 2],
    /// What happened in this execution (outside the model).
    witness: StagedWitness,
}

// SAFETY: the blocks are handed between the model's threads by the staging protocol (which
// is what the model checks: loom reports an item touched by two threads without ordering);
// every other field is an atomic, a loom cell or the `Staging` shared as the runtime shares it.
unsafe impl Send for Staged {}
// SAFETY: as above.
unsafe impl Sync for Staged {}

/// Coverage witness of one execution of a model E (plain std atomics; loom runs one thread at
/// a time, so they follow the schedule).
#[derive(Default)]
struct StagedWitness {
    /// Passes the collection made over the slots: 1 stealing, 2 waiting after the heavy
    /// barrier, 3 the second sweep (and its wait); later passes are the final collection's.
    pass: std::sync::atomic::AtomicUsize,
    /// An owner bracket is open (set once `open` returned, cleared before it closes).
    open: std::sync::atomic::AtomicBool,
    /// An owner bracket was open when the collection began its waits: it straddled the
    /// collection's heavy barrier.
    straddled: std::sync::atomic::AtomicBool,
    /// The interleaving the model is about happened (each model says which).
    key: std::sync::atomic::AtomicBool,
    /// Models E4-E6: the barrier has swapped the given-back list (or found it empty).
    barrier_swapped: std::sync::atomic::AtomicBool,
    /// Models E4-E6: another thread took given-back blocks before the barrier's swap.
    taken_first: std::sync::atomic::AtomicBool,
}

impl StagedWitness {
    /// The collection begins a pass over the slots.
    fn pass(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed (all): coverage bookkeeping outside the model.
        let pass = self.pass.fetch_add(1, Relaxed) + 1;
        if pass == 2 && self.open.load(Relaxed) {
            self.straddled.store(true, Relaxed);
        }
    }

    /// The collection is between its first sweep of the parked slots and its second.
    fn between_sweeps(&self) -> bool {
        // Relaxed: coverage bookkeeping outside the model.
        matches!(self.pass.load(std::sync::atomic::Ordering::Relaxed), 2 | 3)
    }

    fn key(&self) {
        // Relaxed: coverage bookkeeping outside the model.
        self.key.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Staged {
    fn new() -> Arc<Self> {
        let mut cache = ThreadCache::new();
        let mut block = || BLOCKS.get(Policy::NoReclaim, &mut cache).expect("a block");
        let blocks = [block(), block()];
        Arc::new(Staged {
            staging: Staging::new(),
            gp: GpSequence::new(),
            sealed: AtomicPtr::new(core::ptr::null_mut()),
            queued: AtomicBool::new(false),
            blocks,
            items: [Item::new(), Item::new()],
            witness: StagedWitness::default(),
        })
    }

    /// Runs `f` inside an owner bracket (`Staging::open`; the owner's bracket is never open
    /// already here).
    fn bracket<R>(&self, f: impl FnOnce(&Bracket<'_>) -> R) -> R {
        let bracket = self.staging.open().expect("the owner's bracket was open");
        // Relaxed: coverage bookkeeping outside the model.
        self.witness.open.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = f(&bracket);
        // Relaxed: as above.
        self.witness.open.store(false, std::sync::atomic::Ordering::Relaxed);
        drop(bracket);
        r
    }

    /// Queues item `i` as `stage` and `stage_slow` do: into the current block in one bracket;
    /// failing that (no current block, or it is full), `spare` (a new block, taken between
    /// brackets) becomes current in the next.
    fn stage(&self, i: usize, spare: NonNull<Block>) {
        let entry = self.items[i].entry();
        if self.bracket(|b| b.try_push(entry, 8)) {
            return;
        }
        let installed = self.bracket(|b| b.install_and_push(spare, entry, 8));
        assert!(matches!(installed, Ok(None)), "the spare block was not installed");
    }

    /// `run_ready_parked`: takes and runs, inside `bracket`, every parked block whose grace
    /// period has completed. True if it ran one.
    fn run_ready_parked(&self, bracket: &Bracket<'_>) -> bool {
        let mut ran = false;
        while let Some(block) = bracket.take_ready(|cookie| self.gp.is_completed(cookie)) {
            if self.witness.between_sweeps() {
                // Taken after the collection's first sweep and before its second: neither
                // finds it (model E2).
                self.witness.key();
            }
            self.run_block(block);
            ran = true;
        }
        ran
    }

    /// Runs a block's items and leaves it empty. Caller: the block's owner.
    fn run_block(&self, mut block: NonNull<Block>) {
        // SAFETY: the caller owns the block (if the protocol is broken and it does not, loom
        // reports the items' runs racing with their queueing, or an item runs twice or never).
        let (entries, _) = unsafe { block.as_mut() }.drain();
        for entry in entries {
            let item = self.items.iter().find(|item| core::ptr::eq(*item, entry.obj.cast()));
            item.expect("an entry the model did not queue").run();
        }
    }

    /// `run_batch` for a block of a light batch sealed by this model's owner: the worker
    /// dropped item `i`'s value and gives block `i` back holding the deallocation (the item's
    /// entry, written here: loom checks that whoever finishes it is ordered after).
    fn give_back(&self, i: usize) {
        let mut block = self.blocks[i];
        // SAFETY: the worker's batch owns the block until `give_back` publishes it.
        unsafe { block.as_mut() }.push(self.items[i].entry(), 8);
        self.staging.give_back(block);
    }

    /// `finish_returned`: takes, inside `bracket`, the blocks the worker gave back and
    /// finishes their entries (the deallocations).
    fn finish_returned(&self, bracket: &Bracket<'_>) {
        if !bracket.has_returned() {
            return;
        }
        bracket.take_returned(|block| {
            self.note_taken_before_the_barrier();
            self.run_block(block);
        });
    }

    /// A thread other than the barrier's caller took a given-back block before the barrier
    /// swapped the list (models E4-E6's key witness): the barrier finds the list empty and
    /// must wait for whoever took it.
    fn note_taken_before_the_barrier(&self) {
        // Relaxed (both): coverage bookkeeping outside the model.
        if !self.witness.barrier_swapped.load(std::sync::atomic::Ordering::Relaxed) {
            self.witness.taken_first.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The end of `rcu_barrier` for this slot, once its generation has run
    /// (`DomainState::finish_given_back`): `barrier` takes and finishes the given-back list
    /// (the real `finish_returned_for_barrier`, or a broken variant); then every item given
    /// back before the threads began must have been finished, the finish ordered before this
    /// check (loom checks the read of the run count).
    fn barrier_end(&self, barrier: fn(&Staged, &mut dyn FnMut(NonNull<Block>))) {
        let mut finish = |block| {
            // Relaxed (all): coverage bookkeeping outside the model.
            self.witness.barrier_swapped.store(true, std::sync::atomic::Ordering::Relaxed);
            self.run_block(block);
        };
        barrier(self, &mut finish);
        // Relaxed: as above. A list found empty is a swap too.
        self.witness.barrier_swapped.store(true, std::sync::atomic::Ordering::Relaxed);
        if self.witness.taken_first.load(std::sync::atomic::Ordering::Relaxed) {
            self.witness.key();
        }
        for (i, item) in self.items.iter().enumerate() {
            assert_eq!(item.runs(), 1, "rcu_barrier returned with item {i}'s deallocation pending");
        }
    }

    /// `push_sealed_charged`: pushes a block on the sealed list.
    fn push_sealed(&self, mut block: NonNull<Block>) {
        // Relaxed: the CAS publishes.
        let mut head = self.sealed.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller owns the block until the CAS publishes it.
            unsafe { block.as_mut() }.set_next(head);
            // Release: as `push_sealed_charged`: publishes the block's entries to the
            // collection's Acquire swap.
            match self.sealed.compare_exchange(
                head,
                block.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// `DomainState::collect` for this one slot: the real `Staging::collect`, then the swap of
    /// the sealed list. Returns how many blocks came from the list.
    fn collect(&self, batch: &mut Vec<NonNull<Block>>) -> usize {
        Staging::collect(
            || {
                self.witness.pass();
                std::iter::once(&self.staging)
            },
            batch,
            |_stolen| {},
            |_, _| {},
        );
        self.take_sealed(batch)
    }

    /// `collect`'s sweep of the sealed list.
    fn take_sealed(&self, batch: &mut Vec<NonNull<Block>>) -> usize {
        // Acquire: as `collect`; pairs with the Release CAS in `push_sealed`.
        let mut sealed = self.sealed.swap(core::ptr::null_mut(), Ordering::Acquire);
        let mut n = 0;
        while let Some(block) = NonNull::new(sealed) {
            // SAFETY: taken from the list: ours.
            sealed = unsafe { block.as_ref() }.next();
            batch.push(block);
            n += 1;
        }
        n
    }

    /// The worker runs a collected batch (after its grace period, which no reader holds in
    /// these models); then the collection's generation completes and `rcu_barrier` returns.
    fn run_batch(&self, batch: &[NonNull<Block>]) {
        for &block in batch {
            self.run_block(block);
        }
    }

    /// After every thread is joined: collects and runs what is left, and checks that every
    /// item ran exactly once and no block kept an entry (one pushed into a block after the
    /// collection that took it had run it).
    fn finish(&self) {
        let mut rest = Vec::new();
        self.collect(&mut rest);
        self.run_batch(&rest);
        assert!(!self.staging.has_blocks(), "a block is still staged");
        for (i, item) in self.items.iter().enumerate() {
            assert_eq!(item.runs(), 1, "item {i} ran {} times", item.runs());
        }
        for block in &self.blocks {
            // SAFETY: every thread is joined: the blocks are ours.
            assert!(unsafe { block.as_ref() }.is_empty(), "an entry was pushed after its run");
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // a failed execution: leak the blocks rather than guess who holds them
        }
        for &block in &self.blocks {
            // SAFETY: (1) from `BLOCKS.get`; (2) the execution is over and its state is being
            // dropped, so nothing uses the block any more; (3) `finish` checked it is empty.
            unsafe { BLOCKS.put(block) };
        }
    }
}

/// What a model E explored.
#[derive(Debug)]
struct StagedExplored {
    executions: usize,
    /// Executions in which an owner bracket straddled the collection's heavy barrier.
    straddled: usize,
    /// Executions in which the model's key interleaving happened.
    key: usize,
}

/// As `model`, for the staging models.
fn model_staged(f: impl Fn() -> Arc<Staged> + Sync + Send + 'static) -> StagedExplored {
    use std::sync::atomic::{AtomicUsize as Count, Ordering::Relaxed};
    let counts = std::sync::Arc::new([(); 3].map(|()| Count::new(0)));
    let c = counts.clone();
    loom::model::Builder::new().check(move || {
        let w = f();
        // Relaxed (all): plain counters outside the model; loom runs one execution at a time.
        c[0].fetch_add(1, Relaxed);
        if w.witness.straddled.load(Relaxed) {
            c[1].fetch_add(1, Relaxed);
        }
        if w.witness.key.load(Relaxed) {
            c[2].fetch_add(1, Relaxed);
        }
    });
    let explored = StagedExplored {
        executions: counts[0].load(Relaxed),
        straddled: counts[1].load(Relaxed),
        key: counts[2].load(Relaxed),
    };
    let name = std::thread::current().name().map(str::to_owned);
    eprintln!(
        "loom model {}: {} executions; {} with an owner bracket straddling the collection's \
         heavy barrier; {} with the model's key interleaving",
        name.as_deref().unwrap_or("?"),
        explored.executions,
        explored.straddled,
        explored.key,
    );
    explored
}

/// The frame of model E1: before the threads, item 0 is queued in block 0 (current). The
/// owner queues item 1 (`stage`: into the current block, or into block 1 if it finds none)
/// while the worker collects with `collect` and runs the batch. Item 0, queued before the
/// collection began, must be in it; item 1 must end up in exactly one place.
///
/// Like every model E frame, the worker is the last thread spawned: loom's default schedule
/// (no preemption) runs the lowest-numbered runnable thread, so the owner's steps come first
/// and the interleavings that matter are reached within the preemption bound.
fn push_against_collection(collect: fn(&Staged, &mut Vec<NonNull<Block>>)) -> Arc<Staged> {
    let w = Staged::new();
    w.stage(0, w.blocks[0]);
    let owner = {
        let w = w.clone();
        thread::spawn(move || w.stage(1, w.blocks[1]))
    };
    let worker = {
        let w = w.clone();
        thread::spawn(move || {
            let mut batch = Vec::new();
            collect(&w, &mut batch);
            w.run_batch(&batch);
            assert_eq!(w.items[0].runs(), 1, "the collection missed an item queued before it");
            // The owner runs nothing in this model: reading item 1's count races with nothing.
            if w.witness.straddled.load(std::sync::atomic::Ordering::Relaxed)
                && w.items[1].runs() == 1
            {
                // The owner's bracket was open across the heavy barrier and its push landed in
                // the block the collection had stolen: the collection waited for it.
                w.witness.key();
            }
        })
    };
    owner.join().unwrap();
    worker.join().unwrap();
    w.finish();
    w
}

/// E1, the steal protocol: an owner pushes an item into its current block inside a bracket
/// while the worker steals `current`, issues the heavy barrier and waits for brackets open
/// at its point (`Staging::collect`). The worker must see the item (loom checks that its run
/// is ordered after the owner's queueing) or the owner must find the block gone and install
/// a new one; no item is lost or run twice, and the owner never pushes into a stolen block
/// after the worker read it (`finish`).
///
/// The interleaving that matters: the owner's bracket loads `current` before the steal and
/// pushes after it; the bracket's odd `seq` is then visible to the worker after the heavy
/// barrier (the SeqCst fence pair), which waits for the close and acquires the push.
#[test]
fn e_steal_waits_for_the_owners_push() {
    let explored = model_staged(|| {
        push_against_collection(|w, batch| {
            w.collect(batch);
        })
    });
    assert!(explored.key > 0, "no push landed in a stolen block mid-collection: {explored:?}");
}

/// The frame of model E2: before the threads, block 0 is current and full (items 0 and 1). The
/// owner's next block boundary (`stage_slow`'s sealing bracket) detaches it, seals it under
/// `Reclaim` (parks it with a fresh cookie) and runs what is ready; its later boundaries (up
/// to `POLLS`, yielding between) run what has become ready. A third thread leads a grace
/// period, which may complete the parked block's cookie. The worker collects with `collect`,
/// runs the batch, and then its generation is complete: an `rcu_barrier` waiting for it
/// returns, so both items must have run by then, in the batch or inline on the owner, and in
/// the latter case the run must happen before (loom checks the `runs` read).
fn parked_block_against_collection(collect: fn(&Staged, &mut Vec<NonNull<Block>>)) -> Arc<Staged> {
    let w = Staged::new();
    w.stage(0, w.blocks[0]);
    w.stage(1, w.blocks[1]);
    let owner = {
        let w = w.clone();
        thread::spawn(move || {
            w.bracket(|b| {
                // The current block is full (the new item goes to a new block, outside the
                // model): detach it and seal it, parked with the grace period it waits for.
                if let Some(full) = b.detach_full() {
                    let parked = b.park(full, w.gp.cookie());
                    assert!(parked.is_ok(), "no free parking slot");
                }
                w.run_ready_parked(b);
            });
            for _ in 0..POLLS {
                if w.bracket(|b| w.run_ready_parked(b)) {
                    break;
                }
                thread::yield_now();
            }
        })
    };
    let leader = {
        let w = w.clone();
        thread::spawn(move || {
            let gp = w.gp.start();
            w.gp.complete(gp);
        })
    };
    let worker = {
        let w = w.clone();
        thread::spawn(move || {
            let mut batch = Vec::new();
            collect(&w, &mut batch);
            w.run_batch(&batch);
            for (i, item) in w.items.iter().enumerate() {
                assert_eq!(item.runs(), 1, "rcu_barrier would return before item {i} ran");
            }
        })
    };
    owner.join().unwrap();
    leader.join().unwrap();
    worker.join().unwrap();
    w.finish();
    w
}

/// E2, issue 12 item 2: an owner bracket that straddles the collection's heavy barrier parks
/// a detached full block after the collection's first sweep; another thread's grace period
/// completes its cookie; the owner's next bracket takes it (`take_ready`) and runs it inline,
/// winning against the collection's second sweep. `Staging::collect` then waits for that
/// bracket after the sweep, so the run happens before the collection's generation completes.
///
/// The interleaving that matters (the key witness): the owner takes the block after the
/// first sweep and before the second. Without the wait after the second sweep this model
/// fails: the owner's bracket detaches the block before the steal and parks it after the
/// first sweep; the worker's wait reads that bracket's close; the grace period completes;
/// the owner's next bracket takes the block and runs it; the second sweep finds the slot
/// empty and the collection returns, and the worker's check of the run counts is not ordered
/// after the inline run (loom: "Causality violation: Concurrent read and write accesses";
/// see `broken_collection_without_the_second_wait_is_caught` and `docs/design.md` §7).
#[test]
fn e_collection_waits_for_a_parked_block_run_inline() {
    let explored = model_staged(|| {
        parked_block_against_collection(|w, batch| {
            w.collect(batch);
        })
    });
    assert!(explored.straddled > 0, "no bracket straddled the heavy barrier: {explored:?}");
    assert!(explored.key > 0, "no parked block was taken between the sweeps: {explored:?}");
}

/// The frame of model E3: the owner queues item 0 (a fresh current block, block 0), lets the
/// model's `rcu_barrier` caller know (`queued`), and exits: `hand_over` does what `adopt` does
/// first, then `take_cache` forces the bracket shut. The worker collects meanwhile; if it read
/// `queued`, its collection began after the item was queued and must contain it.
fn exit_against_collection(hand_over: fn(&Staged)) -> Arc<Staged> {
    let w = Staged::new();
    let owner = {
        let w = w.clone();
        thread::spawn(move || {
            w.stage(0, w.blocks[0]);
            // Release: the barrier caller learns of the item (pairs with the Acquire below).
            w.queued.store(true, Ordering::Release);
            hand_over(&w);
            w.staging.take_cache(&mut ThreadCache::new());
        })
    };
    let worker = {
        let w = w.clone();
        thread::spawn(move || {
            // Acquire: pairs with the Release store above.
            let after = w.queued.load(Ordering::Acquire);
            let mut batch = Vec::new();
            let from_list = w.collect(&mut batch);
            w.run_batch(&batch);
            if after {
                assert_eq!(
                    w.items[0].runs(),
                    1,
                    "a collection that began after the item missed it"
                );
                if from_list > 0 {
                    // The owner's hand-over won the race for the block; the collection found
                    // it on the list because it waited for the hand-over's bracket.
                    w.witness.key();
                }
            }
        })
    };
    owner.join().unwrap();
    worker.join().unwrap();
    // Item 1 is not used here: queue and run it so that `finish` accounts for it.
    w.stage(1, w.blocks[1]);
    w.finish();
    w
}

/// E3, issue 12 item 2, second part: at thread exit `adopt` moves the thread's blocks from its
/// slot to the sealed list inside the owner's own bracket (`Staging::hand_over`), so a
/// collection that began after the item was queued either steals the block itself or finds
/// the slot empty, waits for the hand-over's bracket, and finds the block on the list.
///
/// The interleaving that matters (the key witness): the hand-over's steal wins, the
/// collection's swaps read it and the collection's list swap comes after the push. Without
/// the bracket this model fails (see `broken_hand_over_outside_the_bracket_is_caught`).
#[test]
fn e_exit_hand_over_is_never_missed() {
    let explored = model_staged(|| {
        exit_against_collection(|w| {
            w.staging.hand_over(|b| w.push_sealed(b), |b| w.push_sealed(b), |b| w.run_block(b));
        })
    });
    assert!(explored.key > 0, "no hand-over won the race for the block: {explored:?}");
}

/// The frame of models E4-E6: the end of an `rcu_barrier` whose generation has run
/// (`DomainState::finish_given_back`), against another party that takes the same given-back
/// list. Before the threads, blocks 0 and 1 hold the deallocations of items 0 and 1 and are on
/// the slot's given-back list: the batches up to the barrier's generation dropped the values
/// and gave the blocks back (`run_batch`, `Staging::give_back`) before publishing the
/// generation, which the barrier's caller acquired; here that is the spawn. `other` runs on one
/// thread (the owner, the worker, an exiting owner); the barrier's caller, spawned last, runs
/// `barrier_end` with `barrier`: when it returns, both deallocations must be finished, by
/// whoever took them, and ordered before its check (loom checks the read of each run count).
/// After the joins, everything left is collected and checked as in every model E (`finish`).
fn given_back_against_barrier(
    other: fn(&Staged),
    barrier: fn(&Staged, &mut dyn FnMut(NonNull<Block>)),
) -> Arc<Staged> {
    let w = Staged::new();
    w.give_back(0);
    w.give_back(1);
    let other = {
        let w = w.clone();
        thread::spawn(move || other(&w))
    };
    let caller = {
        let w = w.clone();
        thread::spawn(move || w.barrier_end(barrier))
    };
    other.join().unwrap();
    caller.join().unwrap();
    w.finish();
    w
}

/// A barrier's part for one slot as it is: the real `finish_returned_for_barrier` (take the
/// list with the slot's strangers' right, waiting for another stranger that holds it; finish
/// it; then `wait_quiescent` for an owner bracket that swapped first).
fn barrier_as_it_is(w: &Staged, finish: &mut dyn FnMut(NonNull<Block>)) {
    w.staging.finish_returned_for_barrier(finish, |_| {});
}

/// The owner's block boundary (`stage_slow`, `pay_owed`): `finish_returned` inside a bracket.
fn owner_finishes_in_a_bracket(w: &Staged) {
    w.bracket(|b| w.finish_returned(b));
}

/// The worker at a full collection (`finish_idle_given_back`): takes an idle owner's list as
/// a stranger, giving up if another stranger holds the right, and finishes it.
fn worker_finishes_an_idle_list(w: &Staged) {
    w.staging.finish_returned_as_stranger(
        false,
        |_| {},
        |b| {
            w.note_taken_before_the_barrier();
            w.run_block(b);
        },
    );
}

/// An exiting owner (`adopt`): `hand_over` finishes the given-back list inside the owner's
/// bracket, then `take_cache` forces the bracket shut.
fn owner_exits(w: &Staged) {
    w.staging.hand_over(
        |b| w.push_sealed(b),
        |b| w.push_sealed(b),
        |b| {
            w.note_taken_before_the_barrier();
            w.run_block(b);
        },
    );
    w.staging.take_cache(&mut ThreadCache::new());
}

/// E4, issue 21 defect 2's fix: a barrier against the owner's bracket. The owner's bracket
/// takes the list with an AcqRel swap; if the barrier's swap comes later it reads the owner's
/// (or a later push), so the owner's opening store happens before the barrier's
/// `wait_quiescent`, which waits for the bracket to close and acquires the finished
/// deallocations.
///
/// The interleaving that matters (the key witness): the owner takes the list before the
/// barrier's swap, which finds it empty. Without the wait this model fails
/// (`broken_barrier_without_the_wait_is_caught`).
#[test]
fn e_barrier_waits_for_the_owners_bracket() {
    let explored =
        model_staged(|| given_back_against_barrier(owner_finishes_in_a_bracket, barrier_as_it_is));
    assert!(explored.key > 0, "the owner never took the list first: {explored:?}");
}

/// E5: a barrier against another stranger, the worker finishing an idle owner's list at a
/// full collection. Strangers take a list only while holding the slot's strangers' right (an
/// Acquire CAS, given back with a Release store once the list is finished), and a barrier
/// waits for the right: if the worker swapped first, the barrier's CAS reads the worker's
/// release, so the worker's deallocations happen before the barrier goes on.
///
/// The interleaving that matters (the key witness): the worker takes the list before the
/// barrier's swap. A barrier that gives up on a held right, as the worker does, fails
/// (`broken_barrier_skipping_a_held_list_is_caught`); so does a worker that keeps the list
/// for a later batch, defect 2 itself (`broken_collection_taking_the_list_is_caught`).
#[test]
fn e_barrier_waits_for_another_stranger() {
    let explored =
        model_staged(|| given_back_against_barrier(worker_finishes_an_idle_list, barrier_as_it_is));
    assert!(explored.key > 0, "the worker never took the list first: {explored:?}");
}

/// E6: a barrier against an exiting owner, whose `hand_over` finishes its given-back list
/// inside its own bracket: a barrier whose swap finds the list empty waits for that bracket
/// as in E4.
///
/// The interleaving that matters (the key witness): the exit takes the list before the
/// barrier's swap. With the hand-over as it was before issue 21's fix (the list handed to the
/// worker with the other blocks) this model fails (`broken_exit_handing_the_list_over_is_caught`).
#[test]
fn e_barrier_waits_for_an_exit() {
    let explored = model_staged(|| given_back_against_barrier(owner_exits, barrier_as_it_is));
    assert!(explored.key > 0, "the exit never took the list first: {explored:?}");
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

/// Model C2 with the resuming leader unordered after the first leader's heavy barrier: the
/// give-up is Relaxed and `start_or_resume` has no fence. loom must find the worker's scan
/// reading the reader's word as it was before the section announced itself (0), completing
/// the resumed grace period, and the writer freeing the object the section holds. (With
/// either one of the two orderings there is no failure to find: see model C2's docs.)
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_resume_unordered_after_the_give_up_is_caught() {
    model(|| {
        resumed_against_reader(
            HandOver {
                give_up: Ordering::Relaxed,
                start_or_resume: start_or_resume_without_the_fence,
            },
            one_section,
        )
    });
}

/// `GpSequence::start_or_resume` without its SeqCst fence. (`completed()` is an Acquire load
/// where the real code's is Relaxed: stronger, but in the failing execution it reads the
/// initial value, so it orders nothing.)
fn start_or_resume_without_the_fence(seq: &GpSequence) -> u64 {
    let started = seq.started();
    if seq.completed() < started {
        started
    } else {
        seq.start()
    }
}

/// Model Q with a quiescent state whose snapshot load is Relaxed instead of Acquire (on the
/// hand-rolled word, otherwise `ReaderWord::refresh`): the load may read grace period 2's
/// advance without synchronizing with it, so the read after the quiescent state may still
/// load the old object, while the scan, reading the fresh snapshot, passes the word and the
/// writer frees. loom must find that read unordered with the free.
#[test]
#[should_panic(expected = "Causality violation: Concurrent read and write accesses")]
fn broken_quiescent_state_with_a_relaxed_snapshot_is_caught() {
    model(|| {
        reader_against_grace_period_over(
            World::with_hand_rolled(Defect::RelaxedQuiescentSnapshot),
            hand_rolled_online_quiescent_state_offline,
            hand_rolled_word,
        )
    });
}

/// Model Q with a quiescent state whose store is Relaxed instead of Release: a scan that
/// reads it and passes the word synchronizes with nothing (a later Relaxed store is not in
/// the release sequence of `enter`'s store), so the read before the quiescent state is
/// unordered with the free. loom must find it.
#[test]
#[should_panic(expected = "Causality violation: Concurrent read and write accesses")]
fn broken_quiescent_state_with_a_relaxed_store_is_caught() {
    model(|| {
        reader_against_grace_period_over(
            World::with_hand_rolled(Defect::RelaxedQuiescentStore),
            hand_rolled_online_quiescent_state_offline,
            hand_rolled_word,
        )
    });
}

/// Model Q3 with a thread going online without the fence after its word store (the
/// hand-rolled `enter` without `reader_barrier`): nothing pairs with the grace period's
/// fence, so the scan may read the word as offline while the reader's load, not ordered
/// after it, still returns the old object (store buffering). loom must find the reader's
/// read unordered with the free. This is why QSBR words are in fence mode in every build.
#[test]
#[should_panic(expected = "Causality violation: Concurrent read and write accesses")]
fn broken_going_online_without_the_fence_is_caught() {
    model(|| {
        qsbr_reader_against_synchronize(
            World::with_hand_rolled(Defect::EnterWithoutFence),
            1,
            |w| {
                let word = &w.hand_rolled;
                word.enter(w.seq.started_counter()); // online, no fence
                w.load_and_read();
                word.exit(); // offline
            },
            hand_rolled_word,
        )
    });
}

/// A broken worker that steals the current block and runs it after the heavy barrier without
/// waiting for the owner's bracket (model E1's frame): loom must find the owner's push
/// landing in the stolen block unordered with the worker's run, or after it.
#[test]
#[should_panic(expected = "item 1 ran 0 times")]
fn broken_steal_without_waiting_is_caught() {
    model_staged(|| {
        push_against_collection(|w, batch| {
            let mut current = None;
            w.witness.pass();
            w.staging.steal(&mut current, batch);
            heavy_barrier();
            // Broken: no `wait_quiescent`.
            batch.extend(current);
            w.take_sealed(batch);
        })
    });
}

/// The collection as it was before issue 12 was fixed (model E2's frame): steal, heavy
/// barrier, wait, second sweep, and no wait after the second sweep. loom must find the owner
/// taking the parked block between the sweeps and the collection returning before it ran.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_collection_without_the_second_wait_is_caught() {
    model_staged(|| {
        parked_block_against_collection(|w, batch| {
            let mut current = None;
            w.witness.pass();
            w.staging.steal(&mut current, batch);
            heavy_barrier();
            w.witness.pass();
            w.staging.wait_quiescent(|_| {});
            batch.extend(current);
            w.witness.pass();
            w.staging.steal_parked(batch);
            // Broken: no `wait_quiescent` after the second sweep.
            w.take_sealed(batch);
        })
    });
}

/// `adopt` as it was before issue 12 was fixed (model E3's frame): the exiting owner steals
/// its own blocks and pushes them on the sealed list outside any bracket. loom must find a
/// collection that began after the item was queued and missed it: the owner's steal won, so
/// the collection's swaps found nothing, nothing made it wait, and its list swap came before
/// the owner's push.
#[test]
#[should_panic(expected = "a collection that began after the item missed it")]
fn broken_hand_over_outside_the_bracket_is_caught() {
    model_staged(|| {
        exit_against_collection(|w| {
            // Broken: no bracket.
            let mut current = None;
            let mut parked = Vec::new();
            w.staging.steal(&mut current, &mut parked);
            current.into_iter().chain(parked).for_each(|b| w.push_sealed(b));
        })
    });
}

/// Model E4's barrier without `wait_quiescent` (only the stranger's take, with its right):
/// loom must find the owner's bracket taking the list first and the barrier returning before
/// the owner's finish, unordered with it.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_barrier_without_the_wait_is_caught() {
    model_staged(|| {
        given_back_against_barrier(owner_finishes_in_a_bracket, |w, finish| {
            // Broken: no wait for an owner bracket that swapped first.
            w.staging.finish_returned_as_stranger(true, |_| {}, finish);
        })
    });
}

/// Model E5's barrier giving up when another stranger holds the right (as the worker does),
/// then waiting for the owner's bracket: loom must find the worker holding the right and
/// taking the list, and the barrier returning before the worker's finish.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_barrier_skipping_a_held_list_is_caught() {
    model_staged(|| {
        given_back_against_barrier(worker_finishes_an_idle_list, |w, finish| {
            // Broken: no wait for the strangers' right.
            w.staging.finish_returned_as_stranger(false, |_| {}, finish);
            w.staging.wait_quiescent(|_| {});
        })
    });
}

/// Issue 21's defect 2 in model E5's frame: a full collection takes the given-back list into
/// its batch, to be finished when that batch runs after its grace period (here: after the
/// worker's step, unordered with the barrier). loom must find the barrier returning before.
#[test]
#[should_panic(expected = "Causality violation")]
fn broken_collection_taking_the_list_is_caught() {
    model_staged(|| {
        given_back_against_barrier(
            |w| {
                // Broken: the list goes into the collection's batch, finished later.
                let mut batch = Vec::new();
                w.staging.finish_returned_as_stranger(false, |_| {}, |b| batch.push(b));
                w.run_batch(&batch);
            },
            barrier_as_it_is,
        )
    });
}

/// Model E6's exit handing its given-back list to the worker with its other blocks (as
/// `adopt` did before issue 21's fix): loom must find the barrier finding the list empty, no
/// bracket open, and returning with the deallocations still queued.
#[test]
#[should_panic(expected = "rcu_barrier returned with item")]
fn broken_exit_handing_the_list_over_is_caught() {
    model_staged(|| {
        given_back_against_barrier(
            |w| {
                // Broken: the given-back blocks go to the sealed list, for the worker.
                w.staging.hand_over(
                    |b| w.push_sealed(b),
                    |b| w.push_sealed(b),
                    |b| w.push_sealed(b),
                );
                w.staging.take_cache(&mut ThreadCache::new());
            },
            barrier_as_it_is,
        )
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

// ==== Model F: the event count (rcu_sys::EventCount) =========================================
//
// The runtime's one wait/notify primitive: grace-period completions, batch completions
// (barriers, backpressure) and service-thread wake-ups all use it. Under loom its futex is
// "sleep while the word equals the key" with no timeout, so a lost wake-up is a waiter that
// never returns, which loom reports (the model never finishes its branches).

/// The runtime's event-count code on loom's atomics.
type ModelledEvents = rcu_sys::EventCountIn<loom::sync::atomic::AtomicU32>;

/// A waiter that reads the key, checks a condition and waits; a notifier that makes the
/// condition true (a Release store, as `run_batch`'s generation is) and notifies. The waiter
/// must return, whatever the interleaving.
fn event_count_frame(notify: fn(&AtomicBool, &ModelledEvents)) {
    loom::model(move || {
        let shared = Arc::new((AtomicBool::new(false), ModelledEvents::new_modelled()));
        let notifier = {
            let shared = shared.clone();
            thread::spawn(move || notify(&shared.0, &shared.1))
        };
        loop {
            let key = shared.1.key();
            // Acquire: pairs with the notifier's Release store (through the event count's
            // SeqCst bump when the key is newer).
            if shared.0.load(Ordering::Acquire) {
                break;
            }
            shared.1.wait(key, None);
        }
        notifier.join().unwrap();
    });
}

#[test]
fn f_event_count_never_loses_a_wakeup() {
    event_count_frame(|ready, events| {
        // Release: what the waiter's Acquire load pairs with.
        ready.store(true, Ordering::Release);
        events.notify_all();
    });
}

/// The same with a notifier that notifies before making its condition true: a waiter that
/// takes its key after the bump, then sees the condition false, sleeps for ever.
#[test]
#[should_panic(expected = "Model exceeded maximum number of branches")]
fn broken_event_count_notify_before_the_condition_is_caught() {
    event_count_frame(|ready, events| {
        events.notify_all();
        // Release: as above, but too late.
        ready.store(true, Ordering::Release);
    });
}
