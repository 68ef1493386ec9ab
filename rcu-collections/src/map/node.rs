//! A map entry: the node of a bucket chain. Immutable once published: an update publishes
//! a new node in its place and retires the old one.

use rcu_core::Rcu;

use crate::raw::{Hashed, Link, Linked};

/// One entry of an [`RcuHashMap`](crate::RcuHashMap): a key, a value and the link to the
/// next node of its bucket chain.
///
/// Nodes travel as `Box<Rcu<Node<K, V>>>`: the embedded RCU head is what lets the map retire
/// a removed node with `kvfree_rcu` under any token without allocating. Allocate nodes
/// ahead of time with [`Node::boxed`] to insert them later under an `Atomic` token with
/// [`RcuHashMap::insert_node`](crate::RcuHashMap::insert_node).
///
/// ```
/// use rcu_collections::Node;
/// let node = Node::boxed("key", 1);
/// assert_eq!((node.key(), node.value()), (&"key", &1));
/// ```
pub struct Node<K, V> {
    link: Link<Rcu<Node<K, V>>>,
    /// The key's hash (its low 32 bits: they pick the bucket in every table the map may
    /// have), set by the map before it publishes the node. Stored so that a resize or a
    /// clear never runs the user's `Hash` (see `raw::Hashed`); in the common layouts it
    /// fills padding (a `u64 -> u32` node is 24 bytes either way).
    hash: u32,
    key: K,
    value: V,
}

impl<K, V> Node<K, V> {
    /// A node, not in any map.
    ///
    /// ```
    /// use rcu_core::Rcu;
    /// use rcu_collections::Node;
    /// let node: Box<Rcu<Node<u32, u32>>> = Box::new(Rcu::new(Node::new(1, 2)));
    /// assert_eq!(*node.value(), 2);
    /// ```
    pub fn new(key: K, value: V) -> Self {
        Node { link: Link::new(), hash: 0, key, value }
    }

    /// A node with its hash already computed (by the map that will publish it).
    pub(crate) fn boxed_hashed(key: K, value: V, hash: u32) -> Box<Rcu<Self>> {
        Rcu::boxed(Node { link: Link::new(), hash, key, value })
    }

    /// The stored hash (see the field).
    #[inline]
    pub(crate) fn hash(&self) -> u32 {
        self.hash
    }

    /// Stores the key's hash, before the node is published (it is the caller's alone).
    pub(crate) fn set_hash(&mut self, hash: u32) {
        self.hash = hash;
    }

    /// A node, boxed with its RCU head: the form [`RcuHashMap::insert_node`](crate::RcuHashMap::insert_node)
    /// takes (boxing allocates: do it where the context allows).
    ///
    /// ```
    /// let node = rcu_collections::Node::boxed(7u64, "seven");
    /// assert_eq!(*node.key(), 7);
    /// ```
    pub fn boxed(key: K, value: V) -> Box<Rcu<Self>> {
        Rcu::boxed(Self::new(key, value))
    }

    /// The key.
    ///
    /// ```
    /// assert_eq!(rcu_collections::Node::new('k', ()).key(), &'k');
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(rcu_collections::Node::new((), 5).value(), &5);
    /// ```
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The value, mutably: a node outside the map is the caller's alone.
    ///
    /// ```
    /// let mut node = rcu_collections::Node::boxed(1, 1);
    /// *node.value_mut() += 1;
    /// assert_eq!(*node.value(), 2);
    /// ```
    pub fn value_mut(&mut self) -> &mut V {
        &mut self.value
    }

    /// The key and the value.
    ///
    /// ```
    /// let node = rcu_collections::Node::boxed("a", 1);
    /// assert_eq!((*node).into_inner().into_parts(), ("a", 1));
    /// ```
    pub fn into_parts(self) -> (K, V) {
        (self.key, self.value)
    }
}

impl<K, V> Linked for Rcu<Node<K, V>> {
    #[inline]
    fn link(&self) -> &Link<Self> {
        &self.link
    }
}

impl<K, V> Hashed for Rcu<Node<K, V>> {
    #[inline]
    fn stored_hash(&self) -> u64 {
        u64::from(self.hash)
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for Node<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node").field("key", &self.key).field("value", &self.value).finish()
    }
}

/// A node as it sits in a chain.
pub(crate) type NodePtr<K, V> = *mut Rcu<Node<K, V>>;

#[cfg(test)]
mod tests {
    use rcu_core::Rcu;

    use super::Node;

    /// The stored hash costs nothing in the benchmarked layout (`u64` keys, `u32` values):
    /// it sits where the value's padding was.
    #[test]
    fn the_hash_fills_padding() {
        assert_eq!(core::mem::size_of::<Node<u64, u32>>(), 24);
        assert_eq!(core::mem::size_of::<Rcu<Node<u64, u32>>>(), 40);
    }
}
