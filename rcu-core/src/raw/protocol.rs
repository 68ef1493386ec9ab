//! The reader/grace-period protocol on plain atomics: what a reader announces, what a grace
//! period waits for. No threads, no syscalls, no allocation; loom models exactly this code.
//!
//! A reader announces itself in its *reader word*: 0 when outside any read section,
//! otherwise `(snapshot << NEST_BITS) | nesting`, where `snapshot` is the grace-period
//! sequence it saw when its outermost section began. Grace period `g` starts by advancing the
//! sequence to `g` and then waits for every reader word that is in a section with a snapshot
//! other than `g`; readers that began after the advance carry `g` and are not waited for.
//!
//! The word is updated with single plain stores by its owner thread, never a read-modify-
//! write, so entering and leaving cost no atomic instruction. Because each update is one
//! store computed from one load, a signal handler that runs a whole read section in between
//! leaves the word exactly as it found it, so read sections nest across signal handlers.
//!
//! Only the low 48 bits of the sequence fit in a word. That is enough: once a reader's word
//! holds snapshot `s`, grace period `s + 1` cannot complete until it leaves, so a published
//! snapshot is never more than one behind. Between a reader's load of the sequence and its
//! store the gap is unbounded in principle, but mistaking a stale snapshot for the current
//! one would need the sequence to advance by exactly 2^48 (2.8e14 grace periods, years at
//! any achievable rate) inside those two instructions.
//!
//! One reader and one grace period, step by step:
//!
//! ```
//! use rcu_core::raw::protocol::{GpSequence, ReaderWord};
//!
//! let seq = GpSequence::new();
//! let reader = ReaderWord::new();
//! reader.enter(seq.started_counter()); // a section begins before the grace period
//! let cookie = seq.cookie(); // a writer unpublished something: it needs grace period 2
//! let gp = seq.start(); // the leader starts it
//! assert_eq!(gp, cookie);
//! assert!(reader.blocks(gp)); // the section may hold the old pointer: wait for it
//! reader.exit();
//! assert!(!reader.blocks(gp));
//! seq.complete(gp);
//! assert!(seq.is_completed(cookie)); // now the writer may free
//! ```

use crate::raw::barrier::{heavy_barrier, reader_barrier};
use crate::raw::sync::{fence, AtomicU64, Ordering};

/// Bits of the reader word that count nesting.
pub(crate) const NEST_BITS: u32 = 16;
const NEST_MASK: u64 = (1 << NEST_BITS) - 1;

/// One thread's announcement to grace periods, for one domain.
///
/// ```
/// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
/// let seq = GpSequence::new();
/// let word = ReaderWord::new();
/// word.enter(seq.started_counter());
/// word.enter(seq.started_counter()); // nested: only counts
/// assert_eq!(word.depth(), 2);
/// word.exit();
/// word.exit();
/// assert_eq!(word.depth(), 0);
/// ```
#[derive(Debug)]
pub struct ReaderWord {
    word: AtomicU64,
    /// The process's barrier mode, copied here at registration so that the read path tests
    /// a flag in the cache line it already touches instead of a global (see raw::barrier).
    #[cfg(not(loom))]
    fence_mode: core::sync::atomic::AtomicBool,
}

impl Default for ReaderWord {
    fn default() -> Self {
        Self::new()
    }
}

