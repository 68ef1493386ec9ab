//! What a `compute` did.

/// What [`RcuHashMap::compute`](crate::RcuHashMap::compute) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// The key had no entry; one was inserted.
    Inserted,
    /// The key's entry was replaced by a new one (the old value is dropped after a grace
    /// period).
    Updated,
    /// The key's entry was removed.
    Removed,
    /// Nothing changed (no entry, and the closure returned `None`).
    Unchanged,
}
