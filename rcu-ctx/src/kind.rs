//! Which of the three contexts a token stands for, as a value. At the bottom of the crate:
//! validation, enforcement and the capability traits all speak of it, and it knows of none
//! of them.

/// Which of the three contexts a token stands for; a compile-time constant of the token type.
///
/// Policies elsewhere (allocation, waiting) are `const` functions of this value, so the
/// decision is made by the compiler, never by inspecting the thread at run time.
///
/// ```
/// use rcu_ctx::{Context, ContextKind, NoReclaim, Sleepable};
///
/// fn kind_of<C: Context>(_: &C) -> ContextKind {
///     C::KIND // a constant: the compiler resolves it per token type
/// }
/// let mut ctx = Sleepable::enter();
/// assert_eq!(kind_of(&ctx), ContextKind::Sleepable);
/// assert_eq!(kind_of(&ctx.atomic()), ContextKind::Atomic);
/// assert_eq!(<NoReclaim<'_> as Context>::KIND, ContextKind::NoReclaim);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextKind {
    /// May block, allocate and reclaim.
    Sleepable,
    /// May block and allocate, must not reclaim.
    NoReclaim,
    /// Must not block, allocate or reclaim.
    Atomic,
}
