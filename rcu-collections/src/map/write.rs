//! Writes: each locks the home bucket of its key (`raw::RawTable::lock_home`) inside a
//! private read section (which keeps the tables it walks through allocated), changes the
//! chain with Release stores, and retires what it unlinked with `kvfree_rcu` under the
//! caller's token once the section has ended.
//!
//! A new entry is appended to its chain (after the tail that the insert's walk for the key
//! reached anyway), so a chain runs from its oldest entry to its newest: workloads that
//! remove entries oldest first (TTL expiry, FIFO eviction, conc-map-bench's removes) find
//! them at the front, one node into the chain. Lookups of entries chosen uniformly are
//! indifferent to the order; lookups of the newest entries walk a little further.

use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::ptr;

use rcu_core::{Context, MayAlloc, Rcu};

use super::computed::Computed;
use super::node::{Node, NodePtr};
use super::RcuHashMap;
use crate::raw::{BucketLock, Linked};

/// A locked chain, with the edits writers make to it.
struct Chain<'a, K, V> {
    lock: BucketLock<'a, Rcu<Node<K, V>>>,
}

impl<K, V> Chain<'_, K, V> {
    /// The node of `key`, its predecessor (null: it is first) and how many nodes precede it
    /// (or the chain's length if absent; null node).
    fn find<Q>(&self, key: &Q) -> (NodePtr<K, V>, NodePtr<K, V>, usize)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (mut pred, mut cur, mut walked) = (ptr::null_mut(), self.lock.first(), 0);
        // SAFETY: nodes of a locked chain are linked, so not retired: they stay allocated
        // while we hold the lock.
        while let Some(node) = unsafe { cur.as_ref() } {
            if node.key().borrow() == key {
                break;
            }
            pred = cur;
            cur = node.link().next_locked();
            walked += 1;
        }
        (pred, cur, walked)
    }

    /// Publishes `new` at the end of the chain, after `tail` (as `find` returned it for an
    /// absent key: the last node, or null if the chain is empty).
    ///
    /// # Safety
    /// 1. `new` came from `Box::into_raw` and is in no chain; it now belongs to the map.
    /// 2. `tail` is the chain's last node (null: the chain is empty).
    unsafe fn push_back(&mut self, tail: NodePtr<K, V>, new: NodePtr<K, V>) {
        // SAFETY: (1): a map node is freed only after a grace period once unlinked; (2).
        unsafe { self.lock.push_back(tail, new) }
    }

    /// Publishes `new` in the place of `old` (whose predecessor is `pred`).
    ///
    /// # Safety
    /// 1. As `push_front` for `new`.
    /// 2. `old` is in this chain, after `pred` (as `find` returned them).
    unsafe fn replace(&mut self, pred: NodePtr<K, V>, old: NodePtr<K, V>, new: NodePtr<K, V>) {
        // SAFETY: (1), (2) passed on.
        unsafe { self.lock.replace(pred, old, new) }
    }

    /// Unlinks `old` (whose predecessor is `pred`); the caller retires it.
    ///
    /// # Safety
    /// 1. `old` is in this chain, after `pred`.
    unsafe fn unlink(&mut self, pred: NodePtr<K, V>, old: NodePtr<K, V>) {
        // SAFETY: (1) passed on.
        unsafe { self.lock.unlink(pred, old) }
    }
}

