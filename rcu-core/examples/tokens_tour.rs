//! A tour of every context token against a live RCU workload: reader threads read a shared
//! configuration in read sections while a writer replaces it from a `Sleepable` context, waits
//! for grace periods inside a `NoReclaim` scope, and polls from an `Atomic` scope.
//!
//! Run: `cargo run --release -p rcu-core --example tokens_tour`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{Domain, Policy, Rcu};

/// The shared, read-mostly value. `checksum` lets readers detect a torn or freed value.
struct Config {
    generation: u64,
    checksum: u64,
}

impl Config {
    fn new(generation: u64) -> Self {
        Config { generation, checksum: generation.wrapping_mul(0x9e37_79b9_7f4a_7c15) }
    }

    fn is_intact(&self) -> bool {
        self.checksum == self.generation.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

static CALLBACKS: AtomicU64 = AtomicU64::new(0);
static CLOSURES: AtomicU64 = AtomicU64::new(0);

/// An RCU callback: runs on the domain's worker with an `Atomic` token.
fn count_callback(obj: Box<Rcu<u64>>, _ctx: &Atomic<'_>) {
    assert!(**obj > 0);
    drop(obj); // the callback owns the object: here it frees it
    CALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Code that may block and allocate but must not reclaim: takes any `MaySleep` token.
fn flush_from_reclaim_path<C: MaySleep>(ctx: &C) {
    synchronize_rcu_expedited(ctx);
}

/// Code that must never block: takes any token and only polls.
fn check_without_blocking<C: Context>(_ctx: &C, cookie: GpCookie) -> bool {
    poll(cookie)
}

fn main() {
    let config = Arc::new(RcuCell::new(Config::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..2)
        .map(|i| {
            let (config, stop, reads) = (config.clone(), stop.clone(), reads.clone());
            std::thread::Builder::new()
                .name(format!("reader-{i}"))
                .spawn(move || {
                    let mut ctx = Sleepable::enter();
                    let mut last = 0;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let guard = read_lock(&mut ctx);
                        let cfg = config.load(&guard);
                        assert!(cfg.is_intact(), "reader saw a torn or freed config");
                        assert!(cfg.generation >= last, "generation went backwards");
                        last = cfg.generation;
                        n += 1;
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                })
                .expect("spawn reader")
        })
        .collect();

    let mut ctx = Sleepable::enter();
    println!(
        "policies: Sleepable -> {:?}, NoReclaim -> {:?}, Atomic -> {:?}",
        Policy::of::<Sleepable>(),
        Policy::of::<NoReclaim<'_>>(),
        Policy::of::<Atomic<'_>>()
    );

    let start = Instant::now();
    let mut generation = 0;
    while start.elapsed() < Duration::from_secs(2) {
        generation += 1;
        // Sleepable: publish a new value; the old one is freed after a grace period.
        config.set(&ctx, Config::new(generation));

        // NoReclaim: a scope that may block on grace periods but never reclaims.
        {
            let no_reclaim = ctx.no_reclaim();
            flush_from_reclaim_path(&no_reclaim);
        }

        // Atomic: take a polled cookie and check it without blocking.
        let cookie = {
            let atomic = ctx.atomic();
            let cookie = start_poll(&atomic);
            let _done_now = check_without_blocking(&atomic, cookie);
            cookie
        };
        cond_synchronize(&ctx, cookie);
        assert!(poll(cookie), "cond_synchronize returned before its grace period");

        // A read section from the writer thread too: it hands out an Atomic token, which
        // may queue deferred work (it never allocates or blocks doing so).
        let guard = read_lock(&mut ctx);
        assert_eq!(config.load(&guard).generation, generation);
        assert!(!check_without_blocking(guard.ctx(), get_state()));
        kvfree_rcu(guard.ctx(), Rcu::boxed(Config::new(generation)));
        call_rcu(guard.ctx(), Rcu::boxed(generation), count_callback);
        drop(guard);

        // NoReclaim may allocate (a boxed closure) but never waits to reclaim.
        let no_reclaim = ctx.no_reclaim();
        call_rcu_fn(&no_reclaim, move |_atomic| {
            CLOSURES.fetch_add(1, Ordering::Relaxed);
        });
        kvfree_rcu_mightsleep(&no_reclaim, Box::new(generation));
    }
    // Sleepable (MayReclaim): wait until everything queued above has run.
    rcu_barrier(&ctx);
    assert_eq!(CALLBACKS.load(Ordering::Relaxed), generation, "a callback was lost");
    assert_eq!(CLOSURES.load(Ordering::Relaxed), generation, "a closure was lost");

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread panicked");
    }
    let stats = Domain::global().stats();
    let alloc = Domain::global().alloc_stats();
    println!(
        "{} updates, {} reads, {} grace periods ({} normal, {} expedited), {} stalls",
        generation,
        reads.load(Ordering::Relaxed),
        stats.gp_completed,
        stats.gps_normal,
        stats.gps_expedited,
        stats.stalls
    );
    println!(
        "deferred: {} queued, {} run, {} pending; blocks: {} allocated, {} pooled; fallbacks: {:?}",
        stats.callbacks_queued,
        stats.callbacks_invoked,
        stats.callbacks_pending,
        alloc.blocks_allocated,
        alloc.blocks_pooled,
        alloc.fallbacks
    );
    assert!(stats.gps_normal + stats.gps_expedited >= generation, "too few grace periods");
    println!("SUCCESS");
}
