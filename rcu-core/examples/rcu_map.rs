//! An RCU-protected hash map built from `AtomicPtr` and `Rcu<Node>` boxes: reader threads
//! look keys up with no lock and no reference count while one writer inserts, replaces and
//! removes entries, retiring every unlinked node with `kvfree_rcu`.
//!
//! Checks: a key that is never removed is always found (no entry is lost by a concurrent
//! unlink), every node a reader reaches is intact (no torn or freed entry), the final contents
//! equal the writer's own model, and every node allocated is freed exactly once.
//!
//! Run: `cargo run --release -p rcu-core --example rcu_map`

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;

const BUCKETS: usize = 256;
/// Keys `0..STABLE` are inserted first and only ever replaced, never removed.
const STABLE: u64 = 1024;
/// Keys `STABLE..STABLE + VOLATILE` come and go.
const VOLATILE: u64 = 1024;
/// At most this many reader threads; fewer on small machines, so the writer keeps a CPU
/// (a reader preempted inside its read section holds grace periods up until it runs again).
const MAX_READERS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(2);

static NODES_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static NODES_FREED: AtomicU64 = AtomicU64::new(0);

/// One entry. Immutable once published: an update publishes a new node.
struct Node {
    key: u64,
    value: u64,
    /// A function of `key` and `value`: a reader that sees a mismatch saw a torn or
    /// freed node.
    check: u64,
    next: AtomicPtr<Rcu<Node>>,
}

