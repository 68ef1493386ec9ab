//! The policy table of DESIGN §4 as a compile-time function of the token type.

use rcu_ctx::{Context, ContextKind};

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

    /// May this policy call the global allocator?
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::NoReclaim.may_alloc());
    /// assert!(!Policy::NoWait.may_alloc());
    /// ```
    pub const fn may_alloc(self) -> bool {
        !matches!(self, Policy::NoWait)
    }

    /// May this policy block (on locks, the allocator, other threads)?
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::Reclaim.may_block() && Policy::NoReclaim.may_block());
    /// assert!(!Policy::NoWait.may_block());
    /// ```
    pub const fn may_block(self) -> bool {
        !matches!(self, Policy::NoWait)
    }

    /// May this policy reclaim (run shrinkers, wait for a grace period to free memory)?
    ///
    /// ```
    /// use rcu_alloc::Policy;
    /// assert!(Policy::Reclaim.may_reclaim());
    /// assert!(!Policy::NoReclaim.may_reclaim());
    /// ```
    pub const fn may_reclaim(self) -> bool {
        matches!(self, Policy::Reclaim)
    }
}
