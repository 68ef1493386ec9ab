//! Iteration under a read guard.
//!
//! The iterator goes through the buckets of the table that was current when it started, one
//! *class* (bucket index of that table) at a time: the class's chain in that table, then, if
//! a resize has published a future table by the time the chain ends, the buckets of the
//! future table(s) that hold the class's nodes, keeping only nodes of the class. This is the
//! lookup's argument (`raw/table.rs`) applied to a whole class: an entry present throughout
//! is yielded; one the resizer moves while the iterator is on it may be yielded twice.

use core::marker::PhantomData;
use core::ptr;

use rcu_core::Rcu;

use super::node::{Node, NodePtr};
use super::table::Table;
use crate::raw::{Hashed, Head, Linked, RawTable};

/// The buckets of a table of `len` buckets that hold nodes of bucket `class` of a table of
/// `base` buckets (both powers of two): `(first, step)`, the buckets being `first`,
/// `first + step`, ... below `len`.
pub(super) fn class_buckets(base: usize, len: usize, class: usize) -> (usize, usize) {
    let common = base.min(len);
    (class & (common - 1), common)
}

/// An iterator over an [`RcuHashMap`](crate::RcuHashMap)'s entries, valid while the read
/// guard it was made under lives. See [`RcuHashMap::iter`](crate::RcuHashMap::iter).
pub struct Iter<'g, K, V, S> {
    /// The table of the classes.
    base: &'g RawTable<Rcu<Node<K, V>>>,
    /// The class being visited.
    class: usize,
    /// The table being walked for it.
    table: &'g RawTable<Rcu<Node<K, V>>>,
    /// The bucket of `table` being walked, and the step to the class's next one.
    bucket: usize,
    step: usize,
    /// The next node to look at (null: end of this chain).
    node: NodePtr<K, V>,
    /// Keep only nodes of `class` (set once a future table is involved), by their stored
    /// hash: iterating runs no user code.
    filter: bool,
    /// The map's hasher type (kept in the type for compatibility; the hashes are stored).
    _hasher: PhantomData<&'g S>,
}

impl<'g, K, V, S> Iter<'g, K, V, S> {
    pub(super) fn new(table: &'g Table<K, V>) -> Self {
        let base = &table.raw;
        let mut iter = Iter {
            base,
            class: 0,
            table: base,
            bucket: 0,
            step: base.len(),
            node: ptr::null_mut(),
            filter: false,
            _hasher: PhantomData,
        };
        iter.start_class();
        iter
    }

    /// Starts walking the current class in the base table.
    fn start_class(&mut self) {
        self.table = self.base;
        self.bucket = self.class;
        self.step = self.base.len();
        // A resize published before we start: nodes of other classes may be met.
        self.filter = !self.base.future().is_null();
        self.node = chain(self.base, self.class);
    }
}

/// The chain of bucket `index` (null if empty or migrated: then its nodes are in `future`).
fn chain<N: Linked>(table: &RawTable<N>, index: usize) -> *mut N {
    match table.bucket_at(index).head() {
        Head::Chain(p) => p,
        Head::Migrated => ptr::null_mut(),
    }
}

impl<'g, K, V, S> Iterator for Iter<'g, K, V, S> {
    type Item = (&'g K, &'g V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.class >= self.base.len() {
            return None; // fused
        }
        loop {
            // SAFETY: nodes and tables reachable from the table the iterator started on
            // stay allocated while the guard it was made under lives ('g): see
            // `RcuHashMap::get`.
            if let Some(node) = unsafe { self.node.as_ref() } {
                self.node = node.link().next();
                let keep = !self.filter || self.base.index(node.stored_hash()) == self.class;
                if keep {
                    return Some((node.key(), node.value()));
                }
                continue;
            }
            // End of a chain: the class's next bucket in this table...
            self.bucket += self.step;
            if self.bucket < self.table.len() {
                self.node = chain(self.table, self.bucket);
                continue;
            }
            // ...then the table a resize moved (or is moving) the class to...
            // SAFETY: as above.
            if let Some(future) = unsafe { self.table.future().as_ref() } {
                let (first, step) = class_buckets(self.base.len(), future.len(), self.class);
                self.table = future;
                self.bucket = first;
                self.step = step;
                self.filter = true;
                self.node = chain(future, first);
                continue;
            }
            // ...then the next class.
            self.class += 1;
            if self.class >= self.base.len() {
                self.node = ptr::null_mut();
                self.class = self.base.len();
                return None;
            }
            self.start_class();
        }
    }
}

impl<K, V, S> core::fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Iter").field("class", &self.class).finish_non_exhaustive()
    }
}
