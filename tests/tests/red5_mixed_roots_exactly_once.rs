//! Red team, round 5 (`NoReclaimRoot`): every free made on a thread that switches between a
//! `NoReclaimRoot` and a `Sleepable` root is dropped exactly once, and `rcu_barrier` sees it.
//!
//! Suspicion: `seal` decides where a block's work goes from the thread's state at the moment
//! it seals (`no_reclaim_roots() != 0`: neither parked nor tagged), not from the frees in it,
//! so blocks half-filled under one kind of root and sealed under the other, parked blocks
//! left from a `Sleepable` phase, blocks given back to a thread that has since taken a
//! `NoReclaimRoot`, and threads that exit with a root leaked could lose a free, run one
//! twice, or hide one from `rcu_barrier` (DESIGN §5.1: "Every value is dropped exactly
//! once", "`rcu_barrier` covers everything queued before it, on every path (parked, sealed,
//! given back, handed over at thread exit)"). And the latency claim: no drop runs on a thread
//! while one of its `NoReclaimRoot`s lives.
//!
//! Mechanism: two threads free tracked values in runs of pseudo-random length (1 to 600, a
//! block holds about 250), switching between eight ways of freeing (a `NoReclaimRoot`, its
//! atomic scope, its headless free, a `Sleepable` root, its no-reclaim and atomic scopes, a
//! `Sleepable` root with a `NoReclaimRoot` opened beside it, an owned domain under each root,
//! an `RcuCell` replaced under either), each exiting with a `NoReclaimRoot` leaked over a
//! half-filled block. Then `rcu_barrier` on both domains, and every value's drop count.
//!
//! Alone in its file: it counts drops process-wide.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use rcu_core::prelude::*;
use rcu_core::thread_state::no_reclaim_roots;
use rcu_core::{Domain, DomainConfig};

const THREADS: u64 = 2;
const PER_THREAD: u64 = 60_000;
const FREED: usize = (THREADS * PER_THREAD) as usize;
/// The threads' ids, the cell's first value, and the one thread 0 frees under its leaked root.
const TOTAL: usize = FREED + 2;

#[allow(clippy::declare_interior_mutable_const)] // the array's initialiser
const ZERO: AtomicU8 = AtomicU8::new(0);
/// How many times each value was dropped.
static DROPS: [AtomicU8; TOTAL] = [ZERO; TOTAL];
/// Drops that ran on a thread while one of its `NoReclaimRoot`s lived.
static UNDER_A_ROOT: AtomicU64 = AtomicU64::new(0);
/// Callbacks run (they drop their value too).
static CALLBACKS: AtomicU64 = AtomicU64::new(0);

