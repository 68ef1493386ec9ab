//! `RcuHashMap`: a chained hash map whose lookups take no lock and do no atomic
//! read-modify-write, whose writers lock one bucket, and whose table grows and shrinks while
//! readers run.
//!
//! The parts: `node.rs` (entries), `table.rs` (the table an RCU head can retire),
//! `count.rs` (the sharded length), `write.rs` (insert, remove, update, compute, clear),
//! `resize.rs` (when and how the table changes size), `iter.rs` (iteration under a guard),
//! `reentry.rs` (the record that refuses a write from a key's `Eq` to its own map). The
//! bucket words and the resize protocol's steps are in `crate::raw`.
//!
//! User code and panics: the keys' `Hash` runs once per operation, on the caller's key,
//! before anything is locked or changed (nodes store their hash: resizes, clears and
//! iteration never call it). `Eq` runs under a bucket lock only before the write's first
//! store, and write closures run before it. So a panicking `Hash`, `Eq` or closure leaves
//! the map exactly as it was; after a write's first store nothing but the retire call can
//! panic (a refused token), and the write's bookkeeping is done before it.

mod computed;
mod count;
mod iter;
mod node;
mod reentry;
mod resize;
mod spare;
mod table;
mod write;

use core::borrow::Borrow;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use std::collections::hash_map::RandomState;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use rcu_core::{Domain, Rcu, RcuDomain, RcuGuard};

use crate::domain::DomainHandle;
pub use computed::Computed;
use count::Count;
pub use iter::Iter;
pub use node::Node;
use table::Table;

/// The smallest table, in buckets.
const MIN_BUCKETS: usize = 16;

/// The largest table, in buckets: 2^32 (2^31 where `usize` has 32 bits). Nodes store the
/// low 32 bits of their hash, which pick the bucket in every table up to this size; beyond
/// it (32 GiB of buckets) chains just grow longer.
const MAX_BUCKETS: usize = 1 << if usize::BITS > 32 { 32 } else { usize::BITS - 1 };

/// A concurrent hash map read under RCU.
///
/// - **Reads** ([`get`](Self::get), [`iter`](Self::iter)) run under a guard of the map's
///   domain ([`RcuGuard`]: a [`ReadGuard`](rcu_core::ReadGuard), or an SRCU guard): no lock,
///   no atomic read-modify-write, no reference count. Values are returned by reference, valid
///   while the guard lives.
/// - **Writes** lock one bucket (a spinlock held over a few pointer stores), publish a new
///   node, and retire a replaced or removed node with `kvfree_rcu` under the caller's token:
///   it is dropped after a grace period. A write's token says what it may do:
///
/// | call | token | why |
/// |---|---|---|
/// | [`insert`](Self::insert), [`update`](Self::update), [`compute`](Self::compute) | `MayAlloc` (`Sleepable`, `NoReclaim`) | they allocate a node |
/// | [`insert_node`](Self::insert_node) | any, `Atomic` included | the node was allocated beforehand |
/// | [`remove`](Self::remove), [`clear`](Self::clear) | any, `Atomic` included | retiring uses the node's embedded head: never allocates |
/// | [`maintain`](Self::maintain) | `MayAlloc` | runs a due resize |
///
/// - **Resizing** (growing above one entry per bucket, shrinking below a quarter) allocates
///   the new table, so it is started only by a caller holding a `MayAlloc` token: an
///   insert, update or compute, or [`maintain`](Self::maintain). A write under `Atomic`
///   (or a remove, whatever its token) that takes the table past its load factor only
///   records that a resize is due; the next `MayAlloc` caller does it. Readers never wait
///   for a resize: they follow moved buckets to the new table. The old table is retired
///   with `kvfree_rcu`.
///
/// Writes enter a read section of the map's domain internally, so they borrow the token
/// mutably (inside a read guard, pass `&mut guard.ctx().nested()`), and on a thread that
/// never read from that domain an `Atomic` write panics (registering the thread allocates):
/// register it first with a `MayAlloc` token (`domain.register_current_thread(&ctx)`).
///
/// The keys' `Eq` runs while a bucket lock is held: a write to the same map from it would
/// wait for that lock for ever, so it panics instead, naming the rule (reading the map from
/// `Eq` is fine). `Hash` runs before any lock is taken, once per call, and never during a
/// resize. A panicking `Hash`, `Eq` or closure leaves the map as it was.
///
/// ```
/// use std::sync::Arc;
/// use rcu_core::prelude::*;
/// use rcu_collections::RcuHashMap;
///
/// let map = Arc::new(RcuHashMap::new());
/// let mut ctx = Sleepable::enter();
/// map.insert(&mut ctx, "apples", 3);
///
/// let reader = {
///     let map = Arc::clone(&map);
///     std::thread::spawn(move || {
///         let mut ctx = Sleepable::enter();
///         let guard = read_lock(&mut ctx);
///         let n = map.get("apples", &guard).copied(); // a reference, valid under `guard`
///         assert!(matches!(n, Some(3) | Some(4)));
///     })
/// };
/// map.update(&mut ctx, "apples", |n| n + 1); // copy-update: readers see 3 or 4, never a torn value
/// reader.join().unwrap();
///
/// let guard = read_lock(&mut ctx);
/// assert_eq!(map.get("apples", &guard), Some(&4));
/// ```
pub struct RcuHashMap<K, V, S = RandomState> {
    /// The current table (never null): a `Box<Rcu<Table>>` turned into a raw pointer.
    current: AtomicPtr<Rcu<Table<K, V>>>,
    /// The table a running (or interrupted) resize moves to; touched only by the resizer.
    next: AtomicPtr<Rcu<Table<K, V>>>,
    /// A resizer is at work (a try-lock: nobody waits for it).
    resizing: AtomicBool,
    /// A resize is due: a write crossed the load factor without a `MayAlloc` token.
    due: AtomicBool,
    count: Count,
    /// The table never shrinks below this many buckets.
    min_buckets: usize,
    /// Buckets of the current table (for `buckets()`, which has no guard to read it with).
    bucket_count: AtomicUsize,
    hasher: S,
    domain: DomainHandle,
    _owns: PhantomData<Box<Rcu<Node<K, V>>>>,
}

