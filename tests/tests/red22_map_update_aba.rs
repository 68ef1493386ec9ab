//! Red team, issue 22 (collections): `RcuHashMap::update`/`compute` decide on a node found in
//! one read section, end it, and then, in a new read section under the bucket lock, compare
//! the chain's node with that pointer (`cur != seen`, map/write.rs). Between the two sections
//! nothing keeps `seen` allocated: another writer can remove it, a grace period can pass, its
//! memory can be freed and reused by a new node of the same key at the same address. The
//! comparison then succeeds on a different node (ABA), and the update replaces the newer
//! value with `f(stale value)`: an update the docs promise is re-run "if another writer
//! changed the entry meanwhile" is applied to a value that is gone (a lost update).
//!
//! The program: eight threads increment one key's counter (four with `update`, four with
//! `compute`) beside two spinning threads that make them be preempted between the two
//! sections, on a domain with small blocks so that freed node addresses come back quickly.
//! Every successful update must be one increment of the final count. At 11bf000 runs of
//! 15-30 s lost 22 to 13,317 updates in 7 of 17 runs; the fixed code compares in the
//! section that found the node. Safe code only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcu_collections::{Computed, RcuHashMap};
use rcu_core::prelude::*;

const KEY: u64 = 7;

/// Updaters only bump a counter, with `update` (four threads) and `compute` (four threads). Every `true`
/// returned by `update` must be one increment of the final count; a lost update (an update
/// whose `seen` node was replaced, freed, and its address reused by a newer node of the key
/// before it took the bucket lock) makes the final count smaller.
#[test]
fn concurrent_updates_are_never_lost() {
    // Small blocks: a retired node is freed a few retirements later, so node addresses
    // cycle among a few chunks of the allocator's cache.
    let domain = Arc::new(Domain::new(
        rcu_core::DomainConfig::new()
            .name("aba")
            .alloc(rcu_core::AllocConfig::new().small_blocks()),
    ));
    let map: Arc<RcuHashMap<u64, u64>> = Arc::new(RcuHashMap::with_capacity_and_hasher_in(
        0,
        std::collections::hash_map::RandomState::new(),
        domain.clone(),
    ));
    {
        let mut ctx = Sleepable::enter();
        map.insert(&mut ctx, KEY, 0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
        }));
    }
    for t in 0..8 {
        let (map, stop, succeeded) = (map.clone(), stop.clone(), succeeded.clone());
        threads.push(std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            while !stop.load(Ordering::Relaxed) {
                if t % 2 == 0 {
                    assert!(map.update(&mut ctx, &KEY, |n| n + 1), "the key is never removed");
                } else {
                    let done = map.compute(&mut ctx, KEY, |n| Some(n.expect("never removed") + 1));
                    assert_eq!(done, Computed::Updated);
                }
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let mut ctx = Sleepable::enter();
    let count = *map.get(&KEY, &domain.read_lock(&mut ctx)).unwrap();
    let total = succeeded.load(Ordering::SeqCst);
    eprintln!("red22: {total} successful updates, final count {count}, lost {}", total - count);
    assert_eq!(count, total, "updates were lost (ABA on a reused node address)");
}