fn check_of(key: u64, value: u64) -> u64 {
    (key ^ value.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Node {
    fn boxed(key: u64, value: u64, next: *mut Rcu<Node>) -> Box<Rcu<Node>> {
        NODES_ALLOCATED.fetch_add(1, Ordering::Relaxed);
        Rcu::boxed(Node { key, value, check: check_of(key, value), next: AtomicPtr::new(next) })
    }

    fn is_intact(&self) -> bool {
        self.check == check_of(self.key, self.value)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Poison, so a reader that still held the node would notice.
        self.check = !self.check;
        NODES_FREED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A chained hash map of `u64 -> u64`, read under RCU.
///
/// Its nodes are retired to the global domain, so lookups must use a read guard of the
/// global domain (`rcu_core::read_lock`).
struct RcuMap {
    buckets: Box<[AtomicPtr<Rcu<Node>>]>,
    /// Serializes writers; readers never touch it.
    writer: Mutex<()>,
}

impl RcuMap {
    fn new() -> Self {
        RcuMap {
            buckets: (0..BUCKETS).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            writer: Mutex::new(()),
        }
    }

    fn bucket(&self, key: u64) -> &AtomicPtr<Rcu<Node>> {
        &self.buckets[(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % BUCKETS]
    }

    /// Looks `key` up. The node lives as long as the read section `guard` (of the global
    /// domain) does.
    fn get<'g>(&'g self, _guard: &'g ReadGuard<'_>, key: u64) -> Option<&'g Node> {
        // Acquire (here and for each `next`): pairs with the writer's Release stores, so the
        // node's fields are initialised before we read them.
        let mut p = self.bucket(key).load(Ordering::Acquire);
        // SAFETY: every pointer reachable from a bucket was published by the writer from a
        // live `Box<Rcu<Node>>`, and unlinked nodes are only freed by `kvfree_rcu` after a
        // grace period that began after the unlink; `guard` is a read section of that
        // (global) domain that began before the free could, so `p` stays valid for 'g.
        while let Some(node) = unsafe { p.as_ref() } {
            if node.key == key {
                return Some(node);
            }
            p = node.next.load(Ordering::Acquire);
        }
        None
    }

    /// Inserts or replaces. Takes the writer lock (so it may block) and allocates a node.
    /// Retires under the lock, so it does that with `NoReclaim` (the guide's decision
    /// table: holding a `Mutex`): a `Sleepable` retire could run callbacks inline or wait
    /// for memory to drain with every other writer stuck on the lock.
    fn insert<C: MaySleep>(&self, ctx: &mut C, key: u64, value: u64) -> Option<u64> {
        let ctx = ctx.no_reclaim(); // opened before the lock, ended after it
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut link = self.bucket(key);
        loop {
            // Relaxed (writer-side loads): the writer lock orders writers; only readers need
            // Acquire.
            let p = link.load(Ordering::Relaxed);
            if p.is_null() {
                // Not present: push a new node at the head of the chain.
                let head = self.bucket(key);
                let new = Node::boxed(key, value, head.load(Ordering::Relaxed));
                // Release: publishes the node's fields; pairs with the Acquire in `get`.
                head.store(Box::into_raw(new), Ordering::Release);
                return None;
            }
            // SAFETY: `p` is linked, and only the writer (we hold its lock) unlinks or frees.
            let node = unsafe { &*p };
            if node.key == key {
                // Replace: the new node takes over the old one's successor, then one
                // Release store swaps it in. Readers see the old node or the new one.
                let new = Node::boxed(key, value, node.next.load(Ordering::Relaxed));
                // Release: as above.
                link.store(Box::into_raw(new), Ordering::Release);
                let old_value = node.value;
                // SAFETY: `p` came from `Box::into_raw` and is now unlinked; no new reader
                // can reach it, and `kvfree_rcu` waits out the ones that might hold it.
                kvfree_rcu(&ctx, unsafe { Box::from_raw(p) });
                return Some(old_value);
            }
            link = &node.next;
        }
    }

    /// Removes `key`. Takes the writer lock and retires under it: `NoReclaim`, as in
    /// `insert`.
    fn remove<C: MaySleep>(&self, ctx: &mut C, key: u64) -> Option<u64> {
        let ctx = ctx.no_reclaim();
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut link = self.bucket(key);
        loop {
            // Relaxed: writer side, under the lock.
            let p = link.load(Ordering::Relaxed);
            // SAFETY: as in `insert`.
            let node = unsafe { p.as_ref() }?;
            if node.key == key {
                // Release: readers that reach the successor through `link` see it
                // initialised (it was published before, this only keeps the chain intact).
                link.store(node.next.load(Ordering::Relaxed), Ordering::Release);
                let value = node.value;
                // The unlinked node keeps its `next`: a reader standing on it still walks
                // on to the rest of the chain.
                // SAFETY: as in `insert`: unlinked, owned by us from here on.
                kvfree_rcu(&ctx, unsafe { Box::from_raw(p) });
                return Some(value);
            }
            link = &node.next;
        }
    }

    /// Every `(key, value)`, through exclusive access (no reader can be inside).
    fn snapshot(&mut self) -> HashMap<u64, u64> {
        let mut all = HashMap::new();
        for bucket in self.buckets.iter_mut() {
            let mut p = *bucket.get_mut();
            // SAFETY: `&mut self`: no reader or writer; linked nodes are live.
            while let Some(node) = unsafe { p.as_mut() } {
                all.insert(node.key, node.value);
                p = *node.next.get_mut();
            }
        }
        all
    }
}

impl Drop for RcuMap {
    fn drop(&mut self) {
        for bucket in self.buckets.iter_mut() {
            let mut p = *bucket.get_mut();
            while !p.is_null() {
                // SAFETY: `&mut self`: nobody else can reach the nodes; each linked node is
                // a live box, freed exactly once here (retired ones are no longer linked).
                let node = unsafe { Box::from_raw(p) };
                p = node.next.load(Ordering::Relaxed);
            }
        }
    }
}

/// A small xorshift generator: the writer's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct ReaderReport {
    lookups: u64,
    hits: u64,
}

fn reader(map: &RcuMap, stop: &AtomicBool, seed: u64) -> ReaderReport {
    let mut ctx = Sleepable::enter();
    let mut rng = Rng(seed);
    let mut report = ReaderReport { lookups: 0, hits: 0 };
    while !stop.load(Ordering::Relaxed) {
        // A few lookups per read section.
        let guard = read_lock(&mut ctx);
        for _ in 0..8 {
            let r = rng.next();
            let key = r % (STABLE + VOLATILE);
            match map.get(&guard, key) {
                Some(node) => {
                    assert!(node.is_intact(), "torn or freed node for key {key}");
                    assert_eq!(node.key, key);
                    report.hits += 1;
                }
                None => assert!(key >= STABLE, "stable key {key} was lost"),
            }
            report.lookups += 1;
        }
        drop(guard);
    }
    report
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let readers = (cpus - 1).clamp(1, MAX_READERS);
    println!(
        "rcu_map: {BUCKETS} buckets, {readers} reader thread(s) and 1 writer on {cpus} CPUs for \
         {RUN_FOR:?}; {STABLE} stable keys, {VOLATILE} volatile keys"
    );
    let map = Arc::new(RcuMap::new());
    let mut ctx = Sleepable::enter();
    let mut model = HashMap::new();
    for key in 0..STABLE {
        map.insert(&mut ctx, key, 0);
        model.insert(key, 0);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..readers)
        .map(|i| {
            let (map, stop) = (map.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || reader(&map, &stop, 0x1234_5678 + i as u64))
                .expect("spawn reader")
        })
        .collect();

    // The writer: replaces stable keys' values, inserts and removes volatile keys.
    let (mut inserts, mut replaces, mut removes) = (0u64, 0u64, 0u64);
    let mut rng = Rng(0xdead_beef);
    let start = Instant::now();
    while start.elapsed() < RUN_FOR {
        for _ in 0..256 {
            let r = rng.next();
            let value = r >> 16;
            match r % 4 {
                0 => {
                    let key = (r >> 8) % STABLE;
                    assert!(map.insert(&mut ctx, key, value).is_some(), "stable key {key} missing");
                    model.insert(key, value);
                    replaces += 1;
                }
                1 | 2 => {
                    let key = STABLE + (r >> 8) % VOLATILE;
                    let old = map.insert(&mut ctx, key, value);
                    assert_eq!(old, model.insert(key, value), "writer and model disagree");
                    if old.is_some() {
                        replaces += 1;
                    } else {
                        inserts += 1;
                    }
                }
                _ => {
                    let key = STABLE + (r >> 8) % VOLATILE;
                    assert_eq!(map.remove(&mut ctx, key), model.remove(&key));
                    removes += 1;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<_> = readers.into_iter().map(|r| r.join().expect("reader failed")).collect();

    let lookups: u64 = reports.iter().map(|r| r.lookups).sum();
    let hits: u64 = reports.iter().map(|r| r.hits).sum();
    let secs = elapsed.as_secs_f64();
    println!(
        "readers: {lookups} lookups ({:.1}M/s), {hits} hits; every stable key found, no torn or \
         freed node seen",
        lookups as f64 / secs / 1e6
    );
    println!(
        "writer: {inserts} inserts, {replaces} replacements, {removes} removes ({:.2}M ops/s); \
         unlinked nodes retired with kvfree_rcu",
        (inserts + replaces + removes) as f64 / secs / 1e6
    );

    // No reader is left: the map is ours alone. Its contents must equal the model.
    let mut map = Arc::into_inner(map).expect("readers have exited");
    let contents = map.snapshot();
    assert_eq!(contents, model, "the map lost or invented entries");
    println!("final contents match the writer's model: {} entries", contents.len());

    // Every retired node has been freed once `rcu_barrier` returns; dropping the map frees
    // the rest.
    rcu_barrier(&ctx);
    let retired = NODES_FREED.load(Ordering::Relaxed);
    drop(map);
    let (allocated, freed) =
        (NODES_ALLOCATED.load(Ordering::Relaxed), NODES_FREED.load(Ordering::Relaxed));
    println!(
        "nodes: {allocated} allocated, {freed} freed ({retired} by kvfree_rcu after their grace \
         periods, {} with the map)",
        freed - retired
    );
    assert_eq!(allocated, freed, "a node was leaked or freed twice");
    let stats = Domain::global().stats();
    println!(
        "global domain: {} grace periods, {} deferred frees run",
        stats.gp_completed, stats.callbacks_invoked
    );
    println!("SUCCESS");
}
