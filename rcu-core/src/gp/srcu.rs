//! The sleepable (SRCU) grace period: the two scans and the index flip of `raw::srcu`, run
//! by whoever leads the domain's grace periods (`grace_period`), over the domain's slots.
//!
//! Grace period `g`: advance the sequence, then the barrier readers pair with (the heavy
//! barrier for the fast flavour, a SeqCst fence for the plain one); scan 1 waits until the
//! inactive index drains; flip; scan 2 waits until the old index (now the inactive one)
//! drains; complete. A leader that gives up mid-way (`try_advance` never waits) leaves `g`
//! in progress with `flipped` saying which scan it was in; the next leader resumes it after
//! `GracePeriods::start_or_resume`'s fence (the hand-over argument of
//! `GpSequence::start_or_resume`).
//! docs/design.md §11 argues it.
//!
//! A grace period may run its scans more than once (a leader that gave up after them, a
//! fork child whose parent's leader stopped between the flip and recording it): more waiting,
//! never less. Safety needs only that each index is drained after the barrier; the flip
//! between the scans is for progress (design.md §11).
//!
//! Slots are checked one at a time (`drained` over one slot): a section is counted on the
//! slot it began on, also when an owned guard ends elsewhere, so a slot whose own sums are
//! equal has no open section that the scan must wait for, and a later section on it began
//! after the grace period's barrier (design.md §11, "one slot at a time").

use std::sync::atomic::{AtomicBool, Ordering};

use crate::raw::srcu::{drained, SrcuIndex};
use crate::read::registry::{Registry, Slot};

/// A sleepable domain's index and where its grace period in progress stands.
#[derive(Debug)]
pub(crate) struct SrcuMachine {
    /// The index new sections count on.
    pub(crate) index: SrcuIndex,
    /// True once the grace period in progress has done scan 1 and flipped: a leader that
    /// resumes it goes on with scan 2. Leaders only.
    flipped: AtomicBool,
}

impl SrcuMachine {
    pub(crate) const fn new() -> Self {
        SrcuMachine { index: SrcuIndex::new(), flipped: AtomicBool::new(false) }
    }

    /// Drives the grace period in progress through its scans and flip. For a slot whose
    /// sections on the index being drained are not all over, `wait(slot, index)` either
    /// waits until they are and returns true, or returns false: the grace period is then
    /// left where it stands, for the next leader. Returns true once both scans are done:
    /// the caller completes the grace period. Caller: the leader.
    pub(crate) fn drive(
        &self,
        readers: &Registry,
        mut wait: impl FnMut(&Slot, usize) -> bool,
    ) -> bool {
        loop {
            let inactive = 1 - self.index.current();
            for slot in readers.iter() {
                if !drained([&slot.srcu], inactive) && !wait(slot, inactive) {
                    return false;
                }
            }
            // Relaxed (both): leaders only; the role's hand-over orders them.
            if self.flipped.load(Ordering::Relaxed) {
                self.flipped.store(false, Ordering::Relaxed);
                return true;
            }
            let old = self.index.flip();
            debug_assert_eq!(old, inactive ^ 1, "rcu-core internal error: the index moved");
            self.flipped.store(true, Ordering::Relaxed);
        }
    }
}
