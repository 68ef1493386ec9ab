//! When the table changes size, and the resizer that does it.
//!
//! The load is checked on the writers' cold paths (every 16th count change of a shard, or a
//! long chain). Growing is due above one entry per bucket (to at least twice the buckets),
//! shrinking below a quarter (to the size that makes it a quarter to a half full). A write
//! that finds a resize due runs it if its token may allocate (the new table is an
//! allocation); otherwise it sets `due`, and the next `MayAlloc` write, or
//! [`RcuHashMap::maintain`], runs it. One resizer at a time: the others skip, nobody waits.
//!
//! The steps (the raw layer's `publish_future`, `migrate_bucket`, then the switch here) are
//! described in `raw/table.rs`; the loom models in `tests/loom.rs` check them. They run no
//! user code (nodes carry their hash), so a resize runs to its end; the code that resumes
//! one left with a future table (`next` set) is kept for an internal panic, as is the
//! guard that then records the resize as due again.

use core::hash::{BuildHasher, Hash};
use core::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use rcu_core::MayAlloc;

use super::count::SHARDS;
use super::table::Table;
use super::{RcuHashMap, MAX_BUCKETS};

/// A chain at least this long makes a writer check the load at once.
const LONG_CHAIN: usize = 4;
/// Otherwise the load is checked when a shard's count crosses a multiple of this.
const CHECK_EVERY: isize = 16;

/// Lets go of the resizers' try-lock when dropped; if the resizer is unwinding, first
/// records the resize as due, so that the next `MayAlloc` write finishes it.
struct Resizing<'a> {
    resizing: &'a AtomicBool,
    due: &'a AtomicBool,
}

impl Drop for Resizing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Relaxed: a hint (see `check_load`); the next resizer reads `next` itself.
            self.due.store(true, Ordering::Relaxed);
        }
        // Release: pairs with the next resizer's Acquire swap: it sees the table switch
        // and the `next` pointer as we left them.
        self.resizing.store(false, Ordering::Release);
    }
}

impl<K, V, S> RcuHashMap<K, V, S> {
    /// The size the table should have for `len` entries, given `buckets` now.
    fn target_buckets(&self, len: usize, buckets: usize) -> usize {
        if len > buckets {
            len.next_power_of_two().max(buckets * 2).min(MAX_BUCKETS)
        } else if buckets > self.min_buckets && len < buckets / 4 {
            (len * 2).next_power_of_two().max(self.min_buckets)
        } else {
            buckets
        }
    }

    /// Records that a resize is due if the load calls for one.
    fn check_load(&self) {
        // Relaxed: a statistic (see `buckets`).
        let buckets = self.bucket_count.load(Ordering::Relaxed);
        if self.target_buckets(self.len(), buckets) != buckets {
            // Relaxed: a hint read by the next `MayAlloc` writer; the resizer re-reads the
            // real state under its try-lock.
            self.due.store(true, Ordering::Relaxed);
        }
    }

    /// Counts a new entry of `hash` that found `walked` nodes in its chain. The load is
    /// checked on a long chain, every `CHECK_EVERY` counts of a shard, and whenever this
    /// shard's count alone says the table is over its load factor.
    #[inline]
    pub(super) fn note_insert(&self, hash: u32, walked: usize) {
        let before = self.count.add(hash, 1);
        // Relaxed: a statistic (see `buckets`).
        let buckets = self.bucket_count.load(Ordering::Relaxed);
        let estimate = (before.max(0) as usize + 1) * SHARDS;
        if walked >= LONG_CHAIN || before % CHECK_EVERY == 0 || estimate > buckets {
            self.check_load();
        }
    }

    /// Counts a removed entry of `hash`; checks the load as `note_insert` does, for
    /// shrinking.
    #[inline]
    pub(super) fn note_remove(&self, hash: u32) {
        let before = self.count.add(hash, -1);
        // Relaxed: as above.
        let buckets = self.bucket_count.load(Ordering::Relaxed);
        let estimate = (before.max(1) as usize - 1) * SHARDS;
        if before % CHECK_EVERY == 0 || (buckets > self.min_buckets && estimate < buckets / 4) {
            self.check_load();
        }
    }

    /// After a `clear`: shrinking is probably due.
    pub(super) fn due_if_sparse(&self) {
        self.check_load();
    }
}

impl<K, V, S> RcuHashMap<K, V, S>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    S: BuildHasher,
{
    /// Runs a due resize (see [`maintain`](Self::maintain)), for a write that checked its
    /// token already.
    #[inline]
    pub(super) fn maintain_if_due<C: MayAlloc>(&self, ctx: &mut C) {
        // Relaxed: a hint (see `check_load`).
        if self.due.load(Ordering::Relaxed) {
            self.resize(ctx);
        }
    }

