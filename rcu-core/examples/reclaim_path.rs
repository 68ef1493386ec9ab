//! A memory-reclaim path: a cache's eviction routine, run when memory is short, that frees
//! entries through RCU while holding the cache's lock. It runs inside a `NoReclaim` scope.
//!
//! Why not `Sleepable`? Under `Sleepable` (the `Reclaim` policy) a `call_rcu`/`kvfree_rcu`
//! may *reclaim* to make room: run registered shrinkers (this cache is one, and its `scan`
//! takes the cache lock), wait until pending frees drain (backpressure: waiting on the
//! worker, whose callbacks may want the lock), or run this thread's own ready callbacks
//! inline. Any of those, with the cache lock held, can deadlock "once in a blue moon". Under
//! `NoReclaim` the same calls may still block and allocate, but never reclaim: over budget
//! or out of blocks they take a fallback (the object's embedded head) instead of waiting.
//!
//! The example shows it: readers look entries up under RCU while the main thread fills the
//! cache (`Sleepable`) and evicts (`NoReclaim`, lock held) in rounds, against a domain with
//! a small memory budget so the over-budget paths run. During evictions no callback runs
//! on the evicting thread, no shrinker runs and nothing waits for memory; the same retire
//! calls made with a `Sleepable` token (lock not held) do run callbacks inline.
//!
//! Run: `cargo run --release -p rcu-core --example reclaim_path`

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{register_shrinker, AllocConfig, DomainConfig, FallbackReason, Policy, Shrinker};

const SLOTS: usize = 4096;
const ROUNDS: usize = 40;
/// The cache domain's budget for memory waiting for a grace period: small, so evictions
/// run over it.
const BUDGET: usize = 256 << 10;

static ENTRIES_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static ENTRIES_FREED: AtomicU64 = AtomicU64::new(0);
/// Callbacks and frees that ran on a thread while it was evicting (with the lock held).
static RAN_INSIDE_EVICTION: AtomicU64 = AtomicU64::new(0);
/// Callbacks and frees that ran on the main thread during the `Sleepable` contrast run.
static RAN_INLINE_SLEEPABLE: AtomicU64 = AtomicU64::new(0);
static SHRINKER_SCANS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set while this thread runs `evict` (and holds the cache lock).
    static EVICTING: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs the `Sleepable` contrast.
    static CONTRAST: Cell<bool> = const { Cell::new(false) };
}

/// Records where a deferred free or callback ran.
fn note_where_it_ran() {
    if EVICTING.with(Cell::get) {
        RAN_INSIDE_EVICTION.fetch_add(1, Ordering::Relaxed);
    }
    if CONTRAST.with(Cell::get) {
        RAN_INLINE_SLEEPABLE.fetch_add(1, Ordering::Relaxed);
    }
}

/// A cached object: a key and a payload buffer.
struct Entry {
    key: u64,
    data: Vec<u8>,
}

impl Entry {
    fn boxed(key: u64) -> Box<Rcu<Entry>> {
        ENTRIES_ALLOCATED.fetch_add(1, Ordering::Relaxed);
        Rcu::boxed(Entry { key, data: vec![key as u8; 200] })
    }