// SAFETY: the map owns its keys and values (moving the map moves them) and its hasher.
unsafe impl<K: Send, V: Send, S: Send> Send for RcuHashMap<K, V, S> {}
// SAFETY: readers on several threads get `&K` and `&V` at once (needs `Sync`), and writers on
// any thread publish and retire nodes created on another, dropped on the RCU worker (needs
// `Send`); the hasher is used through `&S` by all of them.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for RcuHashMap<K, V, S> {}

impl<K, V> RcuHashMap<K, V, RandomState> {
    /// An empty map of the global domain.
    ///
    /// ```
    /// let map: rcu_collections::RcuHashMap<u32, String> = rcu_collections::RcuHashMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity_and_hasher(0, RandomState::new())
    }

    /// An empty map of the global domain with room for `capacity` entries before it first
    /// grows (it never shrinks below that).
    ///
    /// ```
    /// let map: rcu_collections::RcuHashMap<u64, u64> = rcu_collections::RcuHashMap::with_capacity(1000);
    /// assert!(map.buckets() >= 1000);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, RandomState::new())
    }
}

impl<K, V> Default for RcuHashMap<K, V, RandomState> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> RcuHashMap<K, V, S> {
    /// An empty map of the global domain hashing with `hasher`.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map: rcu_collections::RcuHashMap<u8, u8> =
    ///     rcu_collections::RcuHashMap::with_hasher(RandomState::new());
    /// assert_eq!(map.len(), 0);
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty map of the global domain, with room for `capacity` entries, hashing with
    /// `hasher`.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let map: rcu_collections::RcuHashMap<u8, u8> =
    ///     rcu_collections::RcuHashMap::with_capacity_and_hasher(64, RandomState::new());
    /// assert_eq!(map.buckets(), 64);
    /// ```
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        Self::build(capacity, hasher, DomainHandle::Global)
    }

    /// An empty map of `domain`: read it under that domain's guards; removed entries wait for
    /// that domain's grace periods.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    /// use rcu_core::DomainConfig;
    /// use rcu_collections::RcuHashMap;
    ///
    /// let domain = Arc::new(Domain::new(DomainConfig::new().name("sessions")));
    /// let map = RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), Arc::clone(&domain));
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, 1, "alice");
    /// let guard = domain.read_lock(&mut ctx);
    /// assert_eq!(map.get(&1, &guard), Some(&"alice"));
    /// ```
    ///
    /// On a sleepable domain ([`SrcuStruct`](rcu_core::SrcuStruct)), reads go under its
    /// guards, and an owned guard keeps what was read alive across `.await`:
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use std::sync::Arc;
    /// use rcu_core::prelude::*;
    /// use rcu_core::{DomainConfig, SrcuStruct};
    /// use rcu_collections::RcuHashMap;
    ///
    /// let routes: Arc<SrcuStruct> = Arc::new(SrcuStruct::new(DomainConfig::new()));
    /// let map = RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), Arc::clone(&routes));
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, "/", "index");
    /// let guard = routes.down_read(&ctx); // Send: may cross .await
    /// let page = map.get("/", &guard);
    /// map.remove(&mut ctx, "/"); // the entry stays until `guard` drops
    /// assert_eq!(page, Some(&"index"));
    /// ```
    pub fn with_capacity_and_hasher_in<D>(capacity: usize, hasher: S, domain: Arc<D>) -> Self
    where
        D: RcuDomain + Send + Sync + 'static,
    {
        Self::build(capacity, hasher, DomainHandle::Shared(domain))
    }

    fn build(capacity: usize, hasher: S, domain: DomainHandle) -> Self {
        let buckets = capacity.clamp(MIN_BUCKETS, MAX_BUCKETS).next_power_of_two();
        RcuHashMap {
            current: AtomicPtr::new(Box::into_raw(Table::boxed(buckets))),
            next: AtomicPtr::new(core::ptr::null_mut()),
            resizing: AtomicBool::new(false),
            due: AtomicBool::new(false),
            count: Count::default(),
            min_buckets: buckets,
            bucket_count: AtomicUsize::new(buckets),
            hasher,
            domain,
            _owns: PhantomData,
        }
    }

    /// The number of entries: exact when no write runs concurrently, otherwise a value the
    /// count passed through recently.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, 'a', 1);
    /// map.insert(&mut ctx, 'b', 2);
    /// assert_eq!(map.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.count.sum()
    }

    /// True if [`len`](Self::len) is 0.
    ///
    /// ```
    /// let map: rcu_collections::RcuHashMap<(), ()> = Default::default();
    /// assert!(map.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets of the current table (a power of two): how the map has grown or shrunk.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// let before = map.buckets();
    /// for i in 0..1000 {
    ///     map.insert(&mut ctx, i, i);
    /// }
    /// assert!(map.buckets() > before);
    /// ```
    pub fn buckets(&self) -> usize {
        // Relaxed: a statistic, written by the resizer when it switches tables.
        self.bucket_count.load(Ordering::Relaxed)
    }

    /// True if a write crossed the load factor without a `MayAlloc` token and the resize it
    /// calls for has not run yet ([`maintain`](Self::maintain) runs it).
    ///
    /// ```
    /// let map: rcu_collections::RcuHashMap<u8, u8> = Default::default();
    /// assert!(!map.resize_due());
    /// ```
    pub fn resize_due(&self) -> bool {
        // Relaxed: a hint; the resizer reads the table state itself.
        self.due.load(Ordering::Relaxed)
    }

    /// The domain whose read guards protect this map.
    ///
    /// ```
    /// let map: rcu_collections::RcuHashMap<u8, u8> = Default::default();
    /// assert!(map.domain().is_global());
    /// ```
    pub fn domain(&self) -> &Domain {
        self.domain.get()
    }

    /// The hasher.
    ///
    /// ```
    /// use std::hash::BuildHasher;
    /// let map: rcu_collections::RcuHashMap<u8, u8> = Default::default();
    /// let _ = map.hasher().hash_one(1u8);
    /// ```
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The current table, under `guard`.
    #[inline]
    fn table<'g>(&'g self, guard: &'g impl RcuGuard) -> &'g Table<K, V> {
        self.domain.check(guard, "an RcuHashMap was");
        self.table_unchecked(guard)
    }

    /// The current table, under a guard already checked to be of the map's domain.
    #[inline]
    fn table_unchecked<'g>(&'g self, _guard: &'g impl RcuGuard) -> &'g Table<K, V> {
        // Acquire: pairs with the resizer's Release store of `current`: the new table's
        // buckets (and the nodes moved into them) are visible.
        let t = self.current.load(Ordering::Acquire);
        // SAFETY: `current` is never null; a table is retired (kvfree_rcu) only after it
        // stopped being current, and freed after a grace period of the map's domain, which
        // the guard's section (checked to be of that domain) holds off while 'g lives.
        unsafe { &*t }
    }

    /// The key's hash as nodes store it: the low 32 bits (see `MAX_BUCKETS`). Runs the
    /// user's `Hash`: callers call it before they lock or change anything.
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u32
    where
        S: BuildHasher,
    {
        // Truncation on purpose: these bits pick the bucket in every table.
        self.hasher.hash_one(key) as u32
    }

    /// The checks every write that may lock a bucket, retire or allocate makes before it
    /// changes anything: the token fits the thread's real context (`crate::enforce`), and
    /// the caller is not a key's `Eq` running under a bucket lock of this map
    /// (`reentry.rs`).
    #[track_caller]
    #[inline]
    fn check_write<C: rcu_core::Context>(&self, call: &'static str) {
        crate::enforce::token_fits::<C>(call);
        reentry::refuse(self.id(), call);
    }

    /// The map's identity in the re-entry record.
    #[inline]
    fn id(&self) -> *const () {
        (self as *const Self).cast()
    }
}