impl ReaderWord {
    /// A word outside any read section.
    ///
    /// ```
    /// use rcu_core::raw::protocol::ReaderWord;
    /// static WORD: ReaderWord = ReaderWord::new();
    /// assert_eq!(WORD.depth(), 0);
    /// assert!(!WORD.blocks(2));
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        ReaderWord {
            word: AtomicU64::new(0),
            fence_mode: core::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Records the process's barrier mode (`raw::barrier::uses_membarrier`) for this word's
    /// owner; called at registration, after the mode was decided. Until then the word uses
    /// fences, which is always correct.
    ///
    /// ```
    /// use rcu_core::raw::{barrier, protocol::ReaderWord};
    /// barrier::init();
    /// let word = ReaderWord::new();
    /// word.set_fence_mode(!barrier::uses_membarrier()); // what registration does
    /// ```
    #[cfg(not(loom))]
    pub fn set_fence_mode(&self, fence: bool) {
        // Relaxed: the owner sets it before its first section, on its own thread.
        self.fence_mode.store(fence, Ordering::Relaxed);
    }

    /// The reader's half of the barrier pair (see raw::barrier).
    #[inline(always)]
    fn barrier(&self) {
        #[cfg(not(loom))]
        // Relaxed: a per-process constant, set by the owner at registration.
        if !self.fence_mode.load(Ordering::Relaxed) {
            // Compiler-only: the CPU side is covered by the grace period's membarrier.
            crate::raw::sync::compiler_fence(Ordering::SeqCst);
            return;
        }
        reader_barrier();
    }

    /// A word outside any read section.
    #[cfg(loom)]
    pub fn new() -> Self {
        ReaderWord { word: AtomicU64::new(0) }
    }

    /// Enters a read section (owner thread only). `gp_seq` is the domain's sequence.
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter(seq.started_counter()); // snapshot: grace period 1
    /// assert!(word.blocks(2) && !word.blocks(1));
    /// word.exit();
    /// ```
    ///
    /// # Panics
    /// When the word is already 65535 sections deep, in every build: the nesting never wraps
    /// into the snapshot bits. The word is left as it was.
    ///
    /// ```
    /// use std::panic::{catch_unwind, AssertUnwindSafe};
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// for _ in 0..65535 {
    ///     word.enter(seq.started_counter()); // e.g. guards forgotten in a loop
    /// }
    /// let refused = catch_unwind(AssertUnwindSafe(|| word.enter(seq.started_counter())));
    /// let msg = refused.unwrap_err().downcast::<String>().unwrap();
    /// assert!(msg.contains("read sections nested 65535 deep"), "{msg}");
    /// assert_eq!(word.depth(), 65535); // not counted
    /// let gp = seq.start();
    /// assert!(word.blocks(gp)); // still holds the grace periods that began after it
    /// for _ in 0..65535 {
    ///     word.exit();
    /// }
    /// assert!(!word.blocks(gp));
    /// seq.complete(gp);
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn enter(&self, gp_seq: &AtomicU64) {
        self.enter_interrupted(gp_seq, || {});
    }

    /// `enter`, with `signal` run where a signal handler could land in the outermost path:
    /// after the word store, before the barrier. For the loom model of that window.
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter_interrupted(seq.started_counter(), || {
    ///     // A "signal handler" running a whole nested section in the window.
    ///     word.enter(seq.started_counter());
    ///     word.exit();
    /// });
    /// assert_eq!(word.depth(), 1);
    /// word.exit();
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn enter_interrupted(&self, gp_seq: &AtomicU64, signal: impl FnOnce()) {
        // Relaxed: only this thread writes the word, so this reads our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        if cur & NEST_MASK == 0 {
            // Acquire: pairs with the AcqRel fetch_add in `GpSequence::start_with`. A reader that
            // sees grace period g has begun also sees every removal that happened before g
            // was started, so g need not wait for it.
            let snapshot = gp_seq.load(Ordering::Acquire);
            // Release, not for this section but for the previous one: a scan that reads
            // this store (and so skips us, snapshot == its grace period) must also see the
            // previous section's loads as done, and a later store is not part of that
            // section's Release exit's release sequence. Free on x86-64 (a plain store),
            // `stlr` on AArch64. Ordering *this* store before this section's loads is the job
            // of reader_barrier below with the grace period's heavy_barrier (raw::barrier).
            // (Found by the loom model `b_consecutive_sections_both_read`.)
            self.word.store((snapshot << NEST_BITS) | 1, Ordering::Release);
            signal();
            self.barrier();
        } else {
            if cur & NEST_MASK == NEST_MASK {
                nested_too_deep();
            }
            // Release: as above, every store to the word carries what came before it.
            self.word.store(cur + 1, Ordering::Release);
            // A signal handler may nest here between the outermost store and its barrier;
            // in fence mode it needs its own fence (a compiler barrier in membarrier mode).
            self.barrier();
        }
    }

    /// `enter` with a compiler barrier in place of the reader's barrier, whatever the word's
    /// mode: for a reader whose grace periods are known to issue the heavy barrier
    /// (membarrier) while it may enter this way (a QSBR executor worker online,
    /// `api::qsbr_thread`). Caller: owner; `raw::barrier::uses_membarrier()` is true.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn enter_for_heavy_barrier(&self, gp_seq: &AtomicU64) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        let next = if cur & NEST_MASK == 0 {
            // Acquire: as in `enter`.
            (gp_seq.load(Ordering::Acquire) << NEST_BITS) | 1
        } else {
            if cur & NEST_MASK == NEST_MASK {
                nested_too_deep();
            }
            cur + 1
        };
        // Release: as in `enter`.
        self.word.store(next, Ordering::Release);
        // Compiler-only: the CPU side is the grace period's membarrier.
        crate::raw::sync::compiler_fence(Ordering::SeqCst);
    }

