//! `RcuList<T>`: a singly linked list read under RCU, written by one writer at a time (the
//! kernel's `hlist_add_head_rcu`/`hlist_del_rcu`/`list_replace_rcu` discipline).
//!
//! The list is split in two handles. [`RcuList`] is the writer: its changes take `&mut self`,
//! so the caller serialises writers with whatever lock it already has (a `Mutex<RcuList<T>>`,
//! or ownership by one thread), as the kernel leaves writer exclusion to the caller.
//! [`ListReader`] handles (cloneable, `Send`) read concurrently under a [`ReadGuard`].
//! Removed elements are retired with `kvfree_rcu` under the writer's token.
//!
//! A removal checks its token against the thread's real context before it unlinks anything
//! (`crate::enforce`). The user's predicate runs before each unlink; after an unlink the
//! list's bookkeeping (length, tail) is brought up to date before the retire call, the one
//! call that can still panic (refused: the element is leaked, never dropped).

mod iter;
mod node;

use core::marker::PhantomData;
use core::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use rcu_core::{Context, Rcu, RcuDomain, RcuGuard};

use crate::domain::DomainHandle;
use crate::raw::Linked;
pub use iter::ListIter;
use node::ElemPtr;
pub use node::ListNode;

/// What the writer and the readers share.
struct Shared<T> {
    head: AtomicPtr<Rcu<ListNode<T>>>,
    domain: DomainHandle,
    _owns: PhantomData<Box<Rcu<ListNode<T>>>>,
}

impl<T> Shared<T> {
    fn iter<'g>(&'g self, guard: &'g impl RcuGuard) -> ListIter<'g, T> {
        self.domain.check(guard, "an RcuList was");
        // Acquire: pairs with the writer's Release store of the head: the first element's
        // fields are visible.
        let first = self.head.load(Ordering::Acquire);
        // SAFETY: (1) elements are retired only after being unlinked, and freed after a
        // grace period of the list's domain, which `guard` (checked to be of that domain)
        // holds off for 'g.
        unsafe { ListIter::new(first) }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // The last handle: no reader or writer is left.
        let mut p = *self.head.get_mut();
        while !p.is_null() {
            // SAFETY: every linked element came from Box::into_raw and is owned by the list.
            let node = unsafe { Box::from_raw(p) };
            p = node.link().next();
        }
    }
}

/// A linked list read under RCU: the writer's handle.
///
/// ```
/// use std::sync::Mutex;
/// use rcu_core::prelude::*;
/// use rcu_collections::{ListNode, RcuList};
///
/// let list = Mutex::new(RcuList::new()); // the caller's lock serialises writers
/// let reader = list.lock().unwrap().reader();
/// let mut ctx = Sleepable::enter();
///
/// list.lock().unwrap().push_front(ListNode::boxed("b"));
/// list.lock().unwrap().push_front(ListNode::boxed("a"));
/// std::thread::spawn(move || {
///     let mut ctx = Sleepable::enter();
///     let guard = read_lock(&mut ctx);
///     let seen: Vec<_> = reader.iter(&guard).collect(); // no lock taken
///     assert!(seen.len() <= 2);
/// })
/// .join()
/// .unwrap();
///
/// list.lock().unwrap().retain(&ctx, |v| *v != "a"); // "a" is dropped after a grace period
/// let list = list.into_inner().unwrap();
/// let guard = read_lock(&mut ctx);
/// assert_eq!(list.iter(&guard).copied().collect::<Vec<_>>(), ["b"]);
/// ```
pub struct RcuList<T> {
    shared: Arc<Shared<T>>,
    /// The last element (null: empty). Writer-side only.
    tail: ElemPtr<T>,
    len: usize,
}

// SAFETY: the writer handle owns elements shared with readers on other threads (`&T`
// there: `Sync`) and retires them to be dropped on the RCU worker (`Send`); `tail` points
// into that shared list.
unsafe impl<T: Send + Sync> Send for RcuList<T> {}
// SAFETY: `&RcuList` only reads (`iter`, `values`): `&T` on several threads needs `Sync`.
unsafe impl<T: Send + Sync> Sync for RcuList<T> {}

