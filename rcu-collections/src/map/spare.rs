//! A node between its allocation and its publication: owned by the write's own frame, so
//! that a write unwinding before it publishes the node (a panicking `Eq` under the bucket
//! lock) frees it after the lock is released, and never frees it once it is reachable.

use core::cell::Cell;

use rcu_core::Rcu;

use super::node::{Node, NodePtr};

/// A node no reader or writer can reach yet.
pub(super) struct Spare<K, V> {
    /// From `Box::into_raw`.
    node: NodePtr<K, V>,
    /// Set by `publish`: the map owns the node from then on.
    published: Cell<bool>,
}

impl<K, V> Spare<K, V> {
    pub(super) fn new(node: Box<Rcu<Node<K, V>>>) -> Self {
        Spare { node: Box::into_raw(node), published: Cell::new(false) }
    }

    /// The node, to read its key.
    pub(super) fn node(&self) -> &Rcu<Node<K, V>> {
        // SAFETY: from Box::into_raw, freed only by `drop` or `into_box`, which take `self`.
        unsafe { &*self.node }
    }

    /// The pointer to publish, handing the node to the map. Call it just before the store
    /// that publishes it, with nothing that can panic in between.
    pub(super) fn publish(&self) -> NodePtr<K, V> {
        assert!(!self.published.get(), "rcu-collections: a node published twice");
        self.published.set(true);
        self.node
    }

    /// The node back, unpublished.
    pub(super) fn into_box(self) -> Box<Rcu<Node<K, V>>> {
        assert!(!self.published.get(), "rcu-collections: a published node taken back");
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: from Box::into_raw, never published, and `this` will not free it.
        unsafe { Box::from_raw(this.node) }
    }
}

impl<K, V> Drop for Spare<K, V> {
    fn drop(&mut self) {
        if !self.published.get() {
            // SAFETY: from Box::into_raw and never published: no one else can reach it.
            drop(unsafe { Box::from_raw(self.node) });
        }
    }
}