    /// A quiescent state of a reader that stays inside its outermost section (a QSBR thread
    /// online, owner only): the end of the section so far and the start of a new one in one
    /// store, whose snapshot is the sequence now, so grace periods that began before it stop
    /// waiting for this word.
    ///
    /// # Panics
    /// Outside any section, and inside a nested one (depth above 1), in every build: the
    /// fresh snapshot would end the nested sections too, while their loads are in use. The
    /// word is left as it was.
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter(seq.started_counter()); // online
    /// let gp = seq.start();
    /// assert!(word.blocks(gp));
    /// word.refresh(seq.started_counter()); // quiescent state: nothing read before is kept
    /// assert!(!word.blocks(gp) && word.depth() == 1);
    /// seq.complete(gp);
    /// word.exit(); // offline
    /// ```
    #[inline(always)]
    #[track_caller]
    pub fn refresh(&self, gp_seq: &AtomicU64) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        if cur & NEST_MASK != 1 {
            refresh_not_outermost(cur & NEST_MASK);
            return;
        }
        // Acquire: as in `enter` (pairs with the AcqRel advance of the sequence). It also keeps
        // the loads after the quiescent state after it.
        let snapshot = gp_seq.load(Ordering::Acquire);
        // Release: every load before the quiescent state happens before this store, as for
        // `exit`'s (a scan that reads it and skips us sees those loads done).
        //
        // No barrier after it, unlike `enter`: the word never reads "outside" meanwhile, so a
        // scan of grace period g reads either the old word, which blocks g (g waits), or this
        // one. If its snapshot is g, our Acquire load read g's advance, so the loads after it
        // see every removal made before g; if it is older, it still blocks g. Either way a
        // later load is never missed; a store delayed in the store buffer only delays g.
        self.word.store((snapshot << NEST_BITS) | (cur & NEST_MASK), Ordering::Release);
    }

    /// Leaves a read section (owner thread only).
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter(seq.started_counter());
    /// word.exit(); // the section's loads are ordered before this store
    /// assert_eq!(word.depth(), 0);
    /// ```
    #[inline(always)]
    pub fn exit(&self) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        if cur & NEST_MASK == 1 {
            // Release: every load of the section happens before this store; pairs with the
            // Acquire load in `blocks`, so a grace period that sees the section ended also
            // sees that its loads are done before anything is freed.
            self.word.store(0, Ordering::Release);
        } else if cur & NEST_MASK != 0 {
            // Release: as in `enter`, every store to the word carries what came before it.
            self.word.store(cur - 1, Ordering::Release);
        } else {
            exit_without_entry();
        }
    }

    /// Nesting depth of the owner's read sections (owner thread, or any thread for reports).
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter(seq.started_counter());
    /// assert_eq!(word.depth(), 1);
    /// word.exit();
    /// ```
    #[inline]
    pub fn depth(&self) -> u64 {
        // Relaxed: informational.
        self.word.load(Ordering::Relaxed) & NEST_MASK
    }

    /// True while this word holds up grace period `gp`: in a section that began before `gp`
    /// started.
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// let gp = seq.start(); // grace period 2 begins first...
    /// word.enter(seq.started_counter()); // ...so this section saw it and is not waited for
    /// assert!(!word.blocks(gp));
    /// word.exit();
    /// seq.complete(gp);
    /// ```
    #[inline]
    pub fn blocks(&self, gp: u64) -> bool {
        // Acquire: pairs with the Release store in `exit`: once we see the section over, its
        // loads happened before whatever the grace period's caller does next.
        let w = self.word.load(Ordering::Acquire);
        w & NEST_MASK != 0 && (w >> NEST_BITS) != (gp & (u64::MAX >> NEST_BITS))
    }

    /// Forces the word out of any section: for a thread that exited with a leaked guard, and
    /// for other threads' words in a child after `fork()`. Returns the depth it had.
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let word = ReaderWord::new();
    /// word.enter(seq.started_counter());
    /// word.enter(seq.started_counter());
    /// assert_eq!(word.force_exit(), 2); // e.g. its thread exited with forgotten guards
    /// assert!(!word.blocks(2));
    /// ```
    pub fn force_exit(&self) -> u64 {
        // Release: whatever the dead section did is ordered before its end, as in `exit`.
        let old = self.word.swap(0, Ordering::AcqRel);
        old & NEST_MASK
    }
}

