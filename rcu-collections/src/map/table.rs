//! The map's table: a raw table of nodes, boxed with an RCU head so that a resize can retire
//! it with `kvfree_rcu` under any token.

use core::ops::Deref;

use rcu_core::Rcu;

use super::node::Node;
use crate::raw::RawTable;

/// A raw table of the map's nodes.
pub(crate) struct Table<K, V> {
    pub(crate) raw: RawTable<Rcu<Node<K, V>>>,
}

// SAFETY: a table holds pointers to nodes it does not own (the map owns them, and moves them
// between tables); sending or sharing the table sends or shares nothing but the buckets'
// atomic words, and dropping it (on the RCU worker, after a resize) frees only the bucket
// array, never a node.
unsafe impl<K, V> Send for Table<K, V> {}
// SAFETY: as above: shared access is to atomic words only.
unsafe impl<K, V> Sync for Table<K, V> {}

impl<K, V> Table<K, V> {
    /// A boxed table of `buckets` buckets (a power of two).
    pub(crate) fn boxed(buckets: usize) -> Box<Rcu<Self>> {
        Rcu::boxed(Table { raw: RawTable::new(buckets) })
    }
}

impl<K, V> Deref for Table<K, V> {
    type Target = RawTable<Rcu<Node<K, V>>>;
    fn deref(&self) -> &Self::Target {
        &self.raw
    }
}
