//! The server pattern: one shared `Arc<Service>` handle, used at once from a thread pool and
//! from async tasks on tokio's multi-threaded runtime. The handle holds no token (tokens
//! belong to threads); every method takes the caller's token, and where that token comes
//! from is the only thing that differs:
//!
//! - a pool thread acquires its root `Sleepable` once, at the top of its loop, and lends it
//!   to each request (`&mut ctx`): per call, nothing;
//! - an async task acquires one per call, in a block that ends before the next `.await`
//!   (`Sleepable::enter()`, narrowed to `no_reclaim()` for writes, the async row of the
//!   guide's decision table), and waits for grace periods with the `_async` futures, which
//!   never block an executor thread.
//!
//! Checks: every lookup sees one complete routing table, versions seen by one client only
//! move forward, and after `rcu_barrier_async` every replaced table has been dropped exactly
//! once. Also prints what a per-call token costs, measured here (ns per call).
//!
//! Run: `cargo run --release -p rcu-core --example async_server`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rcu_core::prelude::*;

const POOL_THREADS: usize = 2;
const TASKS: usize = 2000;
const PUBLISHERS: u64 = 200;

/// Routing tables dropped so far (each replaced one is dropped after its grace period).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What every request reads: immutable once published.
struct Routes {
    version: u64,
    backends: Vec<u64>,
    /// A function of the fields above: a reader that sees a mismatch saw a torn or freed table.
    check: u64,
}

impl Routes {
    fn new(version: u64) -> Routes {
        let backends: Vec<u64> = (0..4 + version % 5).map(|b| version * 100 + b).collect();
        Routes { version, check: checksum(version, &backends), backends }
    }

    fn is_intact(&self) -> bool {
        self.check == checksum(self.version, &self.backends)
    }
}

fn checksum(version: u64, backends: &[u64]) -> u64 {
    backends.iter().fold(version.wrapping_mul(0x9e37_79b9_7f4a_7c15), |s, b| s.rotate_left(5) ^ b)
}

impl Drop for Routes {
    fn drop(&mut self) {
        self.check = !self.check; // poison: a reader still holding it would notice
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared handle. `Send + Sync`, holds no token: the caller brings one to every call.
struct Service {
    routes: RcuCell<Routes>,
    /// The last version published. Publishers serialize on it: RCU orders readers against
    /// a writer, not writers against each other (two publishers taking versions 5 and 6 and
    /// setting them in the other order would move readers back from 6 to 5).
    version: Mutex<u64>,
}

impl Service {
    fn new() -> Service {
        Service { routes: RcuCell::new(Routes::new(0)), version: Mutex::new(0) }
    }

    /// A request: look a backend up. Any token: the read section borrows it, so its scope
    /// opens from `&mut`. Returns data copied out, never a reference into the section.
    fn route<C: Context>(&self, ctx: &mut C, key: u64) -> (u64, u64) {
        let guard = read_lock(ctx);
        let routes = self.routes.load(&guard);
        assert!(routes.is_intact(), "a reader saw a torn or freed routing table");
        (routes.version, routes.backends[key as usize % routes.backends.len()])
    }

    /// Publishes a new table; the old one is dropped after a grace period. `set` boxes the
    /// value, so it needs a token that may allocate; it runs under the writers' lock, so
    /// callers pass a token that never reclaims: a `NoReclaim` scope opened before the call,
    /// or on an executor a `NoReclaimRoot`.
    fn publish<C: MayAlloc>(&self, ctx: &C) -> u64 {
        let mut version = self.version.lock().expect("the writers' lock");
        *version += 1;
        self.routes.set(ctx, Routes::new(*version));
        *version
    }
}

fn main() {
    let service = Arc::new(Service::new());
    let stop = Arc::new(AtomicBool::new(false));

    // The thread pool: one root token per thread, lent to every request.
    let pool: Vec<_> = (0..POOL_THREADS)
        .map(|t| {
            let (service, stop) = (Arc::clone(&service), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut ctx = Sleepable::enter(); // once per thread
                let (mut requests, mut last) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let (version, _backend) = service.route(&mut ctx, requests + t as u64);
                    assert!(version >= last, "versions move forward on one thread");
                    last = version;
                    requests += 1;
                }
                requests
            })
        })
        .collect();

