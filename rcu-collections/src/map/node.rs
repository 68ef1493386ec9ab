//! A map entry: the node of a bucket chain. Immutable once published: an update publishes
//! a new node in its place and retires the old one.

use rcu_core::Rcu;

use crate::raw::{Link, Linked};

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
        Node { link: Link::new(), key, value }
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

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for Node<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node").field("key", &self.key).field("value", &self.value).finish()
    }
}

/// A node as it sits in a chain.
pub(crate) type NodePtr<K, V> = *mut Rcu<Node<K, V>>;
