//! A table: a power-of-two array of buckets and the pointer to the table a resize is moving
//! its nodes to. The resize protocol's steps live here, one function each.
//!
//! # The resize protocol
//! A key's *home* is the first table, following `future` pointers from the current one, whose
//! bucket for the key is not `MIGRATED`. Writers change a chain only under its bucket's lock,
//! and only in the key's home, so a key is in exactly one chain at any time. A resize:
//! 1. **publish**: allocates the next table and stores it in `future` (`publish_future`);
//! 2. **migrate** each bucket (`migrate_bucket`): under the bucket's lock, moves the chain's
//!    *tail* node to the front of its bucket in the next table (`move_tail`: first linked
//!    there, then unlinked here), until the chain is empty, then marks the bucket `MIGRATED`;
//! 3. **unpublish**: makes the next table current and retires this one after a grace period
//!    (the map does this: `map/resize.rs`).
//!
//! Step 2 runs no user code: a node's bucket in the next table comes from the hash stored
//! in it when it was inserted ([`Hashed`]), and the steps allocate nothing. A migration
//! stopped midway through a bucket (by a panicking `Hash`, as it once was) would break the
//! home rule: the keys already moved would live in the next table while writers still lock
//! this bucket as their home, so a remove would miss them and an insert would duplicate
//! them. Between buckets a resize may stop (the map resumes it), since every bucket is then
//! either wholly here or wholly migrated.
//!
//! Why a reader never misses a key that is present throughout its lookup: it walks the
//! key's bucket here, then (if not found) the same key's bucket in `future`. Moving the tail
//! only re-points the tail's link, so a reader inside the chain visits every node before it
//! (a reader on the moved node itself continues into the new chain, which is harmless: it
//! holds other keys or this key's live node). A reader that misses a moved node read the
//! unlink of step 2 (Acquire on the link, which the unlink stored with Release), which the
//! resizer stored after publishing the node in the next table and, before that, the future
//! pointer: so its Acquire load of `future`, and of the new bucket, sees both.
//! `tests/loom.rs` checks this, and that storing `future` late or unlinking before linking
//! loses keys. Writers publish a node at either end of the chain: at the front, or after the
//! tail they found while holding the lock (`BucketLock::push_back`); a tail found before
//! taking the lock may have been moved to another bucket of the next table meanwhile, and
//! the model shows the key appended after it lost.

use core::ptr;

use super::bucket::{Bucket, BucketLock, Head};
use super::link::{Hashed, Linked};
use crate::sync::{AtomicPtr, Ordering};

/// A power-of-two array of buckets, and the table a running (or finished) resize moves them to.
#[derive(Debug)]
pub struct RawTable<N> {
    buckets: Box<[Bucket<N>]>,
    mask: usize,
    future: AtomicPtr<RawTable<N>>,
}