    fn is_intact(&self) -> bool {
        self.data.len() == 200 && self.data.iter().all(|&b| b == self.key as u8)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        note_where_it_ran();
        ENTRIES_FREED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `call_rcu` callback for evicted entries: runs after the grace period with an `Atomic`
/// token (it must not block, allocate or take the cache lock).
fn entry_evicted(entry: Box<Rcu<Entry>>, _ctx: &Atomic<'_>) {
    assert!(entry.is_intact(), "evicted entry {} was corrupted", entry.key);
    drop(entry);
}

/// Which retire call an eviction uses, round-robin: all three are legal under `NoReclaim`.
#[derive(Default)]
struct Evicted {
    call_rcu: u64,
    kvfree_rcu: u64,
    /// Index snapshots (plain `Box<Vec<u64>>`, no embedded head) retired headless.
    kvfree_rcu_mightsleep: u64,
}

/// An RCU-read cache: readers look slots up without locks; filling and eviction take
/// `lock`. Entries are retired to the cache's own domain.
struct Cache {
    domain: Domain,
    slots: Box<[AtomicPtr<Rcu<Entry>>]>,
    /// The keys resident at the last eviction, for readers that want a listing. Replaced
    /// (and the old one retired) by every eviction.
    index: AtomicPtr<Vec<u64>>,
    lock: Mutex<()>,
    resident: AtomicUsize,
}

impl Cache {
    fn new() -> Arc<Cache> {
        let domain = Domain::new(
            DomainConfig::new().name("cache").alloc(AllocConfig::new().budget_bytes(BUDGET)),
        );
        Arc::new(Cache {
            domain,
            slots: (0..SLOTS).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            index: AtomicPtr::new(Box::into_raw(Box::new(Vec::new()))),
            lock: Mutex::new(()),
            resident: AtomicUsize::new(0),
        })
    }

    /// Looks slot `key` up under a read guard of the cache's domain.
    fn get<'g>(&'g self, _guard: &'g ReadGuard<'_>, key: u64) -> Option<&'g Entry> {
        // Acquire: pairs with the Release store in `fill`.
        let p = self.slots[key as usize % SLOTS].load(Ordering::Acquire);
        // SAFETY: a published entry is retired only after it is unpublished, and retired
        // entries are freed after a grace period of `self.domain`, whose read section
        // `guard` began before that: the entry lives for 'g.
        unsafe { p.as_ref() }.map(|e| &**e)
    }

    /// Fills every empty slot. Allocates and takes the lock, and retires nothing under it:
    /// the `Sleepable` only witnesses that this path may block and allocate.
    fn fill(&self, _ctx: &Sleepable) -> usize {
        let _lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut filled = 0;
        for (key, slot) in self.slots.iter().enumerate() {
            // Relaxed: slots are only written under the lock.
            if slot.load(Ordering::Relaxed).is_null() {
                // Release: publishes the entry; pairs with the Acquire in `get`.
                slot.store(Box::into_raw(Entry::boxed(key as u64)), Ordering::Release);
                filled += 1;
            }
        }
        // Relaxed: a statistic.
        self.resident.fetch_add(filled, Ordering::Relaxed);
        filled
    }

    /// The reclaim path: evicts up to `target` entries. Callers pass whatever token they
    /// have (it must allow sleeping: the lock); the function opens its own `NoReclaim`
    /// scope, so nothing below it can recurse into reclaim, whoever calls it.
    fn evict<C: MaySleep>(&self, ctx: &mut C, target: usize, stats: &mut Evicted) -> usize {
        let nr = ctx.no_reclaim();
        let _lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        EVICTING.with(|e| e.set(true));

        // What the compiler refuses here (each is a compile_fail doctest, the spec):
        // - `rcu_barrier(&nr)`: E0277, `NoReclaim<'_>` is not `MayReclaim` (rcu-core
        //   compile_fail_reclaim.rs: `BarrierInNoReclaim`, `ReclaimWithNoReclaim`).
        // - `shrink_everything(&nr)`, any fn bounded by `C: MayReclaim`: E0277 (rcu-ctx
        //   compile_fail.rs: `ReclaimWithNoReclaim`).
        // - using the parent token, `self.domain.kvfree_rcu(ctx, ..)`: E0502, `ctx` is
        //   borrowed by the scope (rcu-ctx compile_fail.rs: `ParentUsedInsideNoReclaimScope`).
        // And at run time, in every build: `Sleepable::enter()` in here panics.

        let mut evicted = 0;
        let mut kept = Vec::new();
        for (key, slot) in self.slots.iter().enumerate() {
            if evicted == target {
                // Relaxed: under the lock.
                if !slot.load(Ordering::Relaxed).is_null() {
                    kept.push(key as u64);
                }
                continue;
            }
            // AcqRel: Release unpublishes, Acquire makes the entry ours to retire.
            let p = slot.swap(ptr::null_mut(), Ordering::AcqRel);
            if p.is_null() {
                continue;
            }
            // SAFETY: `p` came from `Box::into_raw` in `fill` and was just unpublished; no
            // new reader can reach it and the retire calls below wait out the old ones.
            let entry = unsafe { Box::from_raw(p) };
            if evicted % 2 == 0 {
                // Never fails, never waits; over budget it falls back to the embedded head.
                self.domain.call_rcu(&nr, entry, entry_evicted);
                stats.call_rcu += 1;
            } else {
                self.domain.kvfree_rcu(&nr, entry);
                stats.kvfree_rcu += 1;
            }
            evicted += 1;
        }
        // Publish a new index (NoReclaim may allocate) and retire the old one. It has no
        // embedded head, so it goes through `kvfree_rcu_mightsleep` (MaySleep: with no
        // block at all it would wait for a grace period inline; it never waits for memory).
        // AcqRel: publishes the new index, acquires the old one to retire.
        let old = self.index.swap(Box::into_raw(Box::new(kept)), Ordering::AcqRel);
        // SAFETY: from `Box::into_raw` (in `new` or a previous eviction), unpublished now.
        self.domain.kvfree_rcu_mightsleep(&nr, unsafe { Box::from_raw(old) });
        stats.kvfree_rcu_mightsleep += 1;

        // Relaxed: a statistic.
        self.resident.fetch_sub(evicted, Ordering::Relaxed);
        EVICTING.with(|e| e.set(false));
        evicted
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for slot in self.slots.iter_mut() {
            let p = *slot.get_mut();
            if !p.is_null() {
                // SAFETY: `&mut self`: no reader or writer is left; the entry is live.
                drop(unsafe { Box::from_raw(p) });
            }
        }
        // SAFETY: as above, for the current index.
        drop(unsafe { Box::from_raw(*self.index.get_mut()) });
    }
}

