//! Property tests: random sequences of map operations, with every token, against
//! `std::collections::HashMap` as the model, while reader threads look entries up and
//! iterate during every step, checking each value's integrity.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use rcu_collections::{Computed, Node, RcuHashMap};
use rcu_core::prelude::*;

/// A value that knows its key and carries a checksum; poisoned when dropped.
#[derive(Debug)]
struct Val {
    key: u64,
    n: u64,
    check: u64,
}

fn check_of(key: u64, n: u64) -> u64 {
    (key ^ n.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

impl Val {
    fn new(key: u64, n: u64) -> Self {
        Val { key, n, check: check_of(key, n) }
    }

    fn intact(&self, key: u64) -> bool {
        self.key == key && self.check == check_of(self.key, self.n)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        self.check = 0; // poison: a reader that still sees it fails
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    /// Preallocated node, inserted under `Atomic`.
    InsertNodeAtomic(u64, u64),
    Remove(u64),
    RemoveAtomic(u64),
    Update(u64, u64),
    /// `Some(n)`: set to n (or insert); `None`: remove.
    Compute(u64, Option<u64>),
    Clear,
    Maintain,
    /// Under NoReclaim.
    InsertNoReclaim(u64, u64),
}

fn op(keys: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..keys, any::<u64>()).prop_map(|(k, n)| Op::Insert(k, n)),
        3 => (0..keys, any::<u64>()).prop_map(|(k, n)| Op::InsertNodeAtomic(k, n)),
        2 => (0..keys, any::<u64>()).prop_map(|(k, n)| Op::InsertNoReclaim(k, n)),
        4 => (0..keys).prop_map(Op::Remove),
        2 => (0..keys).prop_map(Op::RemoveAtomic),
        2 => (0..keys, any::<u64>()).prop_map(|(k, n)| Op::Update(k, n)),
        2 => (0..keys, proptest::option::of(any::<u64>())).prop_map(|(k, n)| Op::Compute(k, n)),
        1 => Just(Op::Maintain),
        1 => prop_oneof![99 => Just(Op::Maintain), 1 => Just(Op::Clear)],
    ]
}

/// Readers that look up random keys and iterate until told to stop, failing on a torn,
/// poisoned or misplaced value. Returns how many lookups they made.
fn spawn_readers(
    map: &Arc<RcuHashMap<u64, Val>>,
    keys: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..2)
        .map(|id: u64| {
            let (map, stop) = (Arc::clone(map), Arc::clone(stop));
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter();
                let mut reads = 0u64;
                let mut x = id + 1;
                loop {
                    let guard = read_lock(&mut ctx);
                    for _ in 0..64 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let key = (x >> 33) % keys;
                        if let Some(v) = map.get(&key, &guard) {
                            assert!(v.intact(key), "reader saw a bad value for {key}: {v:?}");
                        }
                        reads += 1;
                    }
                    for (k, v) in map.iter(&guard) {
                        assert!(v.intact(*k), "iterator saw a bad value for {k}: {v:?}");
                    }
                    drop(guard);
                    // Relaxed: a stop flag; the join orders the rest.
                    if stop.load(Ordering::Relaxed) {
                        return reads;
                    }
                }
            })
        })
        .collect()
}

