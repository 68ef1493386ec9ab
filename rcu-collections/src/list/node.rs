//! A list element: the value and the link to the next element.

use rcu_core::Rcu;

use crate::raw::{Link, Linked};

/// One element of an [`RcuList`](crate::RcuList). Travels as `Box<Rcu<ListNode<T>>>`: the
/// embedded RCU head lets the list retire a removed element with `kvfree_rcu` under any
/// token, without allocating.
///
/// ```
/// let node = rcu_collections::ListNode::boxed(5);
/// assert_eq!(*node.value(), 5);
/// ```
pub struct ListNode<T> {
    link: Link<Rcu<ListNode<T>>>,
    value: T,
}

impl<T> ListNode<T> {
    /// An element not in any list.
    ///
    /// ```
    /// let node = rcu_collections::ListNode::new("x");
    /// assert_eq!(node.into_inner(), "x");
    /// ```
    pub fn new(value: T) -> Self {
        ListNode { link: Link::new(), value }
    }

    /// An element, boxed with its RCU head (boxing allocates: do it where the context
    /// allows).
    ///
    /// ```
    /// let node = rcu_collections::ListNode::boxed(vec![1, 2]);
    /// assert_eq!(node.value().len(), 2);
    /// ```
    pub fn boxed(value: T) -> Box<Rcu<Self>> {
        Rcu::boxed(Self::new(value))
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(rcu_collections::ListNode::new(1).value(), &1);
    /// ```
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, mutably (an element outside a list is the caller's alone).
    ///
    /// ```
    /// let mut node = rcu_collections::ListNode::boxed(1);
    /// *node.value_mut() = 2;
    /// assert_eq!(*node.value(), 2);
    /// ```
    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The value, unwrapped.
    ///
    /// ```
    /// assert_eq!(rcu_collections::ListNode::new(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Linked for Rcu<ListNode<T>> {
    #[inline]
    fn link(&self) -> &Link<Self> {
        &self.link
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for ListNode<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ListNode").field(&self.value).finish()
    }
}

/// An element as it sits in the list.
pub(crate) type ElemPtr<T> = *mut Rcu<ListNode<T>>;
