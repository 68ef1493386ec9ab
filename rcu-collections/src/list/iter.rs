//! Walking the list: readers under a guard, or the writer.

use core::marker::PhantomData;

use rcu_core::Rcu;

use super::node::{ElemPtr, ListNode};
use crate::raw::Linked;

/// An iterator over an [`RcuList`](crate::RcuList)'s values, valid while the read guard
/// (or the writer's borrow) it was made under lives.
pub struct ListIter<'g, T> {
    next: ElemPtr<T>,
    _guard: PhantomData<&'g Rcu<ListNode<T>>>,
}

impl<'g, T> ListIter<'g, T> {
    /// An iterator from the element `first`.
    ///
    /// # Safety
    /// 1. Every element reachable from `first` stays allocated for `'g`.
    pub(super) unsafe fn new(first: ElemPtr<T>) -> Self {
        ListIter { next: first, _guard: PhantomData }
    }
}

impl<'g, T> Iterator for ListIter<'g, T> {
    type Item = &'g T;

    #[inline]
    fn next(&mut self) -> Option<&'g T> {
        // SAFETY: (1) of `new`: reachable elements stay allocated for 'g.
        let node = unsafe { self.next.as_ref() }?;
        self.next = node.link().next();
        Some(node.value())
    }
}

impl<T> core::fmt::Debug for ListIter<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ListIter").finish_non_exhaustive()
    }
}
