//! A bucket: the head of a chain, with two tag bits in the pointer's low bits.
//!
//! - `LOCKED`: a writer (or the resizer) holds the bucket's spinlock. Held only over a few
//!   pointer stores and a walk of one short chain, so waiters spin (then yield); nothing ever
//!   sleeps holding it, which is what makes it usable under an `Atomic` token.
//! - `MIGRATED`: the resizer has moved every node of this bucket to the next table (the
//!   chain is empty for good); readers and writers go on to the table's `future`.
//!
//! Readers never write the word: they load it (Acquire) and mask the tags off.

use core::marker::PhantomData;
use core::ptr;

use super::link::Linked;
use crate::sync::{AtomicPtr, Ordering, SpinWait};

/// Tag: a writer holds the bucket.
const LOCKED: usize = 1;
/// Tag: the bucket's nodes now live in the next table.
const MIGRATED: usize = 2;
const TAGS: usize = LOCKED | MIGRATED;

/// The pointer without its tags.
#[inline]
fn untag<N>(word: *mut N) -> *mut N {
    word.wrapping_byte_sub(word as usize & TAGS)
}

#[inline]
fn tags<N>(word: *mut N) -> usize {
    word as usize & TAGS
}

/// What a reader finds in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head<N> {
    /// The first node of the chain (null: empty).
    Chain(*mut N),
    /// The bucket was migrated: look in the next table.
    Migrated,
}

/// A chain head with a lock bit and a migrated bit. Nodes must be aligned to at least 4
/// bytes (every node holds a pointer, so they are).
#[derive(Debug)]
pub struct Bucket<N> {
    word: AtomicPtr<N>,
}

impl<N> Bucket<N> {
    /// An empty, unlocked bucket.
    pub fn new() -> Self {
        Bucket { word: AtomicPtr::new(ptr::null_mut()) }
    }

    /// The bucket's chain, for a reader.
    #[inline]
    pub fn head(&self) -> Head<N> {
        // Acquire: pairs with the Release stores of `set_head`, `unlock` and
        // `mark_migrated`: the first node's fields, and a migrated bucket's nodes in the next
        // table, are visible before we look at them.
        let word = self.word.load(Ordering::Acquire);
        if tags(word) & MIGRATED != 0 {
            Head::Migrated
        } else {
            Head::Chain(untag(word))
        }
    }

    /// Takes the bucket's lock, spinning while another writer holds it. `None` if the
    /// bucket was migrated (its nodes live in the next table; it is never locked again).
    #[inline]
    pub fn lock(&self) -> Option<BucketLock<'_, N>> {
        let mut wait = SpinWait::new();
        // Acquire (here, on the CAS's failure and in the reload below): a word that says
        // MIGRATED pairs with `mark_migrated`'s Release store, so the nodes moved to the next
        // table are visible to the caller who goes there.
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if tags(word) & MIGRATED != 0 {
                return None;
            }
            if tags(word) & LOCKED == 0 {
                // Acquire on success: pairs with the previous holder's Release unlock (or
                // `set_head`): the chain as it left it is what we see.
                match self.word.compare_exchange_weak(
                    word,
                    word.wrapping_byte_add(LOCKED),
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some(BucketLock { bucket: self, head: word, _n: PhantomData }),
                    Err(now) => word = now,
                }
                continue;
            }
            wait.wait();
            // Acquire: as above.
            word = self.word.load(Ordering::Acquire);
        }
    }
}

impl<N> Default for Bucket<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A held bucket lock. Dropping it unlocks the bucket.
#[derive(Debug)]
pub struct BucketLock<'a, N> {
    bucket: &'a Bucket<N>,
    /// The chain's first node as this holder last stored it (untagged).
    head: *mut N,
    _n: PhantomData<*mut N>,
}