struct Tracked(usize);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS[self.0].fetch_add(1, Ordering::SeqCst);
        if no_reclaim_roots() != 0 {
            UNDER_A_ROOT.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn callback(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
    drop(obj);
}

/// A small deterministic generator (xorshift), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn free_run(
    mode: u64,
    ids: &mut impl Iterator<Item = usize>,
    len: u64,
    owned: &Domain,
    cell: &RcuCell<Tracked>,
) {
    let mut next = || ids.next();
    match mode {
        0 => {
            let root = NoReclaimRoot::enter();
            for _ in 0..len {
                let Some(id) = next() else { return };
                kvfree_rcu(&root, Rcu::boxed(Tracked(id)));
            }
        }
        1 => {
            let mut root = NoReclaimRoot::enter();
            let spin = root.atomic();
            for i in 0..len {
                let Some(id) = next() else { return };
                if i % 2 == 0 {
                    kvfree_rcu(&spin, Rcu::boxed(Tracked(id)));
                } else {
                    call_rcu(&spin, Rcu::boxed(Tracked(id)), callback);
                }
            }
        }
        2 => {
            let root = NoReclaimRoot::enter();
            for _ in 0..len {
                let Some(id) = next() else { return };
                kvfree_rcu_mightsleep(&root, Box::new(Tracked(id)));
            }
        }
        3 => {
            let mut ctx = Sleepable::enter();
            for i in 0..len {
                let Some(id) = next() else { return };
                match i % 3 {
                    0 => kvfree_rcu(&ctx, Rcu::boxed(Tracked(id))),
                    1 => kvfree_rcu(&ctx.no_reclaim(), Rcu::boxed(Tracked(id))),
                    _ => kvfree_rcu(&ctx.atomic(), Rcu::boxed(Tracked(id))),
                }
            }
        }
        4 => {
            // A Sleepable root with a NoReclaimRoot opened beside it: the Sleepable one may
            // not be used meanwhile (every free with it panics), its scopes may.
            let mut ctx = Sleepable::enter();
            let root = NoReclaimRoot::enter();
            for i in 0..len {
                let Some(id) = next() else { return };
                if i % 2 == 0 {
                    kvfree_rcu(&root, Rcu::boxed(Tracked(id)));
                } else {
                    kvfree_rcu(&ctx.atomic(), Rcu::boxed(Tracked(id)));
                }
            }
            drop(root);
            drop(ctx.no_reclaim()); // pays what it may
        }
        5 => {
            let root = NoReclaimRoot::enter();
            for i in 0..len {
                let Some(id) = next() else { return };
                if i % 2 == 0 {
                    owned.kvfree_rcu(&root, Rcu::boxed(Tracked(id)));
                } else {
                    owned.call_rcu(&root, Rcu::boxed(Tracked(id)), callback);
                }
            }
        }
        6 => {
            let ctx = Sleepable::enter();
            for _ in 0..len {
                let Some(id) = next() else { return };
                owned.kvfree_rcu(&ctx, Rcu::boxed(Tracked(id)));
            }
        }
        _ => {
            for i in 0..len {
                let Some(id) = next() else { return };
                if i % 2 == 0 {
                    cell.set(&NoReclaimRoot::enter(), Tracked(id));
                } else {
                    cell.set(&Sleepable::enter(), Tracked(id));
                }
            }
        }
    }
}

#[test]
fn frees_across_root_kinds_are_dropped_exactly_once_and_seen_by_the_barrier() {
    let owned: &'static Domain =
        Box::leak(Box::new(Domain::new(DomainConfig::new().name("red5-mixed".to_owned()))));
    // The cell's first value is replaced (and freed) like the others.
    let cell: &'static RcuCell<Tracked> = Box::leak(Box::new(RcuCell::new(Tracked(FREED))));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let start = (t * PER_THREAD) as usize;
                let mut ids = start..start + PER_THREAD as usize;
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                while !ids.is_empty() {
                    let mode = rng.next() % 8;
                    let len = 1 + rng.next() % 600;
                    free_run(mode, &mut ids, len, owned, cell);
                }
                assert_eq!(no_reclaim_roots(), 0);
                // Exits with a NoReclaimRoot leaked over a half-filled block.
                let root: &'static mut NoReclaimRoot = Box::leak(Box::new(NoReclaimRoot::enter()));
                if t == 0 {
                    kvfree_rcu(&*root, Rcu::boxed(Tracked(FREED + 1)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ctx = Sleepable::enter();
    rcu_barrier(&ctx);
    owned.rcu_barrier(&ctx);
    // Everything was freed but the cell's current value.
    let current = {
        let mut ctx = Sleepable::enter();
        let guard = read_lock(&mut ctx);
        cell.load(&guard).0
    };
    let mut wrong = Vec::new();
    for (id, count) in DROPS.iter().enumerate() {
        let count = count.load(Ordering::SeqCst);
        let expected = u8::from(id != current);
        if count != expected {
            wrong.push((id, count, expected));
        }
    }
    assert!(
        wrong.is_empty(),
        "values dropped a wrong number of times (id, drops, expected): {:?}",
        &wrong[..wrong.len().min(20)]
    );
    assert_eq!(UNDER_A_ROOT.load(Ordering::SeqCst), 0, "drops ran under a NoReclaimRoot");
    assert!(CALLBACKS.load(Ordering::SeqCst) > 0);
}