impl<K, V, S> RcuHashMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The value of `key`, valid while `guard` lives. No lock, no atomic read-modify-write.
    ///
    /// # Panics
    /// If `guard` is a read section of another domain than the map's.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, String::from("k"), vec![1, 2]);
    /// let guard = read_lock(&mut ctx);
    /// let v: &Vec<i32> = map.get("k", &guard).unwrap(); // no clone
    /// assert_eq!(v.len(), 2);
    /// ```
    #[inline]
    pub fn get<'g, Q>(&'g self, key: &Q, guard: &'g impl RcuGuard) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key, guard).map(|(_, v)| v)
    }

    /// The entry of `key`, valid while `guard` lives.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, 1, 'x');
    /// let guard = read_lock(&mut ctx);
    /// assert_eq!(map.get_key_value(&1, &guard), Some((&1, &'x')));
    /// ```
    #[inline]
    pub fn get_key_value<'g, Q>(
        &'g self,
        key: &Q,
        guard: &'g impl RcuGuard,
    ) -> Option<(&'g K, &'g V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let table = self.table(guard);
        let hash = self.hash(key);
        // SAFETY: (1) tables reachable from the current one, and nodes reachable from their
        // buckets, are retired only after being unpublished and freed after a grace period
        // of the map's domain, which `guard` holds off for 'g.
        let node =
            unsafe { table.find(hash.into(), |n| n.hash() == hash && n.key().borrow() == key) }?;
        Some((node.key(), node.value()))
    }

    /// True if `key` has an entry.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// map.insert(&mut ctx, 5u8, ());
    /// let guard = read_lock(&mut ctx);
    /// assert!(map.contains_key(&5, &guard));
    /// assert!(!map.contains_key(&6, &guard));
    /// ```
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q, guard: &impl RcuGuard) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key, guard).is_some()
    }

    /// Every entry, under `guard`. Weakly consistent: an entry present during the whole
    /// iteration is yielded; one inserted or removed meanwhile may or may not be; while a
    /// resize runs an entry may be yielded twice. No lock is taken.
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// let map = rcu_collections::RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// for i in 0..10 {
    ///     map.insert(&mut ctx, i, i * i);
    /// }
    /// let guard = read_lock(&mut ctx);
    /// let sum: u32 = map.iter(&guard).map(|(_, v)| v).sum();
    /// assert_eq!(sum, 285);
    /// ```
    pub fn iter<'g>(&'g self, guard: &'g impl RcuGuard) -> Iter<'g, K, V, S> {
        Iter::new(self.table(guard))
    }
}