/// A section refused because the word's nesting is full: one more would carry into the
/// snapshot bits, and a word at nesting 0 reads as outside any section, so grace periods
/// would stop waiting for a section whose guards are alive. Checked in every build; the word
/// is left as it was (nothing else has changed: see `enter`), so panicking is safe: the
/// runtime enters the context half of the section (`rcu_ctx::ReadSection`) first, and the
/// unwinding drops it. Only forgetting guards in a loop gets here.
#[cold]
#[inline(never)]
#[track_caller]
fn nested_too_deep() -> ! {
    panic!(
        "rcu-core: read sections nested {NEST_MASK} deep on one thread in one domain: one more \
         would wrap the reader word's nesting, and grace periods would stop waiting for \
         sections that are still open (rule: every read section ends, and no counter that \
         safe code drives may overflow). This one was refused and not counted. Guards are \
         being created in a loop and forgotten or kept. Fix: drop each ReadGuard before \
         entering the next section"
    );
}

/// `refresh` outside the outermost section alone.
#[cold]
#[inline(never)]
#[track_caller]
fn refresh_not_outermost(depth: u64) {
    if depth == 0 {
        exit_without_entry();
        return;
    }
    panic!(
        "rcu-core: a QSBR quiescent state inside a section nested {depth} deep: it would end \
         the nested sections (an RcuCell::update closure's, a QsbrDomain::read's) while what \
         they loaded is in use (rule: a quiescent state only where the thread holds nothing). \
         Fix: announce it after the nested section ends"
    );
}

/// An exit with no section open. The runtime never ends a section a live guard could still
/// exit (`registration`: a section is force-ended only when no guard can reach it), so this
/// is a bug of the runtime or of `unsafe` code; leave the word be rather than wrap it.
#[cold]
fn exit_without_entry() {
    debug_assert!(
        false,
        "rcu-core internal error: read section exit without entry (a section was ended while a \
         guard of it still lived, or a guard was copied with unsafe code)"
    );
}

/// A domain's grace-period sequence: started and completed counters.
///
/// `started` is what readers snapshot; grace period `g` begins when `started` becomes `g` and
/// ends when `completed` becomes `g`. Both start at 1, meaning "grace period 1 is over".
///
/// ```
/// use rcu_core::raw::protocol::GpSequence;
/// let seq = GpSequence::new();
/// let cookie = seq.cookie();
/// assert!(!seq.is_completed(cookie));
/// let gp = seq.start();
/// seq.complete(gp);
/// assert!(seq.is_completed(cookie));
/// assert_eq!((seq.started(), seq.completed()), (2, 2));
/// ```
#[derive(Debug)]
pub struct GpSequence {
    started: AtomicU64,
    completed: AtomicU64,
}

impl Default for GpSequence {
    fn default() -> Self {
        Self::new()
    }
}

