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
//!
//! What can panic, and where. A write first checks its token against the thread's real
//! context and that it is not called from a key's `Eq` under a lock of this map
//! (`RcuHashMap::check_write`); then it hashes the caller's key (user code, before any
//! lock), runs its closure (before any lock), and compares keys under the lock (user code,
//! before its first store). A node it allocated stays a `Spare` until the store that
//! publishes it. After the first store the only call that can panic is the retire: rcu-core
//! refuses a token that no longer fits the thread (user code may have opened a scope that
//! outlives it) and then leaks the node, never drops it; the write has counted the change
//! before that call, so the map's length matches its chains either way.

use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::ptr;

use rcu_core::{Context, MayAlloc, Rcu, RcuGuard};

use super::computed::Computed;
use super::node::{Node, NodePtr};
use super::reentry;
use super::spare::Spare;
use super::RcuHashMap;
use crate::raw::{BucketLock, Linked};

/// A locked chain, with the edits writers make to it.
struct Chain<'a, K, V> {
    lock: BucketLock<'a, Rcu<Node<K, V>>>,
}

impl<K, V> Chain<'_, K, V> {
    /// The node of `key` (whose hash is `hash`), its predecessor (null: it is first) and how
    /// many nodes precede it (or the chain's length if absent; null node). Runs the keys'
    /// `Eq` (on nodes of the same hash only) and changes nothing: if it panics, the chain
    /// is as it was.
    fn find<Q>(&self, hash: u32, key: &Q) -> (NodePtr<K, V>, NodePtr<K, V>, usize)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let (mut pred, mut cur, mut walked) = (ptr::null_mut(), self.lock.first(), 0);
        // SAFETY: nodes of a locked chain are linked, so not retired: they stay allocated
        // while we hold the lock.
        while let Some(node) = unsafe { cur.as_ref() } {
            if node.hash() == hash && node.key().borrow() == key {
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
    /// map's domain (so `ctx` is borrowed for the call), with the map recorded as locked by
    /// this thread while the keys' `Eq` may run (`reentry.rs`).
    fn with_home<C: Context, R>(
        &self,
        ctx: &mut C,
        hash: u32,
        f: impl FnOnce(&mut Chain<'_, K, V>) -> R,
    ) -> R {
        let guard = self.domain.get().read_lock(ctx);
        self.with_home_in(&guard, hash, f)
    }

    /// As `with_home`, inside the caller's read section `guard` (of the map's domain): a
    /// node the caller found earlier in that section cannot have been freed, and its address
    /// reused by another node, before `f` compares it with what the chain holds.
    fn with_home_in<R>(
        &self,
        guard: &impl RcuGuard,
        hash: u32,
        f: impl FnOnce(&mut Chain<'_, K, V>) -> R,
    ) -> R {
        let table = self.table_unchecked(guard);
        reentry::while_locked(self.id(), || {
            // SAFETY: (1) as in `get`: `guard` is a section of the map's domain.
            let (_, lock) = unsafe { table.lock_home(hash.into()) };
            let mut chain = Chain { lock };
            f(&mut chain)
        })
    }

    /// Retires an unlinked node: dropped after a grace period, under `ctx`'s policy. If the
    /// call is refused (a token that claims more than the thread may do: it panics), the
    /// node is leaked, never dropped: a reader may still hold it.
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
        self.check_write::<C>("RcuHashMap::insert");
        let hash = self.hash(&key);
        let inserted = self.publish(ctx, Node::boxed_hashed(key, value, hash));
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
    /// write enters a read section, and registering allocates); with a token that claims
    /// more than the thread's context allows (see [`remove`](Self::remove)). The node is
    /// then dropped: it was never published.
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
    pub fn insert_node<C: Context>(&self, ctx: &mut C, mut node: Box<Rcu<Node<K, V>>>) -> bool {
        self.check_write::<C>("RcuHashMap::insert_node");
        let hash = self.hash(node.key());
        node.set_hash(hash);
        self.publish(ctx, node)
    }

    /// Publishes `node` (its hash stored) in its home chain, in the place of the entry of
    /// its key if there is one (retired under `ctx`). Returns true if the key was absent.
    #[track_caller]
    fn publish<C: Context>(&self, ctx: &mut C, node: Box<Rcu<Node<K, V>>>) -> bool {
        let hash = node.hash();
        let spare = Spare::new(node);
        let (old, walked) = self.with_home(ctx, hash, |chain| {
            let (pred, cur, walked) = chain.find(hash, spare.node().key());
            let new = spare.publish();
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
    /// With a `Sleepable` or `NoReclaim` token that claims more than the thread may do (a
    /// second root used inside an atomic or no-reclaim scope, or inside a read section),
    /// before it changes anything: checked in every build, by every write. From a key's
    /// `Eq` running inside a write to this map (it would wait for its own bucket lock).
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
        self.check_write::<C>("RcuHashMap::remove");
        let hash = self.hash(key);
        let old = self.with_home(ctx, hash, |chain| {
            let (pred, cur, _) = chain.find(hash, key);
            if !cur.is_null() {
                // SAFETY: (1) found in this chain after `pred`.
                unsafe { chain.unlink(pred, cur) };
            }
            cur
        });
        if old.is_null() {
            return false;
        }
        // Counted before the retire, which a token that no longer fits refuses (leaking
        // the node): the length matches the chains either way.
        self.note_remove(hash);
        // SAFETY: (1) unlinked above, retired once.
        unsafe { self.retire(ctx, old) };
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
        self.check_write::<C>("RcuHashMap::update");
        let hash = self.hash(key);
        loop {
            // Declared before the read section, so that a panicking `Eq` under the bucket
            // lock unwinds out of the lock and the section before it drops the unpublished
            // node (its value's drop is user code: red team, round 2).
            let spare;
            // One read section from finding the node to comparing it under the bucket lock:
            // `seen` cannot be freed, and its address reused by a newer node of the key,
            // in between (an ABA that lost updates: red team of issue 22).
            let guard = self.domain.get().read_lock(ctx);
            let table = self.table_unchecked(&guard);
            let is = |n: &Rcu<Node<K, V>>| n.hash() == hash && n.key().borrow() == key;
            // SAFETY: (1) as in `get`.
            let Some(node) = (unsafe { table.find(hash.into(), is) }) else { return false };
            let seen = node as *const Rcu<Node<K, V>> as NodePtr<K, V>;
            spare = Spare::new(Node::boxed_hashed(node.key().clone(), f(node.value()), hash));
            let swapped = self.with_home_in(&guard, hash, |chain| {
                let (pred, cur, _) = chain.find(hash, key);
                if cur != seen {
                    return false;
                }
                let new = spare.publish();
                // SAFETY: (1) from Box::into_raw, in no chain; (2) found after `pred`.
                unsafe { chain.replace(pred, cur, new) };
                true
            });
            drop(guard);
            if swapped {
                // SAFETY: (1) unlinked by `replace`, retired once.
                unsafe { self.retire(ctx, seen) };
                self.maintain_if_due(ctx);
                return true;
            }
            // Another writer got in first: `spare`, never published, is dropped here (we
            // may free), outside the bucket lock and the read section.
            drop(spare);
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
        self.check_write::<C>("RcuHashMap::compute");
        let hash = self.hash(&key);
        let mut key = key;
        loop {
            // Before the section, as in `update`.
            let spare;
            // One read section from finding the node to comparing it under the bucket lock,
            // as in `update`.
            let guard = self.domain.get().read_lock(ctx);
            let table = self.table_unchecked(&guard);
            // SAFETY: (1) as in `get`.
            let node = unsafe { table.find(hash.into(), |n| n.hash() == hash && n.key() == &key) };
            let seen = node.map_or(ptr::null_mut(), |n| n as *const _ as NodePtr<K, V>);
            let value = f(node.map(|n| n.value()));
            let outcome = match value {
                None if seen.is_null() => return Computed::Unchanged,
                None => {
                    let removed = self.with_home_in(&guard, hash, |chain| {
                        let (pred, cur, _) = chain.find(hash, &key);
                        if cur != seen {
                            return false;
                        }
                        // SAFETY: (1) found after `pred`.
                        unsafe { chain.unlink(pred, cur) };
                        true
                    });
                    drop(guard);
                    if !removed {
                        continue;
                    }
                    // Counted before the retire, as in `remove`.
                    self.note_remove(hash);
                    // SAFETY: (1) unlinked above, retired once.
                    unsafe { self.retire(ctx, seen) };
                    Computed::Removed
                }
                Some(value) => {
                    spare = Spare::new(Node::boxed_hashed(key, value, hash));
                    let done = self.with_home_in(&guard, hash, |chain| {
                        let (pred, cur, walked) = chain.find(hash, spare.node().key());
                        if cur != seen {
                            return None;
                        }
                        let new = spare.publish();
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
                    drop(guard);
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
                            // Changed meanwhile: take the key back (outside the lock and the
                            // section) and try again.
                            key = (*spare.into_box()).into_inner().into_parts().0;
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
        self.check_write::<C>("RcuHashMap::clear");
        // A pass empties every class (bucket index) of tables of one size, each class in
        // the table it finds current and the tables a resize is moving it to (a resize
        // moves nodes forward only, and the pass walks forward). If the current table has
        // another size at some step, the classes done so far do not cover the new ones:
        // the pass starts again. A pass needs no resize to finish: one that was
        // interrupted, or is running, leaves nodes only where the walk looks.
        'pass: loop {
            let mut size = None;
            let mut class = 0;
            loop {
                let detached = {
                    let guard = self.domain.get().read_lock(ctx);
                    let table = self.table_unchecked(&guard);
                    if *size.get_or_insert(table.len()) != table.len() {
                        continue 'pass;
                    }
                    if class >= table.len() {
                        break 'pass;
                    }
                    // SAFETY: (1) as in `get`.
                    unsafe { detach_class(table, class) }
                };
                if detached.is_null() {
                    class += 1;
                } else {
                    // SAFETY: (1) detached just now: in no chain.
                    unsafe { self.retire_chain(ctx, detached) };
                }
            }
        }
        self.due_if_sparse();
    }

    /// Retires every node of a detached chain. They are uncounted first, by their stored
    /// hashes (no user code): if a retire is refused (it panics, leaking its node), the
    /// nodes after it are leaked too, never dropped, and the length matches the chains.
    ///
    /// # Safety
    /// 1. `first` heads a chain detached from the map (unreachable for new readers and for
    ///    writers), whose nodes came from `Box::into_raw` and are retired only here.
    unsafe fn retire_chain<C: Context>(&self, ctx: &C, first: NodePtr<K, V>) {
        let mut p = first;
        // SAFETY: (1): the detached nodes are ours; readers already on them only read.
        while let Some(node) = unsafe { p.as_ref() } {
            self.count.add(node.hash(), -1);
            p = node.link().next_locked();
        }
        let mut p = first;
        // SAFETY: (1), and each node's link is read before the node is retired.
        while let Some(node) = unsafe { p.as_ref() } {
            let next = node.link().next_locked();
            // SAFETY: (1) retired once.
            unsafe { self.retire(ctx, p) };
            p = next;
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