impl<K, V, S> RcuHashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    /// Runs `f` on the locked home chain of `hash`, inside a private read section of the
    /// map's domain (so `ctx` is borrowed for the call).
    fn with_home<C: Context, R>(
        &self,
        ctx: &mut C,
        hash: u64,
        f: impl FnOnce(&mut Chain<'_, K, V>) -> R,
    ) -> R {
        let guard = self.domain.get().read_lock(ctx);
        let table = self.table_unchecked(&guard);
        // SAFETY: (1) as in `get`: `guard` is a section of the map's domain.
        let (_, lock) = unsafe { table.lock_home(hash) };
        let mut chain = Chain { lock };
        f(&mut chain)
    }

    /// Retires an unlinked node: dropped after a grace period, under `ctx`'s policy.
    ///
    /// # Safety
    /// 1. `node` came from `Box::into_raw`, was unlinked (or never published), and is
    ///    retired once.
    unsafe fn retire<C: Context>(&self, ctx: &C, node: NodePtr<K, V>) {
        // SAFETY: (1).
        let node = unsafe { Box::from_raw(node) };
        self.domain.get().kvfree_rcu(ctx, node);
    }

    /// Inserts `key` -> `value`, or replaces the value of `key` (the old value is dropped
    /// after a grace period). Returns true if the key was absent. Allocates the node, and
    /// runs a due resize: needs a token that may allocate.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// assert!(map.insert(&mut ctx, "k", 1));
    /// assert!(!map.insert(&mut ctx, "k", 2)); // replaced
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.get("k", &guard), Some(&2));
    /// ```
    ///
    /// Under `Atomic` it does not compile; preallocate and use [`insert_node`](Self::insert_node):
    /// ```compile_fail
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// let mut spin = ctx.atomic();
    /// map.insert(&mut spin, 1, 1); // `Atomic<'_>` may not allocate
    /// ```
    #[track_caller]
    pub fn insert<C: MayAlloc>(&self, ctx: &mut C, key: K, value: V) -> bool {
        let inserted = self.insert_node(ctx, Node::boxed(key, value));
        self.maintain_if_due(ctx);
        inserted
    }

    /// Inserts a node allocated beforehand (see [`Node::boxed`]), or replaces the entry of
    /// its key. Returns true if the key was absent. Never allocates and never blocks beyond
    /// a bucket lock's few stores: any token will do, `Atomic` included. If the insert takes
    /// the table past its load factor, the resize is only recorded as due (see
    /// [`maintain`](Self::maintain)).
    ///
    /// # Panics
    /// With an `Atomic` token on a thread that never registered with the map's domain (the
    /// write enters a read section, and registering allocates).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_collections::{Node, RcuHashMap};
    ///
    /// let map = RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// Domain::global().register_current_thread(&ctx); // Atomic writes may not register
    /// let spare = Node::boxed(42u32, "answer"); // allocated where allocation is allowed
    /// {
    ///     let mut spin = ctx.atomic(); // e.g. holding a spinlock
    ///     assert!(map.insert_node(&mut spin, spare));
    /// }
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.get(&42, &guard), Some(&"answer"));
    /// ```
    #[track_caller]
    pub fn insert_node<C: Context>(&self, ctx: &mut C, node: Box<Rcu<Node<K, V>>>) -> bool {
        let hash = self.hash(node.key());
        let new = Box::into_raw(node);
        let (old, walked) = self.with_home(ctx, hash, |chain| {
            // SAFETY: `new` is ours (just unboxed) until published.
            let (pred, cur, walked) = chain.find(unsafe { &*new }.key());
            if cur.is_null() {
                // SAFETY: (1) `new` is from Box::into_raw, in no chain; (2) the key is
                // absent, so `find` walked to the end: `pred` is the last node (or null).
                unsafe { chain.push_back(pred, new) };
            } else {
                // SAFETY: (1) as above; (2) `cur` was found in this chain after `pred`.
                unsafe { chain.replace(pred, cur, new) };
            }
            (cur, walked)
        });
        if old.is_null() {
            self.note_insert(hash, walked);
            true
        } else {
            // SAFETY: (1) unlinked by `replace` above, retired once.
            unsafe { self.retire(ctx, old) };
            false
        }
    }

    /// Removes the entry of `key`; its value is dropped after a grace period. Returns true
    /// if there was one. Never allocates: any token will do. Shrinking the table is only
    /// recorded as due (see [`maintain`](Self::maintain)).
    ///
    /// # Panics
    /// As [`insert_node`](Self::insert_node), with an `Atomic` token on an unregistered thread.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, 1, String::from("one"));
    /// {
    ///     let guard = read_lock(&mut ctx);
    ///     let one = map.get(&1, &guard).unwrap();
    ///     // Removing inside the section (with its Atomic token): `one` stays valid.
    ///     assert!(map.remove(&mut guard.ctx().nested(), &1));
    ///     assert_eq!(one, "one");
    /// }
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.get(&1, &guard), None);
    /// ```
    #[track_caller]
    pub fn remove<C: Context, Q>(&self, ctx: &mut C, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let old = self.with_home(ctx, hash, |chain| {
            let (pred, cur, _) = chain.find(key);
            if !cur.is_null() {
                // SAFETY: (1) found in this chain after `pred`.
                unsafe { chain.unlink(pred, cur) };
            }
            cur
        });
        if old.is_null() {
            return false;
        }
        // SAFETY: (1) unlinked above, retired once.
        unsafe { self.retire(ctx, old) };
        self.note_remove(hash);
        true
    }

    /// Replaces the value of `key` by `f(old value)` (copy-update: readers see the old or
    /// the new value, never a mix), the old one being dropped after a grace period. Returns
    /// false if `key` has no entry. `f` runs inside a read section, without the bucket lock,
    /// and again if another writer changed the entry meanwhile: it must not block.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, "hits", 0u64);
    /// assert!(map.update(&mut ctx, "hits", |n| n + 1));
    /// assert!(!map.update(&mut ctx, "misses", |n| n + 1));
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.get("hits", &guard), Some(&1));
    /// ```
    #[track_caller]
    pub fn update<C: MayAlloc, Q>(&self, ctx: &mut C, key: &Q, mut f: impl FnMut(&V) -> V) -> bool
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            let seen = {
                let guard = self.domain.get().read_lock(ctx);
                let table = self.table_unchecked(&guard);
                // SAFETY: (1) as in `get`.
                unsafe { table.find(hash, |n| n.key().borrow() == key) }.map(|node| {
                    (
                        node as *const Rcu<Node<K, V>> as NodePtr<K, V>,
                        Node::boxed(node.key().clone(), f(node.value())),
                    )
                })
            };
            let Some((seen, new)) = seen else { return false };
            let new = Box::into_raw(new);
            let swapped = self.with_home(ctx, hash, |chain| {
                let (pred, cur, _) = chain.find(key);
                if cur != seen {
                    return false;
                }
                // SAFETY: (1) from Box::into_raw, in no chain; (2) found after `pred`.
                unsafe { chain.replace(pred, cur, new) };
                true
            });
            if swapped {
                // SAFETY: (1) unlinked by `replace`, retired once.
                unsafe { self.retire(ctx, seen) };
                self.maintain_if_due(ctx);
                return true;
            }
            // Another writer got in first: never published, so dropped here (we may free).
            // SAFETY: from Box::into_raw above, never published.
            drop(unsafe { Box::from_raw(new) });
        }
    }

    /// Inserts, replaces or removes the entry of `key` according to `f(current value)`:
    /// `Some(v)` makes `v` the value, `None` removes the entry (or leaves it absent). `f`
    /// runs inside a read section without the bucket lock, and again if another writer
    /// changed the entry meanwhile: it must not block.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_collections::{Computed, RcuHashMap};
    /// let map = RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// let add = |n: Option<&u32>| Some(n.map_or(1, |n| n + 1));
    /// assert_eq!(map.compute(&mut ctx, "k", add), Computed::Inserted);
    /// assert_eq!(map.compute(&mut ctx, "k", add), Computed::Updated);
    /// assert_eq!(map.compute(&mut ctx, "k", |_| None), Computed::Removed);
    /// assert_eq!(map.compute(&mut ctx, "k", |_| None), Computed::Unchanged);
    /// ```
    #[track_caller]
    pub fn compute<C: MayAlloc>(
        &self,
        ctx: &mut C,
        key: K,
        mut f: impl FnMut(Option<&V>) -> Option<V>,
    ) -> Computed {
        let hash = self.hash(&key);
        let mut key = key;
        loop {
            let (seen, value) = {
                let guard = self.domain.get().read_lock(ctx);
                let table = self.table_unchecked(&guard);
                // SAFETY: (1) as in `get`.
                let node = unsafe { table.find(hash, |n| n.key() == &key) };
                let seen = node.map_or(ptr::null_mut(), |n| n as *const _ as NodePtr<K, V>);
                (seen, f(node.map(|n| n.value())))
            };
            let outcome = match value {
                None if seen.is_null() => return Computed::Unchanged,
                None => {
                    let removed = self.with_home(ctx, hash, |chain| {
                        let (pred, cur, _) = chain.find(&key);
                        if cur != seen {
                            return false;
                        }
                        // SAFETY: (1) found after `pred`.
                        unsafe { chain.unlink(pred, cur) };
                        true
                    });
                    if removed {
                        // SAFETY: (1) unlinked above, retired once.
                        unsafe { self.retire(ctx, seen) };
                        self.note_remove(hash);
                        Computed::Removed
                    } else {
                        continue;
                    }
                }
                Some(value) => {
                    let new = Box::into_raw(Node::boxed(key, value));
                    let done = self.with_home(ctx, hash, |chain| {
                        // SAFETY: `new` is ours until published.
                        let (pred, cur, walked) = chain.find(unsafe { &*new }.key());
                        if cur != seen {
                            return None;
                        }
                        if cur.is_null() {
                            // SAFETY: (1) from Box::into_raw, in no chain; (2) absent key:
                            // `pred` is the last node (or null).
                            unsafe { chain.push_back(pred, new) };
                        } else {
                            // SAFETY: (1) as above; (2) found after `pred`.
                            unsafe { chain.replace(pred, cur, new) };
                        }
                        Some(walked)
                    });
                    match done {
                        Some(walked) if seen.is_null() => {
                            self.note_insert(hash, walked);
                            Computed::Inserted
                        }
                        Some(_) => {
                            // SAFETY: (1) unlinked by `replace`, retired once.
                            unsafe { self.retire(ctx, seen) };
                            Computed::Updated
                        }
                        None => {
                            // Changed meanwhile: take the key back and try again.
                            // SAFETY: from Box::into_raw above, never published.
                            let node = unsafe { Box::from_raw(new) };
                            key = (*node).into_inner().into_parts().0;
                            continue;
                        }
                    }
                }
            };
            self.maintain_if_due(ctx);
            return outcome;
        }
    }

    /// Removes every entry; values are dropped after a grace period. Never allocates: any
    /// token will do. Entries inserted concurrently may survive; every entry present
    /// throughout the call is removed.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// for i in 0..100 {
    ///     map.insert(&mut ctx, i, i);
    /// }
    /// map.clear(&mut ctx);
    /// assert!(map.is_empty());
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.iter(&guard).count(), 0);
    /// ```
    #[track_caller]
    pub fn clear<C: Context>(&self, ctx: &mut C) {
        loop {
            // Relaxed: compared only; the table itself is read under a guard.
            let start = self.generation.load(std::sync::atomic::Ordering::Relaxed);
            let mut class = 0;
            let finished = loop {
                let detached = {
                    let guard = self.domain.get().read_lock(ctx);
                    let table = self.table_unchecked(&guard);
                    // Relaxed: a resizer bumps it after switching tables; a stale read only
                    // costs another pass (or was this pass's table anyway).
                    if self.generation.load(std::sync::atomic::Ordering::Relaxed) != start {
                        break false; // the table changed: start a new pass
                    }
                    if class >= table.len() {
                        break table.future().is_null();
                    }
                    // SAFETY: (1) as in `get`.
                    unsafe { detach_class(table, class) }
                };
                if detached.is_null() {
                    class += 1;
                    continue;
                }
                let mut p = detached;
                while !p.is_null() {
                    // SAFETY: the detached chain is ours: unreachable from the map (readers
                    // already on it only read), no other writer can reach it.
                    let node = unsafe { &*p };
                    let next = node.link().next_locked();
                    let hash = self.hash(node.key());
                    // SAFETY: (1) unlinked with its chain, retired once.
                    unsafe { self.retire(ctx, p) };
                    self.count.add(hash, -1);
                    p = next;
                }
            };
            if finished {
                self.due_if_sparse();
                return;
            }
        }
    }
}

/// Detaches the first non-empty chain among the buckets that hold nodes of bucket `class`
/// of `table` (in `table`, or in the tables a resize moved them to). Null when all are empty.
///
/// # Safety
/// 1. As `RawTable::find`, for the call.
unsafe fn detach_class<K, V>(
    table: &crate::raw::RawTable<Rcu<Node<K, V>>>,
    class: usize,
) -> NodePtr<K, V> {
    let base = table.len();
    let mut g = table;
    loop {
        let (first, step) = super::iter::class_buckets(base, g.len(), class);
        let mut j = first;
        while j < g.len() {
            if let Some(mut lock) = g.bucket_at(j).lock() {
                let head = lock.first();
                if !head.is_null() {
                    lock.set_head(ptr::null_mut());
                    return head;
                }
            }
            j += step;
        }
        // SAFETY: (1).
        match unsafe { g.future().as_ref() } {
            Some(next) => g = next,
            None => return ptr::null_mut(),
        }
    }
}
