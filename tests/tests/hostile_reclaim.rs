//! Hostile programs of issue 21 (reclamation that never loses, doubles or stalls a free),
//! each of which broke the runtime at 1acacce:
//! - zero-sized values dropped twice (the runtime read meaning into the low bits of the
//!   user's pointer, and `Box<ZST>` is the dangling pointer `align_of`);
//! - a `Sleepable` free over budget waiting without bound for a grace period held by a
//!   reader that waits for the freeing thread.
//!
//! (The barrier race is in `alloc_count.rs`, which counts deallocations; the signal-handler
//! stall in `signals_bracket.rs`; fork in `fork_registrations.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{Pending, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig};

/// Drops of `Unit<K>`, one counter per `K` (the tests run in parallel).
static UNIT_DROPS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// A zero-sized value of alignment 1: `Box::new(Unit::<K>)` is the dangling pointer `0x1`.
struct Unit<const K: usize>;

impl<const K: usize> Drop for Unit<K> {
    fn drop(&mut self) {
        UNIT_DROPS[K].fetch_add(1, Ordering::SeqCst);
    }
}

/// Zero-sized values of alignment 2 and 8 too (dangling pointers `0x2`, `0x8`).
#[repr(align(2))]
struct Unit2;
#[repr(align(8))]
struct Unit8;

static UNIT2_DROPS: AtomicUsize = AtomicUsize::new(0);
static UNIT8_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Unit2 {
    fn drop(&mut self) {
        UNIT2_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Unit8 {
    fn drop(&mut self) {
        UNIT8_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// 10,000 `kvfree_rcu_mightsleep(&no_reclaim, Box::new(Unit))` on a private domain ran
/// 19,614 drops at 1acacce: the worker dropped each value as the "drop part" of a split
/// entry, and the owner dropped it again as the "deallocation part".
#[test]
fn zero_sized_values_freed_under_no_reclaim_are_dropped_once() {
    const N: usize = 10_000;
    let domain = Domain::new(DomainConfig::new().name("zst-no-reclaim"));
    let mut ctx = Sleepable::enter();
    {
        let nr = ctx.no_reclaim();
        for _ in 0..N {
            domain.kvfree_rcu_mightsleep(&nr, Box::new(Unit::<0>));
            domain.kvfree_rcu_mightsleep(&nr, Box::new(Unit2));
            domain.kvfree_rcu_mightsleep(&nr, Box::new(Unit8));
        }
    }
    domain.rcu_barrier(&ctx);
    assert_eq!(UNIT_DROPS[0].load(Ordering::SeqCst), N, "alignment 1");
    assert_eq!(UNIT2_DROPS.load(Ordering::SeqCst), N, "alignment 2");
    assert_eq!(UNIT8_DROPS.load(Ordering::SeqCst), N, "alignment 8");
}

/// 5,000 `Sleepable` frees from a thread that then exits ran 5,759 drops at 1acacce.
#[test]
fn zero_sized_values_freed_by_an_exiting_thread_are_dropped_once() {
    const N: usize = 5_000;
    for (k, global) in [(1, false), (2, true)] {
        let domain = Arc::new(Domain::new(DomainConfig::new().name("zst-exit")));
        let d = domain.clone();
        std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            for _ in 0..N {
                if global {
                    kvfree_rcu_mightsleep(&ctx, Box::new(Unit::<2>));
                } else {
                    d.kvfree_rcu_mightsleep(&ctx, Box::new(Unit::<1>));
                }
            }
        })
        .join()
        .unwrap();
        let ctx = Sleepable::enter();
        if global {
            rcu_barrier(&ctx);
        } else {
            domain.rcu_barrier(&ctx);
        }
        assert_eq!(UNIT_DROPS[k].load(Ordering::SeqCst), N, "global domain: {global}");
    }
}

/// Zero-sized values under every token on the global domain, from a thread that stays.
#[test]
fn zero_sized_values_freed_with_every_token_are_dropped_once() {
    const N: usize = 3_000;
    let mut ctx = Sleepable::enter();
    for _ in 0..N {
        kvfree_rcu_mightsleep(&ctx, Box::new(Unit::<3>));
        kvfree_rcu_mightsleep(&ctx.no_reclaim(), Box::new(Unit::<3>));
        // A zero-sized value inside an `Rcu` (headed: every token).
        kvfree_rcu(&ctx.atomic(), Rcu::boxed(Unit::<3>));
    }
    rcu_barrier(&ctx);
    assert_eq!(UNIT_DROPS[3].load(Ordering::SeqCst), 3 * N);
}

/// A `Sleepable` free over budget waits for a grace period. A reader that waits for the
/// freeing thread (here: for its call to return) holds that grace period: at 1acacce the two
/// waited for each other for ever. The wait is bounded: the call returns while the reader is
/// still inside, and the reader then leaves.
#[test]
fn a_sleepable_free_over_budget_never_waits_for_a_reader_that_waits_for_it() {
    let domain = Arc::new(Domain::new(DomainConfig::new().name("drain-bound").alloc(
        AllocConfig::new().budget_bytes(0), // always over budget
    )));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (freed_tx, freed) = mpsc::channel::<()>();
    let reader = {
        let domain = domain.clone();
        Pending::spawn("waits-for-the-freer", move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            // Waits, inside its section, for the freeing thread's call to return.
            let outcome = freed.recv_timeout(2 * PATIENCE);
            drop(guard);
            outcome.is_ok()
        })
    };
    entered.recv().unwrap();
    let freer = {
        let domain = domain.clone();
        Pending::spawn("frees-over-budget", move || {
            let ctx = Sleepable::enter();
            // Frees until three of them have waited on backpressure (each at most 100 ms,
            // then falling back): the first, with nothing pending, cannot wait; how many go
            // in before the domain has something pending to wait for depends on when the
            // worker's collection charges the first block (a slow build, a sanitizer, can
            // make it early), so count the waits rather than the frees.
            let mut i = 0u64;
            while domain.alloc_stats().backpressure_waits < 3 {
                assert!(i < 100_000, "no free ever waited on backpressure");
                domain.kvfree_rcu(&ctx, Rcu::boxed([i; 8]));
                i += 1;
            }
            freed_tx.send(()).unwrap();
        })
    };
    freer.join("a Sleepable free over budget waited for a reader that waits for it");
    assert!(reader.join("the reader"), "the reader was never released by the free");
    let ctx = Sleepable::enter();
    domain.rcu_barrier(&ctx);
    assert!(domain.alloc_stats().backpressure_waits > 0, "the frees never waited at all");
}
