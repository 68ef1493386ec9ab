//! The policy table of DESIGN §4 as a compile-time function of the token type.

use rcu_ctx::{Context, ContextKind, SectionBrand, SectionState};

/// How a call may obtain memory and how it behaves when memory is short.
///
/// ```
/// use rcu_alloc::Policy;
/// use rcu_ctx::Sleepable;
/// let policy = Policy::of::<Sleepable>();
/// assert!(policy.may_alloc() && policy.may_block() && policy.may_reclaim());
/// assert!(!Policy::NoWait.may_alloc());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `Sleepable`: thread cache, global pool, global allocator, then reclaim (shrinkers,
    /// waiting for a grace period). May block.
    Reclaim,
    /// `NoReclaim`: thread cache, global pool, global allocator; falls back instead of
    /// reclaiming. May block, never on reclaim.
    NoReclaim,
    /// `Atomic`: thread cache and the lock-free global pool only; never blocks, never calls
    /// the global allocator, takes no lock.
    NoWait,
}

impl Policy {
    /// The policy for calls made with a token of type `C`, resolved at compile time.
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// use rcu_ctx::{Atomic, NoReclaim, Sleepable};
    ///
    /// const S: Policy = Policy::of::<Sleepable>();
    /// assert_eq!(S, Policy::Reclaim);
    /// assert_eq!(Policy::of::<NoReclaim<'_>>(), Policy::NoReclaim);
    /// assert_eq!(Policy::of::<Atomic<'_>>(), Policy::NoWait);
    /// ```
    pub const fn of<C: Context>() -> Policy {
        match C::KIND {
            ContextKind::Sleepable => Policy::Reclaim,
            ContextKind::NoReclaim => Policy::NoReclaim,
            ContextKind::Atomic => Policy::NoWait,
        }
    }

    /// The policy for calls made with a token of type `C` on a sleepable (SRCU) domain
    /// branded `B`: as [`Policy::of`], except that inside a read section of that domain
    /// (`C` is, or is nested in, its section's token) `Reclaim` becomes `NoReclaim`.
    /// Reclaiming may wait for a grace period of the domain the call queues on, and that one
    /// would wait for the section the caller is in.
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// use rcu_ctx::{section_brand, Sleepable, SleepableSection, Unbranded};
    /// section_brand!(Routes);
    ///
    /// assert_eq!(Policy::of_within::<Sleepable, Routes>(), Policy::Reclaim);
    /// type InRoutes<'p> = SleepableSection<'p, Routes, Sleepable>;
    /// assert_eq!(Policy::of_within::<InRoutes<'_>, Routes>(), Policy::NoReclaim);
    /// // Another domain's grace periods do not wait for this section.
    /// assert_eq!(Policy::of_within::<InRoutes<'_>, Unbranded>(), Policy::Reclaim);
    /// ```
    pub const fn of_within<C: SectionState<B>, B: SectionBrand>() -> Policy {
        match Policy::of::<C>() {
            Policy::Reclaim if <C as SectionState<B>>::INSIDE => Policy::NoReclaim,
            policy => policy,
        }
    }

    /// This policy's row of [`POLICY_TABLE`].
    ///
    /// ```
    /// use rcu_alloc::{OverBudget, Policy};
    /// assert_eq!(Policy::NoWait.rules().over_budget, OverBudget::FallBack);
    /// ```
    pub const fn rules(self) -> &'static Rules {
        &POLICY_TABLE[self as usize]
    }

    /// May call the global allocator.
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::NoReclaim.may_alloc() && !Policy::NoWait.may_alloc());
    /// ```
    pub const fn may_alloc(self) -> bool {
        self.rules().may_alloc
    }

    /// May block (take a sleeping lock, wait).
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::NoReclaim.may_block() && !Policy::NoWait.may_block());
    /// ```
    pub const fn may_block(self) -> bool {
        self.rules().may_block
    }

    /// May reclaim: run shrinkers, wait for a grace period to free memory (backpressure),
    /// run ready callbacks inline.
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::Reclaim.may_reclaim() && !Policy::NoReclaim.may_reclaim());
    /// ```
    pub const fn may_reclaim(self) -> bool {
        self.rules().may_reclaim
    }
}