    // The async side: tokio's multi-threaded runtime, tasks far above its threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let (lookups, published) = runtime.block_on({
        let service = Arc::clone(&service);
        async move {
            let tasks: Vec<_> = (0..TASKS)
                .map(|i| {
                    let service = Arc::clone(&service);
                    tokio::spawn(async move { client(&service, i as u64).await })
                })
                .collect();
            let (mut lookups, mut published) = (0u64, 0u64);
            for task in tasks {
                let (l, p) = task.await.expect("a client task panicked");
                lookups += l;
                published += p;
            }
            // Everything retired before this point has been dropped once this completes.
            rcu_barrier_async().await;
            (lookups, published)
        }
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let pool_requests: u64 = pool.into_iter().map(|t| t.join().expect("pool thread")).sum();

    assert_eq!(published, PUBLISHERS, "every publishing task published");
    // The tables replaced so far (all but the current one) were dropped, each once.
    assert_eq!(DROPPED.load(Ordering::Relaxed), published, "every replaced table dropped once");
    println!(
        "async_server: {TASKS} tasks on 2 tokio threads and {POOL_THREADS} pool threads served \
         {lookups} async and {pool_requests} pool lookups while {published} tables were \
         published, in {elapsed:.2?}; every replaced table dropped once"
    );

    token_costs();
    println!("SUCCESS");
}

/// One async client: lookups with a per-call token, and every tenth client publishes a new
/// table and waits (without blocking its executor thread) until no reader can see the old
/// one.
async fn client(service: &Service, id: u64) -> (u64, u64) {
    let mut last = 0;
    let mut lookups = 0;
    for round in 0..8 {
        let (version, _backend) = {
            let mut ctx = Sleepable::enter(); // per call: a thread-local check (see below)
            service.route(&mut ctx, id + round)
        }; // the token ends before any .await
        assert!(version >= last, "versions move forward for one client");
        last = version;
        lookups += 1;
        tokio::task::yield_now().await;
    }
    if id % (TASKS as u64 / PUBLISHERS) != 0 {
        return (lookups, 0);
    }
    let version = {
        // On an executor thread: a root that never waits for reclaim nor runs frees.
        let ctx = NoReclaimRoot::enter();
        service.publish(&ctx)
    };
    // Every reader that could still see the previous table has finished once this completes.
    synchronize_rcu_async().await;
    let (seen, _) = {
        let mut ctx = Sleepable::enter();
        service.route(&mut ctx, id)
    };
    assert!(seen >= version, "after a grace period every new lookup sees the published table");
    (lookups + 1, 1)
}

/// What the per-call tokens cost on this machine: the async side's only overhead over the
/// pool's, which lends one root to every call.
fn token_costs() {
    const N: u32 = 2_000_000;
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..N {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(N)
    };
    let root = time(&|| drop(black_box(Sleepable::enter())));
    let no_reclaim = time(&|| {
        let mut root = Sleepable::enter();
        drop(black_box(root.no_reclaim()));
    });
    let no_reclaim_root = time(&|| drop(black_box(NoReclaimRoot::enter())));
    let section = time(&|| {
        let mut root = Sleepable::enter();
        drop(black_box(read_lock(&mut root)));
    });
    println!(
        "per-call token cost: Sleepable::enter()+drop {root:.1} ns; with a no_reclaim() scope \
         {no_reclaim:.1} ns; NoReclaimRoot::enter()+drop {no_reclaim_root:.1} ns; with a read \
         section instead {section:.1} ns"
    );
}