fn run(ops: Vec<Op>, keys: u64) {
    let map = Arc::new(RcuHashMap::<u64, Val>::new());
    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_readers(&map, keys, &stop);
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut ctx = Sleepable::enter();
    drop(read_lock(&mut ctx)); // registers the thread, so Atomic writes may enter sections

    for op in ops {
        match op {
            Op::Insert(k, n) => {
                assert_eq!(map.insert(&mut ctx, k, Val::new(k, n)), model.insert(k, n).is_none());
            }
            Op::InsertNodeAtomic(k, n) => {
                let node = Node::boxed(k, Val::new(k, n));
                let mut spin = ctx.atomic();
                assert_eq!(map.insert_node(&mut spin, node), model.insert(k, n).is_none());
            }
            Op::InsertNoReclaim(k, n) => {
                let mut nr = ctx.no_reclaim();
                assert_eq!(map.insert(&mut nr, k, Val::new(k, n)), model.insert(k, n).is_none());
            }
            Op::Remove(k) => assert_eq!(map.remove(&mut ctx, &k), model.remove(&k).is_some()),
            Op::RemoveAtomic(k) => {
                let mut spin = ctx.atomic();
                assert_eq!(map.remove(&mut spin, &k), model.remove(&k).is_some());
            }
            Op::Update(k, n) => {
                let expect = model.get_mut(&k).map(|m| *m = m.wrapping_add(n)).is_some();
                let done = map.update(&mut ctx, &k, |v| Val::new(k, v.n.wrapping_add(n)));
                assert_eq!(done, expect);
            }
            Op::Compute(k, n) => {
                let expect = match (model.contains_key(&k), n) {
                    (false, None) => Computed::Unchanged,
                    (true, None) => Computed::Removed,
                    (false, Some(_)) => Computed::Inserted,
                    (true, Some(_)) => Computed::Updated,
                };
                match n {
                    Some(n) => model.insert(k, n),
                    None => model.remove(&k),
                };
                let got = map.compute(&mut ctx, k, |_| n.map(|n| Val::new(k, n)));
                assert_eq!(got, expect);
            }
            Op::Clear => {
                map.clear(&mut ctx.atomic());
                model.clear();
            }
            Op::Maintain => {
                map.maintain(&mut ctx);
                assert!(!map.resize_due());
            }
        }
        // After every step: the map agrees with the model.
        assert_eq!(map.len(), model.len());
        let guard = read_lock(&mut ctx);
        for k in 0..keys {
            let got = map.get(&k, &guard).map(|v| {
                assert!(v.intact(k));
                v.n
            });
            assert_eq!(got, model.get(&k).copied(), "key {k}");
        }
    }
    let guard = read_lock(&mut ctx);
    let mut seen: Vec<(u64, u64)> = map.iter(&guard).map(|(k, v)| (*k, v.n)).collect();
    seen.sort_unstable();
    let mut expect: Vec<(u64, u64)> = model.into_iter().collect();
    expect.sort_unstable();
    assert_eq!(seen, expect);
    drop(guard);
    // Relaxed: a stop flag (the joins order the rest).
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("a reader failed") > 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Few keys: long chains, replacements, removals of present keys.
    #[test]
    fn small_key_space(ops in proptest::collection::vec(op(24), 1..200)) {
        run(ops, 24);
    }

    /// Many keys: the table grows, and shrinks after clears and removals.
    #[test]
    fn growing_and_shrinking(ops in proptest::collection::vec(op(400), 200..800)) {
        run(ops, 400);
    }
}

/// The table grows past its load factor and shrinks back, with lookups right all along.
#[test]
fn grows_and_shrinks() {
    let map = RcuHashMap::new();
    let mut ctx = Sleepable::enter();
    let start = map.buckets();
    for i in 0..10_000u64 {
        map.insert(&mut ctx, i, i * 2);
    }
    let grown = map.buckets();
    assert!(grown >= 8192, "{grown} buckets for 10000 entries");
    for i in 0..10_000u64 {
        assert!(map.remove(&mut ctx, &i));
    }
    map.maintain(&mut ctx);
    while map.maintain(&mut ctx) {}
    assert!(map.buckets() < grown && map.buckets() >= start, "{} buckets", map.buckets());
    assert!(map.is_empty());
}

/// Removed and replaced values are dropped (after a grace period), every one exactly once,
/// and the map's drop frees the rest.
#[test]
fn every_value_dropped_once() {
    struct Counted(Arc<AtomicU64>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let drops = Arc::new(AtomicU64::new(0));
    let mut ctx = Sleepable::enter();
    let map = RcuHashMap::new();
    for i in 0..1000u64 {
        map.insert(&mut ctx, i % 300, Counted(Arc::clone(&drops)));
    }
    for i in 0..100u64 {
        map.remove(&mut ctx, &i);
    }
    rcu_barrier(&ctx);
    assert_eq!(drops.load(Ordering::Relaxed), 800, "700 replaced + 100 removed");
    drop(map);
    assert_eq!(drops.load(Ordering::Relaxed), 1000);
}
