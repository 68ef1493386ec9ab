//! An in-memory cache with TTL eviction, on `RcuHashMap`.
//!
//! Reader threads serve lookups with no lock: `get` under a read guard, the value read by
//! reference, an expired entry counted as a miss. A loader thread inserts entries with a
//! time to live (`Sleepable`: it may allocate and reclaim). The evictor is a *reclaim path*:
//! the code a program runs when memory is short, here holding the cache's eviction lock, so
//! it works inside a `NoReclaim` scope: its `remove`s retire entries with `kvfree_rcu` under
//! the `NoReclaim` policy, which may allocate a block but never runs shrinkers, never waits
//! for pending frees and never runs callbacks inline (any of which could need the lock it
//! holds). The type system holds it to that: inside the scope the parent `Sleepable` cannot be
//! used, and the map's `insert`/`maintain` calls it makes are the ones `NoReclaim` allows.
//!
//! Time is a logical clock the main thread advances, so expiry does not depend on timing.
//! Checks: readers never see a torn or freed value; after the run every expired entry has
//! been evicted; every value ever made is dropped exactly once.
//!
//! Run: `cargo run --release -p rcu-collections --example ttl_cache`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;

const KEYS: u64 = 2048;
const TICKS: u64 = 200;
const TTL: u64 = 8;

static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A cached value: the payload, its checksum and its expiry (logical time).
struct Entry {
    payload: Vec<u8>,
    sum: u64,
    expires: u64,
}

impl Entry {
    fn new(key: u64, now: u64) -> Self {
        MADE.fetch_add(1, Ordering::Relaxed);
        let payload: Vec<u8> = (0..32).map(|i| (key as u8).wrapping_add(i)).collect();
        Entry { sum: payload.iter().map(|&b| u64::from(b)).sum(), payload, expires: now + TTL }
    }

    fn intact(&self) -> bool {
        self.payload.iter().map(|&b| u64::from(b)).sum::<u64>() == self.sum
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.sum = u64::MAX; // poison: a reader that still saw it would fail `intact`
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

struct Cache {
    map: RcuHashMap<u64, Entry>,
    now: AtomicU64,
    /// Held by the evictor: the lock a reclaim path typically holds.
    eviction: Mutex<Vec<u64>>,
}

impl Cache {
    /// A lookup: no lock; an expired entry is a miss.
    fn get(&self, key: u64, guard: &ReadGuard<'_>) -> Option<usize> {
        // Relaxed: the clock is advisory; a stale read only shifts expiry by a tick.
        let now = self.now.load(Ordering::Relaxed);
        let entry = self.map.get(&key, guard)?;
        assert!(entry.intact(), "reader saw a torn or freed entry for {key}");
        (entry.expires > now).then_some(entry.payload.len())
    }

    /// The reclaim path: evicts expired entries while holding the eviction lock, inside a
    /// `NoReclaim` scope. Returns how many it evicted.
    fn evict_expired(&self, ctx: &mut NoReclaim<'_>) -> usize {
        let mut scratch = self.eviction.lock().unwrap();
        scratch.clear();
        // Relaxed: as in `get`.
        let now = self.now.load(Ordering::Relaxed);
        {
            // Collect under a nested read section (the scope's token can enter one).
            let guard = read_lock(ctx);
            scratch
                .extend(self.map.iter(&guard).filter(|(_, e)| e.expires <= now).map(|(k, _)| *k));
        }
        let mut evicted = 0;
        for key in scratch.iter() {
            // `remove` retires with kvfree_rcu under NoReclaim: never reclaims, never waits.
            evicted += usize::from(self.map.remove(ctx, key));
        }
        // Shrinking the table allocates, which NoReclaim allows (reclaiming it does not).
        self.map.maintain(ctx);
        evicted
    }
}

fn main() {
    let cache = Arc::new(Cache {
        map: RcuHashMap::new(),
        now: AtomicU64::new(0),
        eviction: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|id| {
            let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                let (mut hits, mut misses, mut x) = (0u64, 0u64, id + 1);
                // Relaxed: a stop flag (the join orders the rest).
                while !stop.load(Ordering::Relaxed) {
                    let guard = read_lock(&mut ctx);
                    for _ in 0..64 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        match cache.get((x >> 33) % KEYS, &guard) {
                            Some(_) => hits += 1,
                            None => misses += 1,
                        }
                    }
                }
                (hits, misses)
            })
        })
        .collect();

    let mut ctx = Sleepable::enter();
    let mut evicted = 0;
    let mut x = 7u64;
    for tick in 0..TICKS {
        cache.now.store(tick, Ordering::Relaxed);
        // The loader: a burst of inserts (and refreshes) with a TTL.
        for _ in 0..256 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (x >> 33) % KEYS;
            cache.map.insert(&mut ctx, key, Entry::new(key, tick));
        }
        // Memory is "short" every few ticks: run the reclaim path.
        if tick % 4 == 3 {
            let mut nr = ctx.no_reclaim(); // `ctx` is unusable until `nr` is dropped
            evicted += cache.evict_expired(&mut nr);
        }
    }
    // A final eviction far in the future empties the cache.
    cache.now.store(TICKS + TTL, Ordering::Relaxed);
    evicted += cache.evict_expired(&mut ctx.no_reclaim());
    stop.store(true, Ordering::Relaxed);
    let (mut hits, mut misses) = (0, 0);
    for r in readers {
        let (h, m) = r.join().expect("a reader failed");
        hits += h;
        misses += m;
    }
    assert!(cache.map.is_empty(), "{} entries survived the final eviction", cache.map.len());
    let buckets = cache.map.buckets();
    drop(cache);
    rcu_barrier(&ctx);
    let (made, dropped) = (MADE.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed));
    assert_eq!(made, dropped, "every entry is dropped exactly once");
    println!(
        "ttl_cache: {made} entries made, {evicted} evicted on the NoReclaim path, all {dropped} \
         dropped; readers: {hits} hits, {misses} misses (expired or absent); table shrank to \
         {buckets} buckets"
    );
    println!("SUCCESS");
}
