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
//! Only the low 48 bits of the sequence fit in a word. That is enough: while a reader holds
//! snapshot `s`, grace period `s + 1` cannot complete, so the sequence is never more than one
//! ahead of any snapshot that is still in a word, and comparing for equality is exact.

use crate::raw::barrier::{heavy_barrier, reader_barrier};
use crate::sync::{AtomicU64, Ordering};

/// Bits of the reader word that count nesting.
pub(crate) const NEST_BITS: u32 = 16;
const NEST_MASK: u64 = (1 << NEST_BITS) - 1;

/// One thread's announcement to grace periods, for one domain.
#[derive(Debug)]
pub struct ReaderWord {
    word: AtomicU64,
}

impl Default for ReaderWord {
    fn default() -> Self {
        Self::new()
    }
}

impl ReaderWord {
    /// A word outside any read section.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        ReaderWord { word: AtomicU64::new(0) }
    }

    /// A word outside any read section.
    #[cfg(loom)]
    pub fn new() -> Self {
        ReaderWord { word: AtomicU64::new(0) }
    }

    /// Enters a read section (owner thread only). `gp_seq` is the domain's sequence.
    #[inline(always)]
    pub fn enter(&self, gp_seq: &AtomicU64) {
        // Relaxed: only this thread writes the word, so this reads our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        if cur & NEST_MASK == 0 {
            // Acquire: pairs with the AcqRel fetch_add in `GpSequence::advance`. A reader that
            // sees grace period g has begun also sees every removal that happened before g
            // was started, so g need not wait for it.
            let snapshot = gp_seq.load(Ordering::Acquire);
            // Relaxed: ordered before this section's loads by reader_barrier below together
            // with the grace period's heavy_barrier (see raw::barrier).
            self.word.store((snapshot << NEST_BITS) | 1, Ordering::Relaxed);
            reader_barrier();
        } else {
            assert!(cur & NEST_MASK != NEST_MASK, "rcu-core: read sections nested 65535 deep");
            // Relaxed: a nested section changes only the count, which no other thread uses
            // for ordering; the outermost announcement already protects this section.
            self.word.store(cur + 1, Ordering::Relaxed);
        }
    }

    /// Leaves a read section (owner thread only).
    #[inline(always)]
    pub fn exit(&self) {
        // Relaxed: our own last store.
        let cur = self.word.load(Ordering::Relaxed);
        debug_assert!(cur & NEST_MASK != 0, "rcu-core: read section exit without entry");
        if cur & NEST_MASK == 1 {
            // Release: every load of the section happens before this store; pairs with the
            // Acquire load in `blocks`, so a grace period that sees the section ended also
            // sees that its loads are done before anything is freed.
            self.word.store(0, Ordering::Release);
        } else {
            // Relaxed: nested exit, the section goes on.
            self.word.store(cur - 1, Ordering::Relaxed);
        }
    }

    /// Nesting depth of the owner's read sections (owner thread, or any thread for reports).
    pub fn depth(&self) -> u64 {
        // Relaxed: informational.
        self.word.load(Ordering::Relaxed) & NEST_MASK
    }

    /// True while this word holds up grace period `gp`: in a section that began before `gp`
    /// started.
    #[inline]
    pub fn blocks(&self, gp: u64) -> bool {
        // Acquire: pairs with the Release store in `exit`: once we see the section over, its
        // loads happened before whatever the grace period's caller does next.
        let w = self.word.load(Ordering::Acquire);
        w & NEST_MASK != 0 && (w >> NEST_BITS) != (gp & (u64::MAX >> NEST_BITS))
    }

    /// Forces the word out of any section: for a thread that exited with a leaked guard, and
    /// for other threads' words in a child after `fork()`. Returns the depth it had.
    pub fn force_exit(&self) -> u64 {
        // Release: whatever the dead section did is ordered before its end, as in `exit`.
        let old = self.word.swap(0, Ordering::AcqRel);
        old & NEST_MASK
    }
}

/// A domain's grace-period sequence: started and completed counters.
///
/// `started` is what readers snapshot; grace period `g` begins when `started` becomes `g` and
/// ends when `completed` becomes `g`. Both start at 1, meaning "grace period 1 is over".
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
    #[inline(always)]
    pub fn started_counter(&self) -> &AtomicU64 {
        &self.started
    }

    /// The first grace period that begins after this call: once it completes, every reader
    /// that could have seen what the caller removed before calling has finished.
    pub fn cookie(&self) -> u64 {
        // AcqRel read-modify-write (of zero): the grace period that starts next advances
        // `started` with an RMW, which reads from ours, so our Release synchronizes with it:
        // everything the caller did before (its removal) happens-before that grace period's
        // start, and hence before any reader that observes it (the Acquire in `enter`).
        self.started.fetch_add(0, Ordering::AcqRel) + 1
    }

    /// True once grace period `cookie` has completed.
    #[inline]
    pub fn is_completed(&self, cookie: u64) -> bool {
        // Acquire: pairs with the Release store in `complete`: the caller sees every reader
        // of that grace period finished before it acts (frees).
        self.completed.load(Ordering::Acquire) >= cookie
    }

    /// The last completed grace period.
    pub fn completed(&self) -> u64 {
        // Acquire: as in `is_completed`.
        self.completed.load(Ordering::Acquire)
    }

    /// The last started grace period.
    pub fn started(&self) -> u64 {
        // Relaxed: informational (statistics and reports).
        self.started.load(Ordering::Relaxed)
    }

    /// Starts the next grace period and returns its number. Caller: the single grace-period
    /// leader, which then waits until no reader word `blocks` it and calls `complete`.
    pub fn start(&self) -> u64 {
        // AcqRel: Release pairs with the Acquire snapshot in `ReaderWord::enter`; Acquire
        // completes the synchronization with `cookie`'s RMW (see there).
        let gp = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        // After this, each reader either has its announcement visible to our loads of the
        // reader words, or will see everything ordered before the advance (raw::barrier).
        heavy_barrier();
        gp
    }

    /// Marks grace period `gp` complete. Caller: the leader, after no reader word blocks it.
    pub fn complete(&self, gp: u64) {
        // Release: pairs with the Acquire in `is_completed`; carries the Acquire loads of the
        // reader words (their sections' ends) to whoever polls.
        self.completed.store(gp, Ordering::Release);
    }
}
