//! An async server whose handlers hold a route across an awaited backend call: the route
//! table is an `RcuHashMap` on a sleepable domain (`SrcuStruct`), and each request reads it
//! under an owned guard (`down_read`), which is `Send` and lives across `.await`. Nothing is
//! copied or reference-counted per request; a route removed or replaced meanwhile is dropped
//! only after every guard that could see it has dropped.
//!
//! Checks: every handler finds its route intact before and after its awaits (a dropped route
//! is poisoned), and after `srcu_barrier_async` every replaced route has been dropped exactly
//! once. Prints the request count and how long the domain's grace periods took.
//!
//! Run: `cargo run --release -p rcu-collections --example srcu_routes`

use std::collections::hash_map::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, SrcuStruct};

const PATHS: u64 = 64;
const REQUESTS: u64 = 4000;
const UPDATES: u64 = 400;

/// Routes made and dropped: equal at the end.
static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// A route: immutable once published.
struct Route {
    path: u64,
    version: u64,
    backend: String,
    /// A function of the fields above; poisoned on drop.
    check: u64,
}

impl Route {
    fn new(path: u64, version: u64) -> Route {
        MADE.fetch_add(1, Ordering::Relaxed);
        let backend = format!("10.0.{}.{}:8080", path, version % 250);
        Route { check: checksum(path, version, &backend), path, version, backend }
    }

    fn is_intact(&self) -> bool {
        self.check == checksum(self.path, self.version, &self.backend)
    }
}

fn checksum(path: u64, version: u64, backend: &str) -> u64 {
    backend.bytes().fold(path ^ version.rotate_left(17), |s, b| s.rotate_left(5) ^ u64::from(b))
}

impl Drop for Route {
    fn drop(&mut self) {
        self.check = !self.check;
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The shared handle: the sleepable domain and the table on it.
struct Router {
    domain: Arc<SrcuStruct>,
    routes: RcuHashMap<u64, Route>,
}

impl Router {
    fn new() -> Router {
        let domain = Arc::new(SrcuStruct::new(DomainConfig::new().name("routes")));
        let routes = RcuHashMap::with_capacity_and_hasher_in(0, RandomState::new(), domain.clone());
        let mut ctx = Sleepable::enter();
        for path in 0..PATHS {
            routes.insert(&mut ctx, path, Route::new(path, 0));
        }
        Router { domain, routes }
    }

    /// A request: find the route, call its backend (an await), then use the route again.
    async fn handle(&self, path: u64, awaits: u32) -> u64 {
        // The token is used only to begin the section (the async row of the guide's table).
        let guard = self.domain.down_read(&NoReclaimRoot::enter());
        let route = self.routes.get(&path, &guard).expect("every path has a route");
        assert!(route.is_intact(), "a handler found a dropped route");
        for _ in 0..awaits {
            backend_call(&route.backend).await;
        }
        // Still the same route, still alive, whatever the admin task did meanwhile.
        assert!(route.is_intact(), "a route was dropped while a handler held it");
        assert_eq!(route.path, path);
        route.version
    }

    /// The admin: replace a route (the old one is dropped after the domain's grace period).
    fn update(&self, path: u64, version: u64) {
        let mut ctx = NoReclaimRoot::enter();
        self.routes.insert(&mut ctx, path, Route::new(path, version));
    }
}

/// Stands for a network round trip.
async fn backend_call(_backend: &str) {
    tokio::time::sleep(Duration::from_micros(200)).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let router = Arc::new(Router::new());
    let start = Instant::now();
    let versions_seen = runtime.block_on(async {
        let admin = {
            let router = router.clone();
            tokio::spawn(async move {
                for version in 1..=UPDATES {
                    router.update(version % PATHS, version);
                    if version % 50 == 0 {
                        // Waits without blocking an executor thread.
                        router.domain.synchronize_srcu_async().await;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        let handlers: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let router = router.clone();
                tokio::spawn(async move { router.handle(i % PATHS, 1 + (i % 3) as u32).await })
            })
            .collect();
        let mut versions = 0;
        for handler in handlers {
            versions += handler.await.expect("a handler panicked");
        }
        admin.await.expect("the admin task panicked");
        router.domain.srcu_barrier_async().await;
        versions
    });
    let elapsed = start.elapsed();
    let stats = router.domain.stats();
    drop(router);
    // The table's remaining routes are dropped with the map (no reader is left).
    let (made, dropped) = (MADE.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed));
    assert_eq!(made, dropped, "{made} routes made, {dropped} dropped");
    println!(
        "srcu_routes: {REQUESTS} requests held their route across 1-3 awaits while {UPDATES} \
         routes were replaced, in {:.1} ms; versions seen sum {versions_seen}; {} grace periods; \
         {made} routes made, all dropped once",
        elapsed.as_secs_f64() * 1e3,
        stats.gp_completed.saturating_sub(1)
    );
}