impl<K, V, S> Drop for RcuHashMap<K, V, S> {
    fn drop(&mut self) {
        // `&mut self`: no reader (they borrow the map) and no writer; no resize runs, so the
        // current table has no future, and earlier tables were retired already.
        let table = *self.current.get_mut();
        // SAFETY: the current table came from Box::into_raw and no one else can reach it.
        let table = unsafe { Box::from_raw(table) };
        for i in 0..table.len() {
            if let crate::raw::Head::Chain(mut p) = table.bucket_at(i).head() {
                while !p.is_null() {
                    // SAFETY: every node in a chain came from Box::into_raw and is owned by
                    // the map, reachable from exactly one chain; we read its link first.
                    let node = unsafe { Box::from_raw(p) };
                    p = crate::raw::Linked::link(&*node).next();
                    drop(node);
                }
            }
        }
        let next = *self.next.get_mut();
        if !next.is_null() {
            // A resize interrupted by a panic left its table: its nodes are in chains of
            // the current table or this one; free this one's too.
            // SAFETY: from Box::into_raw; nodes in its chains are owned by the map.
            let next = unsafe { Box::from_raw(next) };
            for i in 0..next.len() {
                if let crate::raw::Head::Chain(mut p) = next.bucket_at(i).head() {
                    while !p.is_null() {
                        // SAFETY: as above.
                        let node = unsafe { Box::from_raw(p) };
                        p = crate::raw::Linked::link(&*node).next();
                        drop(node);
                    }
                }
            }
        }
        self.count.reset();
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug, S> core::fmt::Debug for RcuHashMap<K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RcuHashMap")
            .field("len", &self.len())
            .field("buckets", &self.buckets())
            .field("domain", &self.domain().name())
            .finish_non_exhaustive()
    }
}