/// The cache as a shrinker: asked to free memory when an allocation fails under the
/// `Reclaim` policy. Its `scan` takes the cache lock: called from inside `evict`, with the
/// lock held, it would deadlock. That is exactly what `NoReclaim` rules out.
struct CacheShrinker(Weak<Cache>);

impl Shrinker for CacheShrinker {
    fn count(&self) -> usize {
        // Relaxed: an estimate.
        self.0.upgrade().map_or(0, |c| c.resident.load(Ordering::Relaxed))
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        SHRINKER_SCANS.fetch_add(1, Ordering::Relaxed);
        assert!(!EVICTING.with(Cell::get), "shrinker called from inside the eviction");
        let Some(cache) = self.0.upgrade() else { return 0 };
        let mut ctx = Sleepable::enter();
        cache.evict(&mut ctx, nr_to_scan, &mut Evicted::default())
    }
}

const CONTRAST_ITEMS: u64 = 100_000;

/// Retires `CONTRAST_ITEMS` fresh entries with a `Sleepable` token against `budget`; returns
/// how many callbacks ran inline on this thread and how many times it waited for memory.
fn sleepable_contrast(cache: &Cache, ctx: &Sleepable, budget: usize) -> (u64, u64) {
    cache.domain.rcu_barrier(ctx);
    cache.domain.set_budget(budget);
    let waits_before = cache.domain.alloc_stats().backpressure_waits;
    RAN_INLINE_SLEEPABLE.store(0, Ordering::Relaxed);
    CONTRAST.with(|c| c.set(true));
    for key in 0..CONTRAST_ITEMS {
        cache.domain.call_rcu(ctx, Entry::boxed(key), entry_evicted);
    }
    CONTRAST.with(|c| c.set(false));
    let waits = cache.domain.alloc_stats().backpressure_waits - waits_before;
    cache.domain.set_budget(BUDGET);
    (RAN_INLINE_SLEEPABLE.load(Ordering::Relaxed), waits)
}

