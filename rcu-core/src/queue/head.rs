//! The embedded head: what lets a queued object wait for its grace period without any
//! memory of its own being allocated for it.
//!
//! [`Rcu<T>`] wraps a value with an [`RcuHead`] in front of it. Queue a `Box<Rcu<T>>` with
//! `call_rcu` or `kvfree_rcu` under any token: if no block can be had, the head links the
//! object into an intrusive list instead, so these calls never fail and, under `Atomic`,
//! never allocate. The wrapper is the safe form of the kernel's `struct rcu_head` member:
//! the head is always at offset 0 of the allocation, so no `container_of` arithmetic is
//! needed and none can go wrong.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::ptr;

use rcu_ctx::Atomic;

/// What a queued object runs after its grace period: drop it, or call the user's callback.
pub(crate) type RunFn = unsafe fn(*mut (), &Atomic<'_>);

/// The bookkeeping an object carries while it is queued. Opaque; lives inside [`Rcu<T>`].
///
/// Two words, as the kernel's `struct rcu_head`: a link and one function pointer that is
/// both the callback and how to run it (the trampoline of a deferred free, or the user's own
/// `call_rcu` callback, called directly). Bytes are accounted per list, not per head.
///
/// ```
/// use rcu_core::Rcu;
/// // You never build a head yourself: `Rcu<T>` carries one in front of your value.
/// let obj = Rcu::boxed(5u32);
/// assert_eq!(**obj, 5);
/// assert_eq!(std::mem::size_of::<rcu_core::RcuHead>(), 16);
/// ```
pub struct RcuHead {
    /// Intrusive list link (fallback path only).
    pub(crate) next: UnsafeCell<*mut RcuHead>,
    /// What runs the object (fallback path only; blocks carry it in the entry).
    pub(crate) run: UnsafeCell<Option<RunFn>>,
}

impl RcuHead {
    const fn new() -> Self {
        RcuHead { next: UnsafeCell::new(ptr::null_mut()), run: UnsafeCell::new(None) }
    }
}

impl core::fmt::Debug for RcuHead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RcuHead")
    }
}

// SAFETY: the head's cells are written only by whoever owns the enclosing `Box<Rcu<T>>`: the
// caller queueing it, then the worker invoking it; ownership passes between them through
// Release/Acquire operations on the queues, never concurrently.
unsafe impl Send for RcuHead {}
// SAFETY: as above; a shared `&Rcu<T>` never touches the head.
unsafe impl Sync for RcuHead {}

/// A value with an embedded [`RcuHead`]: queueable by `call_rcu`/`kvfree_rcu` with any
/// token, without allocation. Dereferences to the value.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_core::Rcu;
///
/// struct Node { key: u64 }
/// let node: Box<Rcu<Node>> = Rcu::boxed(Node { key: 7 });
/// assert_eq!(node.key, 7);
///
/// let mut ctx = Sleepable::enter();
/// let atomic = ctx.atomic();
/// rcu_core::kvfree_rcu(&atomic, node); // never allocates, never blocks
/// ```
#[repr(C)]
pub struct Rcu<T> {
    pub(crate) head: RcuHead,
    value: T,
}

impl<T> Rcu<T> {
    /// Wraps `value`.
    ///
    /// ```
    /// use rcu_core::Rcu;
    /// const EMPTY: Rcu<Vec<u8>> = Rcu::new(Vec::new());
    /// let boxed = Box::new(EMPTY);
    /// assert!(boxed.is_empty());
    /// ```
    pub const fn new(value: T) -> Self {
        Rcu { head: RcuHead::new(), value }
    }

    /// Wraps and boxes `value`: the form `call_rcu` and `kvfree_rcu` take.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let ctx = Sleepable::enter();
    /// kvfree_rcu(&ctx, Rcu::boxed(String::from("retired")));
    /// ```
    pub fn boxed(value: T) -> Box<Self> {
        Box::new(Self::new(value))
    }

    /// Unwraps the value.
    ///
    /// ```
    /// let obj = rcu_core::Rcu::boxed(vec![1, 2]);
    /// let v: Vec<i32> = (*obj).into_inner();
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Rcu<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Rcu<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Rcu<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Rcu").field(&self.value).finish()
    }
}

impl<T: Default> Default for Rcu<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Rcu<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's `struct rcu_head` size (issue 13): a link and one function pointer, and
    /// the wrapper adds nothing but the head.
    #[test]
    fn head_is_sixteen_bytes() {
        assert_eq!(core::mem::size_of::<RcuHead>(), 16);
        assert_eq!(core::mem::size_of::<Rcu<[u64; 8]>>(), 16 + 64);
        assert_eq!(core::mem::size_of::<Option<RunFn>>(), core::mem::size_of::<usize>());
    }
}