    /// Grows or shrinks the table if its load calls for it, and finishes a resize that was
    /// interrupted. Returns true if the table changed. Allocates the new
    /// table, so it needs a token that may allocate; it never waits for another resizer
    /// (if one is at work, this returns false at once) and never blocks readers, who follow
    /// moved buckets to the new table. The old table is retired with `kvfree_rcu`.
    ///
    /// Writes under `Atomic` (and removes under any token) only record that a resize is
    /// due; call this from a context that may allocate (or let the next `insert`, `update`
    /// or `compute` do it).
    ///
    /// ```
    /// use rcu_core::prelude::*;
    /// use rcu_collections::{Node, RcuHashMap};
    ///
    /// let map = RcuHashMap::new();
    /// let mut ctx = Sleepable::enter();
    /// Domain::global().register_current_thread(&ctx); // Atomic writes may not register
    /// let nodes: Vec<_> = (0..100).map(|i| Node::boxed(i, i)).collect();
    /// {
    ///     let mut spin = ctx.atomic();
    ///     for node in nodes {
    ///         map.insert_node(&mut spin, node); // may not allocate: cannot grow the table
    ///     }
    /// }
    /// assert!(map.resize_due());
    /// assert!(map.maintain(&mut ctx)); // grows it
    /// assert!(map.buckets() >= 100 && !map.resize_due());
    /// ```
    ///
    /// # Panics
    /// With a token that claims more than the thread's context allows (a second root used
    /// inside an atomic or no-reclaim scope, or inside a read section), before it allocates
    /// or changes anything: checked in every build.
    #[track_caller]
    pub fn maintain<C: MayAlloc>(&self, ctx: &mut C) -> bool {
        self.check_write::<C>("RcuHashMap::maintain");
        self.resize(ctx)
    }

    /// `maintain`, after the caller's checks.
    #[track_caller]
    fn resize<C: MayAlloc>(&self, ctx: &mut C) -> bool {
        // Acquire: pairs with the previous resizer's Release in `Resizing::drop`.
        if self.resizing.swap(true, Ordering::Acquire) {
            return false;
        }
        let _resizing = Resizing { resizing: &self.resizing, due: &self.due };
        // Relaxed: we are about to look at the real state.
        self.due.store(false, Ordering::Relaxed);
        let mut changed = false;
        loop {
            // Acquire: pairs with our predecessor's Release store of `current`.
            let current = self.current.load(Ordering::Acquire);
            // SAFETY: only a resizer retires the current table, and we are the resizer
            // (holding the try-lock), so it stays allocated until we retire it below.
            let table = unsafe { &**current };
            // Relaxed: written only by resizers, ordered by the try-lock.
            let mut next = self.next.load(Ordering::Relaxed);
            if next.is_null() {
                let buckets = self.target_buckets(self.len(), table.len());
                if buckets == table.len() {
                    return changed;
                }
                // The allocation `MayAlloc` is for.
                next = Box::into_raw(Table::boxed(buckets));
                // Relaxed: as above.
                self.next.store(next, Ordering::Relaxed);
                // SAFETY: `next` was just allocated and is not yet reachable by anyone.
                let raw: *const _ = &unsafe { &*next }.raw;
                table.publish_future(raw.cast_mut());
            }
            // SAFETY: `next` stays allocated: it becomes current below, and only a resizer
            // retires tables.
            let next_table = unsafe { &*next };
            for index in 0..table.len() {
                // SAFETY: (1) `next` is `table`'s published future (published above, or by
                // the interrupted resize that stored `self.next`); (2) nodes in a locked
                // chain are linked, so not retired; (3) `next` has no future: only a resizer
                // publishes one, after making it current.
                unsafe { table.migrate_bucket(index, next_table) };
            }
            // Release: pairs with the Acquire in `table_unchecked`: a reader or writer that
            // loads the new table sees its buckets as migrated into.
            self.current.store(next, Ordering::Release);
            // Relaxed: ordered by the try-lock (see above).
            self.next.store(ptr::null_mut(), Ordering::Relaxed);
            // Relaxed: a statistic (see `buckets`).
            self.bucket_count.store(next_table.len(), Ordering::Relaxed);
            // SAFETY: `current` came from Box::into_raw, is no longer reachable from the map
            // (readers that loaded it before the switch hold read sections, which the grace
            // period waits for), and is retired once.
            let old = unsafe { Box::from_raw(current) };
            self.domain.get().kvfree_rcu(&*ctx, old);
            changed = true;
        }
    }
}