fn main() {
    println!(
        "reclaim_path: a cache with {SLOTS} slots evicted {ROUNDS} times under NoReclaim with its \
         lock held, against a {} KiB budget, while readers look entries up",
        BUDGET >> 10
    );
    let cache = Cache::new();
    let _shrinker = register_shrinker(Arc::new(CacheShrinker(Arc::downgrade(&cache))));

    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (cache, stop, lookups) = (cache.clone(), stop.clone(), lookups.clone());
            std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || {
                    let mut ctx = Sleepable::enter();
                    let mut n = 0u64;
                    let mut key = i as u64;
                    while !stop.load(Ordering::Relaxed) {
                        let guard = cache.domain.read_lock(&mut ctx);
                        for _ in 0..16 {
                            key = key
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            if let Some(entry) = cache.get(&guard, key >> 33) {
                                assert!(entry.is_intact(), "reader saw a torn or freed entry");
                            }
                            n += 1;
                        }
                        drop(guard);
                    }
                    lookups.fetch_add(n, Ordering::Relaxed);
                })
                .expect("spawn reader")
        })
        .collect();

    let mut ctx = Sleepable::enter();
    let alloc_before = cache.domain.alloc_stats();
    let mut stats = Evicted::default();
    let mut evicted = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..ROUNDS {
        cache.fill(&ctx);
        let start = Instant::now();
        evicted += cache.evict(&mut ctx, SLOTS * 3 / 4, &mut stats);
        slowest = slowest.max(start.elapsed());
    }
    let alloc = cache.domain.alloc_stats();
    let over_budget = alloc.fallbacks_of(Policy::NoReclaim, FallbackReason::OverBudget)
        - alloc_before.fallbacks_of(Policy::NoReclaim, FallbackReason::OverBudget);
    println!(
        "evicted {evicted} entries: {} by call_rcu, {} by kvfree_rcu; {} index snapshots by \
         kvfree_rcu_mightsleep; slowest round {:.2} ms",
        stats.call_rcu,
        stats.kvfree_rcu,
        stats.kvfree_rcu_mightsleep,
        slowest.as_secs_f64() * 1e3
    );
    println!(
        "during evictions (lock held): {} callbacks or frees ran on the evicting thread, {} \
         backpressure waits, {} shrinker calls",
        RAN_INSIDE_EVICTION.load(Ordering::Relaxed),
        alloc.backpressure_waits - alloc_before.backpressure_waits,
        alloc.shrinker_calls - alloc_before.shrinker_calls,
    );
    println!(
        "over budget, NoReclaim fell back to the embedded head {over_budget} times instead of \
         waiting (peak pending {} KiB)",
        cache.domain.stats().peak_pending_bytes >> 10
    );
    assert_eq!(RAN_INSIDE_EVICTION.load(Ordering::Relaxed), 0, "reclaim ran inside eviction");
    assert_eq!(alloc.backpressure_waits, alloc_before.backpressure_waits, "eviction waited");
    assert_eq!(SHRINKER_SCANS.load(Ordering::Relaxed), 0, "a shrinker ran");

    // The contrast: the same retire calls with a Sleepable token (no lock held). Over budget
    // the Reclaim policy waits for pending frees to drain; within budget it runs this
    // thread's own ready callbacks inline at block boundaries. Both are reclaim.
    for budget in [BUDGET, 64 << 20] {
        let (inline, waits) = sleepable_contrast(&cache, &ctx, budget);
        println!(
            "contrast, Sleepable, {:>5} KiB budget: {inline} of {CONTRAST_ITEMS} callbacks ran \
             inline on the calling thread, {waits} backpressure waits",
            budget >> 10
        );
    }
    println!(
        "  (with the cache lock held, a callback, shrinker or drain that needs the lock would \
         deadlock: the reason the eviction path runs under NoReclaim)"
    );

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader panicked");
    }
    println!("readers: {} lookups, every entry found intact", lookups.load(Ordering::Relaxed));

    // Outside the reclaim path, a Sleepable thread may wait for everything to run.
    cache.domain.rcu_barrier(&ctx);
    drop(_shrinker);
    let cache = Arc::into_inner(cache).expect("readers have exited");
    drop(cache);
    let (allocated, freed) =
        (ENTRIES_ALLOCATED.load(Ordering::Relaxed), ENTRIES_FREED.load(Ordering::Relaxed));
    println!("entries: {allocated} allocated, {freed} freed");
    assert_eq!(allocated, freed, "an entry was leaked or freed twice");
    println!("SUCCESS");
}