/// Where a block may come from, in the order a policy tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSource {
    /// The calling thread's cache of empty blocks.
    ThreadCache,
    /// The domain's lock-free pool, kept stocked by the refill worker.
    Pool,
    /// The global allocator.
    GlobalAllocator,
    /// Reclaim: every registered shrinker, then the global allocator again.
    Shrinkers,
}

/// What a call does over the memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverBudget {
    /// Waits for a grace period (and, bounded, for memory to drain): backpressure.
    Backpressure,
    /// Never waits: takes the fallback path, and asks the worker to hurry.
    FallBack,
}

/// What a call does when no block can be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoBlock {
    /// Headed items take the embedded-head list; a headless item waits for a grace period
    /// and is freed inline (only reachable by tokens that may sleep).
    EmbeddedHeadOrSynchronize,
    /// Headed items take the embedded-head list; the refill worker is woken.
    EmbeddedHeadAndWakeRefill,
}

/// One row of DESIGN §4's policy table: what calls under one policy may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Where blocks come from, in order.
    pub sources: &'static [BlockSource],
    /// May block.
    pub may_block: bool,
    /// May call the global allocator (and so may take its locks).
    pub may_alloc: bool,
    /// May reclaim (see [`Policy::may_reclaim`]).
    pub may_reclaim: bool,
    /// Over the memory budget.
    pub over_budget: OverBudget,
    /// When no block can be had.
    pub no_block: NoBlock,
}

/// DESIGN §4's table, one row per policy, indexed by `Policy as usize`: every path reads
/// what it may do here (through [`Policy::rules`] and the predicates built on it).
///
/// ```
/// use rcu_alloc::{BlockSource, Policy, POLICY_TABLE};
/// assert_eq!(POLICY_TABLE.len(), 3);
/// assert_eq!(Policy::NoWait.rules().sources, &[BlockSource::ThreadCache, BlockSource::Pool]);
/// ```
pub const POLICY_TABLE: [Rules; 3] = [
    // Policy::Reclaim (`Sleepable`)
    Rules {
        sources: &[
            BlockSource::ThreadCache,
            BlockSource::Pool,
            BlockSource::GlobalAllocator,
            BlockSource::Shrinkers,
        ],
        may_block: true,
        may_alloc: true,
        may_reclaim: true,
        over_budget: OverBudget::Backpressure,
        no_block: NoBlock::EmbeddedHeadOrSynchronize,
    },
    // Policy::NoReclaim (`NoReclaim`)
    Rules {
        sources: &[BlockSource::ThreadCache, BlockSource::Pool, BlockSource::GlobalAllocator],
        may_block: true,
        may_alloc: true,
        may_reclaim: false,
        over_budget: OverBudget::FallBack,
        no_block: NoBlock::EmbeddedHeadOrSynchronize,
    },
    // Policy::NoWait (`Atomic`): no allocator call, no lock, no wait.
    Rules {
        sources: &[BlockSource::ThreadCache, BlockSource::Pool],
        may_block: false,
        may_alloc: false,
        may_reclaim: false,
        over_budget: OverBudget::FallBack,
        no_block: NoBlock::EmbeddedHeadAndWakeRefill,
    },
];

// The rows are in `Policy`'s order: the one row that waits over budget is `Reclaim`'s, and
// the one without the global allocator is `NoWait`'s.
const _: () =
    assert!(matches!(POLICY_TABLE[Policy::Reclaim as usize].over_budget, OverBudget::Backpressure));
const _: () = assert!(!POLICY_TABLE[Policy::NoWait as usize].may_alloc);
