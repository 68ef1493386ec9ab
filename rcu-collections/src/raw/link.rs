//! The link every chained node carries, and the traits through which the raw layer finds it
//! and the node's hash.

use core::ptr;

use crate::sync::{AtomicPtr, Ordering};

/// A node's pointer to the next node of its chain (null at the end).
///
/// Written only by the holder of the lock of the bucket whose chain holds the node (or by
/// the owner of a node not yet published); read by anyone.
#[derive(Debug)]
pub struct Link<N> {
    next: AtomicPtr<N>,
}

impl<N> Link<N> {
    /// A link to nothing, for a node not yet in a chain.
    pub fn new() -> Self {
        Link { next: AtomicPtr::new(ptr::null_mut()) }
    }

    /// The next node, for a reader.
    #[inline]
    pub fn next(&self) -> *mut N {
        // Acquire: pairs with the Release store that linked the next node (`set`, or the
        // bucket's `set_head`), so its fields are initialised before we read them.
        self.next.load(Ordering::Acquire)
    }

    /// The next node, for the bucket's lock holder (or the node's only owner).
    #[inline]
    pub(crate) fn next_locked(&self) -> *mut N {
        // Relaxed: only the lock holder writes this link, and its lock acquisition (Acquire)
        // ordered it after the previous holder's writes.
        self.next.load(Ordering::Relaxed)
    }

    /// Points the link at `next` (lock holder or only owner).
    #[inline]
    pub(crate) fn set(&self, next: *mut N) {
        // Release: publishes `next`'s fields (and everything the writer did before) to a
        // reader whose Acquire load in `next()` reads this value.
        self.next.store(next, Ordering::Release);
    }
}

impl<N> Default for Link<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A node that can sit in a bucket chain.
pub trait Linked: Sized {
    /// The node's link to the next node of its chain.
    fn link(&self) -> &Link<Self>;
}

/// A chained node that carries its hash, computed once when it was inserted.
///
/// A resize moves nodes by this hash: it runs no user code, so nothing can stop it in the
/// middle of a bucket. (A `Hash` that panicked there would leave the bucket half moved:
/// some of its keys in the next table while writers still lock this bucket as their
/// home.)
pub trait Hashed: Linked {
    /// The node's hash: its bits pick the node's bucket in every table.
    fn stored_hash(&self) -> u64;
}
