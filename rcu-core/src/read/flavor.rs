//! Which reader protocol a domain's slots follow: fixed when the domain is made, never
//! switched (issue 25: flavours are types; this is what the engine keeps of the type).

/// A domain's reader flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReaderFlavor {
    /// Classic sections (`raw::protocol`): may not block; a grace period waits for the
    /// sections that began before it.
    Classic,
    /// Classic words held for a thread's whole online period (QSBR, `api::qsbr`): a grace
    /// period waits for the thread's next quiescent state (`ReaderWord::refresh`). Every
    /// outermost entry fences (going online, and the classic sections cells and collections
    /// take inside their calls), quiescent states need no barrier, so grace periods pair
    /// with a SeqCst fence and never issue membarrier (design.md §12).
    Qsbr,
    /// Sleepable sections (`raw::srcu`) whose lock uses a compiler barrier only, the grace
    /// period paying with the heavy barrier (a fence too where membarrier is missing).
    SrcuFast,
    /// Sleepable sections whose lock is followed by a SeqCst fence: grace periods pair with
    /// it by a fence and never interrupt other CPUs.
    SrcuPlain,
}

impl ReaderFlavor {
    /// True for the sleepable flavours.
    pub(crate) const fn is_srcu(self) -> bool {
        matches!(self, ReaderFlavor::SrcuFast | ReaderFlavor::SrcuPlain)
    }

    /// True where every outermost section entry of the domain's slots is followed by a SeqCst
    /// fence, so grace periods pair with a fence of their own instead of the heavy barrier
    /// (no membarrier: no other CPU is interrupted).
    pub(crate) const fn grace_periods_fence(self) -> bool {
        matches!(self, ReaderFlavor::Qsbr | ReaderFlavor::SrcuPlain)
    }

    /// The SRCU lock path's barrier for a slot set up now: a fence for the plain flavour and
    /// wherever the heavy barrier is a fence (no membarrier), else a compiler barrier.
    /// Caller: after `raw::barrier::init`.
    pub(crate) fn srcu_fence_mode(self) -> bool {
        self == ReaderFlavor::SrcuPlain || !crate::raw::barrier::uses_membarrier()
    }
}