impl<N: Linked> RawTable<N> {
    /// A table of `buckets` empty buckets.
    ///
    /// # Panics
    /// If `buckets` is not a power of two.
    pub fn new(buckets: usize) -> Self {
        assert!(
            buckets.is_power_of_two(),
            "rcu-collections: table size {buckets} is not a power of two"
        );
        RawTable {
            buckets: (0..buckets).map(|_| Bucket::new()).collect(),
            mask: buckets - 1,
            future: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Number of buckets.
    #[inline]
    pub fn len(&self) -> usize {
        self.mask + 1
    }

    /// Never true: a table has at least one bucket.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Index of the bucket of `hash`.
    #[inline]
    pub fn index(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// The bucket at `index` (modulo the table size).
    #[inline]
    pub fn bucket_at(&self, index: usize) -> &Bucket<N> {
        // Masked, so always in bounds.
        &self.buckets[index & self.mask]
    }

    /// The bucket of `hash`.
    #[inline]
    pub fn bucket(&self, hash: u64) -> &Bucket<N> {
        self.bucket_at(self.index(hash))
    }

    /// The table a resize moves this one's nodes to (null: none yet).
    #[inline]
    pub fn future(&self) -> *mut RawTable<N> {
        // Acquire: pairs with the Release store of `publish_future`: the next table's
        // buckets are initialised before we look at them.
        self.future.load(Ordering::Acquire)
    }

    /// Step 1 of a resize: makes `next` this table's future. Must come before any bucket is
    /// migrated to it.
    ///
    /// # Panics
    /// If this table already has a future (one resize per table).
    pub fn publish_future(&self, next: *mut RawTable<N>) {
        assert!(self.future().is_null(), "rcu-collections: a table was resized twice");
        // Release: publishes the next table's initialised buckets; pairs with the Acquire
        // load in `future()`. Also ordered (program order) before every move of step 2,
        // whose Release unlinks carry it to readers that miss a moved node.
        self.future.store(next, Ordering::Release);
    }

    /// Finds the node for which `is` holds, among nodes of hash `hash`, as a reader: no
    /// lock, no read-modify-write.
    ///
    /// # Safety
    /// 1. This table, every table reachable through `future` pointers, and every node
    ///    reachable from their buckets stay allocated while the returned reference lives
    ///    (the caller holds a read section that began before any of them could be retired,
    ///    or owns them).
    #[inline]
    pub unsafe fn find(&self, hash: u64, mut is: impl FnMut(&N) -> bool) -> Option<&N> {
        let mut table = self;
        loop {
            match table.bucket(hash).head() {
                Head::Migrated => {}
                Head::Chain(mut p) => {
                    // SAFETY: (1): `p` is reachable from a bucket of a reachable table.
                    while let Some(node) = unsafe { p.as_ref() } {
                        if is(node) {
                            return Some(node);
                        }
                        p = node.link().next();
                    }
                }
            }
            // Not here: it may have been moved to the future table meanwhile (see the
            // module docs), or this bucket was migrated.
            let next = table.future();
            // SAFETY: (1): reachable through `future`.
            table = unsafe { next.as_ref() }?;
        }
    }

    /// Locks the home bucket of `hash` (see the module docs): the one chain in which nodes
    /// of that hash can be found and changed. Returns the table it is in.
    ///
    /// # Safety
    /// 1. As for `find`, for `'t`.
    #[inline]
    pub unsafe fn lock_home<'t>(&'t self, hash: u64) -> (&'t RawTable<N>, BucketLock<'t, N>) {
        let mut table = self;
        loop {
            if let Some(lock) = table.bucket(hash).lock() {
                return (table, lock);
            }
            let next = table.future();
            // SAFETY: (1). A bucket is marked migrated only after `future` was published
            // (program order in the resizer, carried here by the Acquire in `lock`).
            table = unsafe { next.as_ref() }
                .expect("rcu-collections: a migrated bucket in a table without a future table");
        }
    }
}

impl<N: Hashed> RawTable<N> {
    /// Step 2 of a resize: moves every node of bucket `index` to `next`, by the hashes
    /// stored in the nodes, and marks the bucket migrated. Runs no user code, so it never
    /// stops midway. Returns false if the bucket was already migrated (a resize resumed).
    ///
    /// # Safety
    /// 1. `next` is this table's published future (`publish_future` returned).
    /// 2. Every node reachable from this bucket stays allocated during the call.
    /// 3. `next` has no future of its own (it is not being resized).
    pub unsafe fn migrate_bucket(&self, index: usize, next: &RawTable<N>) -> bool {
        let Some(mut lock) = self.bucket_at(index).lock() else { return false };
        // SAFETY: (2), (3) passed on.
        while unsafe { move_tail(&mut lock, next) } {}
        lock.mark_migrated();
        true
    }
}

/// Moves the tail node of the locked chain to the front of its bucket in `next` (by its
/// stored hash): linked there first, then unlinked here. Returns false if the chain was
/// empty.
///
/// # Safety
/// 1. Every node reachable from the locked chain stays allocated during the call.
/// 2. `next` has no future (its buckets can all be locked).
pub unsafe fn move_tail<N: Hashed>(lock: &mut BucketLock<'_, N>, next: &RawTable<N>) -> bool {
    // SAFETY: (1) passed on.
    let Some((pred, tail)) = (unsafe { find_tail(lock) }) else { return false };
    // SAFETY: (1): in the locked chain.
    let node = unsafe { &*tail };
    let mut target = next
        .bucket(node.stored_hash())
        .lock()
        .expect("rcu-collections: migrating into a table that is itself being resized");
    // Link first: the tail (whose link was null) now leads into the target chain, then
    // heads it. A reader standing on it continues into the target chain, which holds
    // only other keys.
    node.link().set(target.first());
    target.set_head(tail);
    drop(target);
    // Then unlink: a reader that reads this store (Acquire) and misses the node finds it in
    // `next`, published by the stores above (Release, earlier in program order).
    unlink_tail(lock, pred);
    true
}

/// The loom models' broken variant of `move_tail`: unlinks before linking, so a reader can
/// miss a key that is present throughout (`tests/loom.rs` must catch it).
///
/// # Safety
/// As `move_tail`.
#[cfg(loom)]
pub unsafe fn move_tail_unlink_first<N: Hashed>(
    lock: &mut BucketLock<'_, N>,
    next: &RawTable<N>,
) -> bool {
    // SAFETY: (1) passed on.
    let Some((pred, tail)) = (unsafe { find_tail(lock) }) else { return false };
    unlink_tail(lock, pred);
    // SAFETY: (1): it was in the locked chain; nothing frees it.
    let node = unsafe { &*tail };
    let mut target = next.bucket(node.stored_hash()).lock().expect("not resized");
    node.link().set(target.first());
    target.set_head(tail);
    true
}

/// The chain's tail and its predecessor (null: the tail is the first node).
///
/// # Safety
/// 1. Every node reachable from the locked chain stays allocated during the call.
unsafe fn find_tail<N: Linked>(lock: &BucketLock<'_, N>) -> Option<(*mut N, *mut N)> {
    let mut pred = ptr::null_mut();
    let mut cur = lock.first();
    if cur.is_null() {
        return None;
    }
    loop {
        // SAFETY: (1).
        let next = unsafe { &*cur }.link().next_locked();
        if next.is_null() {
            return Some((pred, cur));
        }
        pred = cur;
        cur = next;
    }
}

/// Cuts the chain after `pred` (or empties it if `pred` is null): the tail is unlinked.
fn unlink_tail<N: Linked>(lock: &mut BucketLock<'_, N>, pred: *mut N) {
    // SAFETY: `pred` is null or a node of the locked chain, which the caller keeps allocated.
    match unsafe { pred.as_ref() } {
        None => lock.set_head(ptr::null_mut()),
        Some(pred) => pred.link().set(ptr::null_mut()),
    }
}