/// A reader's handle of an [`RcuList`]: iterate under a read guard.
///
/// ```
/// use rcu_core::prelude::*;
/// use rcu_collections::{ListNode, RcuList};
///
/// let mut list = RcuList::new();
/// list.push_back(ListNode::boxed(1));
/// let reader = list.reader();
/// let mut ctx = Sleepable::enter();
/// let guard = read_lock(&mut ctx);
/// assert_eq!(reader.iter(&guard).sum::<i32>(), 1);
/// ```
pub struct ListReader<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for ListReader<T> {
    fn clone(&self) -> Self {
        ListReader { shared: Arc::clone(&self.shared) }
    }
}

impl<T> ListReader<T> {
    /// The values, front to back, valid while `guard` lives.
    ///
    /// # Panics
    /// If `guard` is a read section of another domain than the list's.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let list = rcu_collections::RcuList::<u8>::new();
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(list.reader().iter(&guard).count(), 0);
    /// ```
    pub fn iter<'g>(&'g self, guard: &'g impl RcuGuard) -> ListIter<'g, T> {
        self.shared.iter(guard)
    }
}

impl<T> Default for RcuList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RcuList<T> {
    /// An empty list of the global domain.
    ///
    /// ```
    /// let list = rcu_collections::RcuList::<String>::new();
    /// assert!(list.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::build(DomainHandle::Global)
    }

    /// An empty list of `domain`: read it under that domain's guards.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// use rcu_collections::{ListNode, RcuList};
    ///
    /// let domain = Arc::new(Domain::new(DomainConfig::new()));
    /// let mut list = RcuList::new_in(Arc::clone(&domain));
    /// list.push_front(ListNode::boxed(1));
    /// let mut ctx = Sleepable::enter();
    /// let guard = domain.read_lock(&mut ctx);
    /// assert_eq!(list.iter(&guard).next(), Some(&1));
    /// ```
    pub fn new_in<D: RcuDomain + Send + Sync + 'static>(domain: Arc<D>) -> Self {
        Self::build(DomainHandle::Shared(domain))
    }

    fn build(domain: DomainHandle) -> Self {
        RcuList {
            shared: Arc::new(Shared {
                head: AtomicPtr::new(ptr::null_mut()),
                domain,
                _owns: PhantomData,
            }),
            tail: ptr::null_mut(),
            len: 0,
        }
    }

    /// A reader's handle (cloneable, sendable to other threads).
    ///
    /// ```
    /// let list = rcu_collections::RcuList::<u8>::new();
    /// let reader = list.reader();
    /// std::thread::spawn(move || drop(reader)).join().unwrap();
    /// ```
    pub fn reader(&self) -> ListReader<T> {
        ListReader { shared: Arc::clone(&self.shared) }
    }

    /// The values, front to back, under `guard` (as [`ListReader::iter`]).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_back(rcu_collections::ListNode::boxed('z'));
    /// let mut ctx = Sleepable::enter();
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(list.iter(&guard).collect::<String>(), "z");
    /// ```
    pub fn iter<'g>(&'g self, guard: &'g impl RcuGuard) -> ListIter<'g, T> {
        self.shared.iter(guard)
    }

    /// The values, for the writer: no guard needed, since only the writer (borrowed here)
    /// can unlink elements.
    ///
    /// ```
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_back(rcu_collections::ListNode::boxed(1));
    /// list.push_back(rcu_collections::ListNode::boxed(2));
    /// assert_eq!(list.values().copied().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn values(&self) -> ListIter<'_, T> {
        // SAFETY: (1) elements are unlinked and retired only through `&mut self`, which our
        // borrow excludes, so every reachable element stays allocated while it lives.
        unsafe { ListIter::new(self.first()) }
    }

    /// Number of elements.
    ///
    /// ```
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_front(rcu_collections::ListNode::boxed(()));
    /// assert_eq!(list.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the list is empty.
    ///
    /// ```
    /// assert!(rcu_collections::RcuList::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn first(&self) -> ElemPtr<T> {
        // Relaxed: only the writer stores the head, and that is us.
        self.shared.head.load(Ordering::Relaxed)
    }

    /// Points `pred`'s link (the head if `pred` is null) at `to`.
    fn set_link(&mut self, pred: ElemPtr<T>, to: ElemPtr<T>) {
        // SAFETY: `pred` is null or a linked element (allocated while linked).
        match unsafe { pred.as_ref() } {
            // Release: publishes `to`'s fields to readers (Acquire in `iter`).
            None => self.shared.head.store(to, Ordering::Release),
            Some(pred) => pred.link().set(to),
        }
    }

    /// Adds an element at the front (`hlist_add_head_rcu`). Never allocates or blocks: no
    /// token needed.
    ///
    /// ```
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_front(rcu_collections::ListNode::boxed(2));
    /// list.push_front(rcu_collections::ListNode::boxed(1));
    /// assert_eq!(list.values().copied().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn push_front(&mut self, node: Box<Rcu<ListNode<T>>>) {
        let first = self.first();
        node.link().set(first);
        let node = Box::into_raw(node);
        if first.is_null() {
            self.tail = node;
        }
        self.set_link(ptr::null_mut(), node);
        self.len += 1;
    }

    /// Adds an element at the back. Never allocates or blocks.
    ///
    /// ```
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_back(rcu_collections::ListNode::boxed(1));
    /// list.push_back(rcu_collections::ListNode::boxed(2));
    /// assert_eq!(list.values().copied().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn push_back(&mut self, node: Box<Rcu<ListNode<T>>>) {
        node.link().set(ptr::null_mut());
        let node = Box::into_raw(node);
        let tail = self.tail;
        self.set_link(tail, node);
        self.tail = node;
        self.len += 1;
    }

    /// Unlinks the first element for which `matches` holds and retires it (`list_del_rcu`
    /// then `kvfree_rcu` with `ctx`): readers already on it finish with it, then it is
    /// dropped after a grace period. Any token will do. Returns true if one was found.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_back(rcu_collections::ListNode::boxed(1));
    /// list.push_back(rcu_collections::ListNode::boxed(2));
    /// let mut ctx = Sleepable::enter();
    /// assert!(list.remove_first(&ctx.atomic(), |v| *v == 2));
    /// assert_eq!(list.values().copied().collect::<Vec<_>>(), [1]);
    /// ```
    #[track_caller]
    pub fn remove_first<C: Context>(&mut self, ctx: &C, matches: impl FnMut(&T) -> bool) -> bool
    where
        T: Send + 'static,
    {
        crate::enforce::token_fits::<C>("RcuList::remove_first");
        self.remove_first_checked(ctx, matches)
    }

    /// `remove_first`, after the caller's token check.
    #[track_caller]
    fn remove_first_checked<C: Context>(
        &mut self,
        ctx: &C,
        mut matches: impl FnMut(&T) -> bool,
    ) -> bool
    where
        T: Send + 'static,
    {
        let mut found = false;
        self.retain_checked(ctx, |v| {
            if !found && matches(v) {
                found = true;
                false
            } else {
                true
            }
        });
        found
    }

    /// Removes the front element, retiring it under `ctx`. Returns true if there was one.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut list = rcu_collections::RcuList::new();
    /// list.push_back(rcu_collections::ListNode::boxed("x"));
    /// let ctx = Sleepable::enter();
    /// assert!(list.pop_front(&ctx));
    /// assert!(!list.pop_front(&ctx));
    /// ```
    #[track_caller]
    pub fn pop_front<C: Context>(&mut self, ctx: &C) -> bool
    where
        T: Send + 'static,
    {
        crate::enforce::token_fits::<C>("RcuList::pop_front");
        self.remove_first_checked(ctx, |_| true)
    }

    /// Keeps only the elements for which `keep` holds; the others are unlinked and retired
    /// under `ctx` (any token). Returns how many were removed.
    ///
    /// # Panics
    /// With a `Sleepable` or `NoReclaim` token that claims more than the thread may do (a
    /// second root used inside an atomic or no-reclaim scope, or inside a read section),
    /// before it unlinks anything: checked in every build, as by `remove_first`,
    /// `pop_front` and `replace_first`. If `keep` panics, the elements unlinked before are
    /// retired and the rest are kept.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let mut list = rcu_collections::RcuList::new();
    /// for i in 0..10 {
    ///     list.push_back(rcu_collections::ListNode::boxed(i));
    /// }
    /// let ctx = Sleepable::enter();
    /// assert_eq!(list.retain(&ctx, |v| v % 2 == 0), 5);
    /// assert_eq!(list.values().copied().collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
    /// ```
    #[track_caller]
    pub fn retain<C: Context>(&mut self, ctx: &C, keep: impl FnMut(&T) -> bool) -> usize
    where
        T: Send + 'static,
    {
        crate::enforce::token_fits::<C>("RcuList::retain");
        self.retain_checked(ctx, keep)
    }

    /// `retain`, after the caller's token check.
    #[track_caller]
    fn retain_checked<C: Context>(&mut self, ctx: &C, mut keep: impl FnMut(&T) -> bool) -> usize
    where
        T: Send + 'static,
    {
        let mut removed = 0;
        let mut pred: ElemPtr<T> = ptr::null_mut();
        let mut cur = self.first();
        // SAFETY: linked elements are allocated (only this writer unlinks and retires).
        while let Some(node) = unsafe { cur.as_ref() } {
            let next = node.link().next_locked();
            if keep(node.value()) {
                pred = cur;
            } else {
                // Unlink: readers on `node` continue through its unchanged link.
                self.set_link(pred, next);
                if self.tail == cur {
                    self.tail = pred;
                }
                // Counted before the retire, which a token that no longer fits (the
                // predicate may have opened a scope) refuses, leaking the element.
                self.len -= 1;
                removed += 1;
                // SAFETY: from Box::into_raw when pushed, unlinked just now, retired once.
                let node = unsafe { Box::from_raw(cur) };
                self.shared.domain.get().kvfree_rcu(ctx, node);
            }
            cur = next;
        }
        removed
    }

    /// Replaces the first element for which `matches` holds by `new` (`list_replace_rcu`):
    /// readers see the old or the new element, never neither. The old one is retired under
    /// `ctx`. Gives `new` back if nothing matched.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_collections::{ListNode, RcuList};
    /// let mut list = RcuList::new();
    /// list.push_back(ListNode::boxed(("a", 1)));
    /// let ctx = Sleepable::enter();
    /// assert!(list.replace_first(&ctx, |v| v.0 == "a", ListNode::boxed(("a", 2))).is_ok());
    /// assert_eq!(list.values().next(), Some(&("a", 2)));
    /// ```
    #[track_caller]
    pub fn replace_first<C: Context>(
        &mut self,
        ctx: &C,
        mut matches: impl FnMut(&T) -> bool,
        new: Box<Rcu<ListNode<T>>>,
    ) -> Result<(), Box<Rcu<ListNode<T>>>>
    where
        T: Send + 'static,
    {
        crate::enforce::token_fits::<C>("RcuList::replace_first");
        let mut pred: ElemPtr<T> = ptr::null_mut();
        let mut cur = self.first();
        // SAFETY: as in `retain`.
        while let Some(node) = unsafe { cur.as_ref() } {
            if matches(node.value()) {
                new.link().set(node.link().next_locked());
                let new = Box::into_raw(new);
                self.set_link(pred, new);
                if self.tail == cur {
                    self.tail = new;
                }
                // The list is complete again before the retire, which may be refused (it
                // panics and leaks `old`): the length is unchanged by a replacement.
                // SAFETY: from Box::into_raw when pushed, unlinked just now, retired once.
                let old = unsafe { Box::from_raw(cur) };
                self.shared.domain.get().kvfree_rcu(ctx, old);
                return Ok(());
            }
            pred = cur;
            cur = node.link().next_locked();
        }
        Err(new)
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for RcuList<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.values()).finish()
    }
}

impl<T> core::fmt::Debug for ListReader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ListReader").finish_non_exhaustive()
    }
}