impl<N> BucketLock<'_, N> {
    /// The chain's first node (null: empty).
    #[inline]
    pub fn first(&self) -> *mut N {
        self.head
    }

    /// Makes `first` the chain's first node, keeping the lock.
    #[inline]
    pub fn set_head(&mut self, first: *mut N) {
        self.head = first;
        // Release: publishes `first`'s fields (and the links the holder set before) to
        // readers; pairs with the Acquire load in `Bucket::head`.
        self.bucket.word.store(first.wrapping_byte_add(LOCKED), Ordering::Release);
    }

    /// Marks the bucket migrated and unlocks it for good. The chain must be empty: every
    /// node was moved to the next table first.
    pub fn mark_migrated(self) {
        assert!(self.head.is_null(), "rcu-collections: bucket migrated with nodes left in it");
        let this = core::mem::ManuallyDrop::new(self);
        // Release: everything the resizer moved out of this bucket (published in the next
        // table) happens before a reader or writer that sees the mark (Acquire) goes there.
        this.bucket.word.store(ptr::null_mut::<N>().wrapping_byte_add(MIGRATED), Ordering::Release);
    }
}

impl<N: Linked> BucketLock<'_, N> {
    /// Points `pred`'s link (or the bucket, if `pred` is null) at `to`.
    ///
    /// # Safety
    /// 1. `pred` is null or a node of this chain.
    unsafe fn set_link(&mut self, pred: *mut N, to: *mut N) {
        // SAFETY: (1): a node of a locked chain is linked, so not retired: allocated.
        match unsafe { pred.as_ref() } {
            None => self.set_head(to),
            Some(pred) => pred.link().set(to),
        }
    }

    /// Publishes `node` at the front of the chain.
    ///
    /// # Safety
    /// 1. `node` is allocated, in no chain, and stays allocated while it is in one.
    pub unsafe fn push_front(&mut self, node: *mut N) {
        // SAFETY: (1): ours until published by `set_head`.
        unsafe { &*node }.link().set(self.first());
        self.set_head(node);
    }

    /// Publishes `node` at the end of the chain, after `tail`: the chain's last node (null:
    /// the chain is empty). Readers already past `tail` miss it, as they would miss a node
    /// pushed at the front; readers on `tail` or before it may see it.
    ///
    /// # Safety
    /// 1. As `push_front`, for `node`.
    /// 2. `tail` is the chain's last node, or null and the chain is empty.
    pub unsafe fn push_back(&mut self, tail: *mut N, node: *mut N) {
        // SAFETY: (1): ours until published by `set_link`.
        unsafe { &*node }.link().set(ptr::null_mut());
        // SAFETY: (2): `tail` is null (then the bucket is set) or a node of this chain.
        unsafe { self.set_link(tail, node) };
    }

    /// Publishes `new` in the place of `old`, whose predecessor is `pred`. A reader reaches
    /// one or the other, and continues into the same rest of the chain.
    ///
    /// # Safety
    /// 1. As `push_front`, for `new`.
    /// 2. `old` is a node of this chain, and `pred` its predecessor (null: `old` is first).
    pub unsafe fn replace(&mut self, pred: *mut N, old: *mut N, new: *mut N) {
        // SAFETY: (1), (2): `new` takes over `old`'s successor before it is published.
        unsafe { &*new }.link().set(unsafe { &*old }.link().next_locked());
        // SAFETY: (2).
        unsafe { self.set_link(pred, new) };
    }

    /// Unlinks `old`, whose predecessor is `pred`. Readers already on it continue into the
    /// rest of the chain through its unchanged link; the caller retires it.
    ///
    /// # Safety
    /// 1. `old` is a node of this chain, and `pred` its predecessor (null: `old` is first).
    pub unsafe fn unlink(&mut self, pred: *mut N, old: *mut N) {
        // SAFETY: (1).
        let next = unsafe { &*old }.link().next_locked();
        // SAFETY: (1).
        unsafe { self.set_link(pred, next) };
    }
}

impl<N> Drop for BucketLock<'_, N> {
    #[inline]
    fn drop(&mut self) {
        // Release: the next holder (Acquire CAS in `lock`) and readers (Acquire in `head`)
        // see the chain as we left it.
        self.bucket.word.store(self.head, Ordering::Release);
    }
}
