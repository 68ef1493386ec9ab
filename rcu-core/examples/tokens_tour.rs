//! A tour of every context token against a live RCU workload: reader threads read a shared
//! configuration in read sections while a writer replaces it from a `Sleepable` context, waits
//! for grace periods inside a `NoReclaim` scope, and polls from an `Atomic` scope.
//!
//! Run: `cargo run --release -p rcu-core --example tokens_tour`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{Domain, Policy};

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
        // Sleepable: replace waits for a grace period, then drops the old value.
        config.replace(&ctx, Config::new(generation));

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

        // A read section from the writer thread too: it hands out an Atomic token.
        let guard = read_lock(&mut ctx);
        assert_eq!(config.load(&guard).generation, generation);
        assert!(!check_without_blocking(guard.ctx(), get_state()));
    }

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread panicked");
    }
    let stats = Domain::global().stats();
    println!(
        "{} updates, {} reads, {} grace periods ({} normal, {} expedited), {} stalls",
        generation,
        reads.load(Ordering::Relaxed),
        stats.gp_completed,
        stats.gps_normal,
        stats.gps_expedited,
        stats.stalls
    );
    assert!(stats.gps_normal + stats.gps_expedited >= generation, "too few grace periods");
    println!("SUCCESS");
}