impl GpSequence {
    /// A sequence at rest.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// static SEQ: GpSequence = GpSequence::new();
    /// assert_eq!((SEQ.started(), SEQ.completed()), (1, 1)); // "grace period 1 is over"
    /// ```
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        GpSequence { started: AtomicU64::new(1), completed: AtomicU64::new(1) }
    }

    /// A sequence at rest.
    #[cfg(loom)]
    pub fn new() -> Self {
        GpSequence { started: AtomicU64::new(1), completed: AtomicU64::new(1) }
    }

    /// The counter readers snapshot.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// assert_eq!(seq.started_counter().load(Ordering::Relaxed), 1);
    /// ```
    #[inline(always)]
    pub fn started_counter(&self) -> &AtomicU64 {
        &self.started
    }

    /// The first grace period that begins after this call: once it completes, every reader
    /// that could have seen what the caller removed before calling has finished.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// assert_eq!(seq.cookie(), 2); // grace period 1 is over; 2 is the next to begin
    /// ```
    pub fn cookie(&self) -> u64 {
        // AcqRel read-modify-write (of zero): the grace period that starts next advances
        // `started` with an RMW, which reads from ours, so our Release synchronizes with it:
        // everything the caller did before (its removal) happens-before that grace period's
        // start, and hence before any reader that observes it (the Acquire in `enter`).
        self.started.fetch_add(0, Ordering::AcqRel) + 1
    }

    /// True once grace period `cookie` has completed.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// assert!(seq.is_completed(1));
    /// assert!(!seq.is_completed(seq.cookie()));
    /// ```
    #[inline]
    pub fn is_completed(&self, cookie: u64) -> bool {
        // Acquire: pairs with the Release store in `complete`: the caller sees every reader
        // of that grace period finished before it acts (frees).
        self.completed.load(Ordering::Acquire) >= cookie
    }

    /// The last completed grace period.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// let gp = seq.start();
    /// assert_eq!(seq.completed(), 1); // started, not completed yet
    /// seq.complete(gp);
    /// assert_eq!(seq.completed(), 2);
    /// ```
    pub fn completed(&self) -> u64 {
        // Acquire: as in `is_completed`.
        self.completed.load(Ordering::Acquire)
    }

    /// The last started grace period.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// seq.start();
    /// assert_eq!(seq.started(), 2);
    /// ```
    pub fn started(&self) -> u64 {
        // Relaxed: informational (statistics and reports).
        self.started.load(Ordering::Relaxed)
    }

    /// Starts the next grace period and returns its number. Caller: the single grace-period
    /// leader, which then waits until no reader word `blocks` it and calls `complete`.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// let gp = seq.start(); // issues the heavy barrier
    /// assert_eq!(gp, 2);
    /// seq.complete(gp);
    /// ```
    pub fn start(&self) -> u64 {
        self.start_with(heavy_barrier)
    }

    /// As `start`, with `barrier` in place of the heavy barrier: the sleepable flavour whose
    /// readers all fence (`raw::srcu`) pairs with them by a SeqCst fence and never
    /// interrupts other CPUs.
    ///
    /// ```
    /// use std::sync::atomic::{fence, Ordering};
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// let gp = seq.start_with(|| fence(Ordering::SeqCst));
    /// seq.complete(gp);
    /// assert_eq!(seq.completed(), 2);
    /// ```
    pub fn start_with(&self, barrier: impl FnOnce()) -> u64 {
        // AcqRel: Release pairs with the Acquire snapshot in `ReaderWord::enter`; Acquire
        // completes the synchronization with `cookie`'s RMW (see there).
        let gp = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        // After this, each reader either has its announcement visible to our loads of the
        // reader words, or will see everything ordered before the advance (raw::barrier).
        barrier();
        gp
    }

    /// The grace period to wait for next: the one in progress if a leader started it and
    /// gave up waiting (`GracePeriods::try_advance` never waits), else a new one (`start`).
    /// Caller: the leader, whose acquisition of the role ordered the previous leader's
    /// writes before this.
    ///
    /// Resuming needs no second heavy barrier, only a full fence on this thread: the first
    /// leader's barrier made every reader's earlier announcement precede it in the total
    /// order of SeqCst fences (the barrier acts as a fence on every thread of the process,
    /// `raw::barrier`), the hand-over of the leader role orders that barrier before this
    /// fence, so this fence follows those announcements too, and the loads of the reader
    /// words after it see them (or later stores).
    ///
    /// ```
    /// use rcu_core::raw::protocol::{GpSequence, ReaderWord};
    /// let seq = GpSequence::new();
    /// let reader = ReaderWord::new();
    /// reader.enter(seq.started_counter());
    /// let gp = seq.start_or_resume(); // a leader starts grace period 2
    /// assert!(reader.blocks(gp)); // and gives up, leaving it in progress
    /// reader.exit();
    /// assert_eq!(seq.start_or_resume(), gp); // the next leader carries on with it
    /// seq.complete(gp);
    /// assert_eq!(seq.start_or_resume(), gp + 1);
    /// ```
    pub fn start_or_resume(&self) -> u64 {
        self.start_or_resume_with(heavy_barrier)
    }

    /// As `start_or_resume`, starting with `start_with(barrier)`.
    pub fn start_or_resume_with(&self, barrier: impl FnOnce()) -> u64 {
        // Relaxed (both): written only by leaders, ordered before us by the role's hand-over
        // (Release in `stop_leading`, Acquire in `try_lead`). Readers and `cookie` never
        // change `started` (`cookie` adds zero).
        let started = self.started.load(Ordering::Relaxed);
        if self.completed.load(Ordering::Relaxed) < started {
            // SeqCst: see above.
            fence(Ordering::SeqCst);
            started
        } else {
            self.start_with(barrier)
        }
    }

    /// Marks grace period `gp` complete. Caller: the leader, after no reader word blocks it.
    ///
    /// ```
    /// use rcu_core::raw::protocol::GpSequence;
    /// let seq = GpSequence::new();
    /// let cookie = seq.cookie();
    /// let gp = seq.start();
    /// seq.complete(gp);
    /// assert!(seq.is_completed(cookie));
    /// ```
    pub fn complete(&self, gp: u64) {
        // Release: pairs with the Acquire in `is_completed`; carries the Acquire loads of the
        // reader words (their sections' ends) to whoever polls.
        self.completed.store(gp, Ordering::Release);
    }
}
