//! An async server whose request handlers read the configuration with `QsbrDomain::read`:
//! the configuration is an `RcuCell` on a QSBR domain attached to the tokio runtime
//! (`QsbrDomain::attach_to_tokio`). A worker goes online at its first read after a park (one
//! fence), and from then on each read is a section of two plain stores, the domain's grace
//! periods paying with membarrier until the worker parks. An admin task reloads the
//! configuration meanwhile and waits for grace periods with futures, never blocking a worker.
//!
//! Checks: every handler finds a complete configuration (a dropped one is poisoned), versions
//! seen by one client only move forward, every replaced configuration is dropped exactly
//! once, and no worker exited inside a section. Prints the request count, the share of reads
//! made by a worker already online, the grace periods and how many issued a membarrier.
//!
//! Run: `cargo run --release -p rcu-core --features tokio --example qsbr_server`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain};

const CLIENTS: u64 = 8;
const REQUESTS_PER_CLIENT: u64 = 25_000;
const RELOADS: u64 = 400;

/// Configurations made and dropped: equal at the end.
static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What every request reads.
struct Config {
    version: u64,
    /// `(path prefix, backend)`, longest prefix first.
    routes: Vec<(String, String)>,
    /// A function of the fields above; poisoned on drop.
    check: u64,
}

impl Config {
    fn load(version: u64) -> Config {
        MADE.fetch_add(1, Ordering::Relaxed);
        let mut routes: Vec<(String, String)> = (0..2 + version % 3)
            .map(|b| (format!("/api/v{b}/"), format!("backend-{b}.v{version}")))
            .collect();
        routes.push(("/".to_owned(), format!("static.v{version}")));
        let check = checksum(version, &routes);
        Config { version, routes, check }
    }

    fn is_intact(&self) -> bool {
        self.check == checksum(self.version, &self.routes)
    }

    fn route(&self, path: &str) -> &str {
        let (_, backend) = self
            .routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .expect("the last route matches every path");
        backend
    }
}

fn checksum(version: u64, routes: &[(String, String)]) -> u64 {
    routes
        .iter()
        .flat_map(|(p, b)| p.bytes().chain(b.bytes()))
        .fold(version.rotate_left(29), |s, b| s.rotate_left(5) ^ u64::from(b))
}

impl Drop for Config {
    fn drop(&mut self) {
        self.check = !self.check;
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// One client's requests, in order; returns how many found their worker online.
async fn client(domain: Arc<QsbrDomain>, config: Arc<RcuCell<Config>>, id: u64) -> u64 {
    let mut last_version = 0;
    let mut fast = 0;
    for i in 0..REQUESTS_PER_CLIENT {
        let path = if (i + id) % 3 == 0 { "/index.html" } else { "/api/v1/users" };
        // The reference cannot leave the closure: nothing of the domain's is held across
        // the awaits below, which is what lets every other point be a quiescent state.
        let (version, backend_len) = domain.read(|r| {
            let cfg = config.load(r);
            assert!(cfg.is_intact(), "a handler found a dropped configuration");
            (cfg.version, cfg.route(path).len())
        });
        assert!(version >= last_version, "a client saw the configuration go back");
        assert!(backend_len > 0);
        last_version = version;
        if domain.is_executor_online() {
            fast += 1;
        }
        if i % 256 == 255 {
            tokio::time::sleep(Duration::from_micros(100)).await; // a backend round trip
        } else {
            tokio::task::yield_now().await;
        }
    }
    fast
}

fn main() {
    let domain = Arc::new(QsbrDomain::new(DomainConfig::new().name("edge")));
    let config = Arc::new(RcuCell::new_in(&*domain, Config::load(0)));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = domain
        .attach_to_tokio(builder.worker_threads(2).enable_time())
        .build()
        .expect("a tokio runtime");
    let start = Instant::now();
    let fast = runtime.block_on(async {
        let admin = {
            let (domain, config) = (domain.clone(), config.clone());
            tokio::spawn(async move {
                for version in 1..=RELOADS {
                    {
                        // The async row of the guide's table: a token that never waits.
                        let ctx = NoReclaimRoot::enter();
                        config.set(&ctx, Config::load(version));
                    }
                    if version % 20 == 0 {
                        domain.synchronize_rcu_async().await;
                    }
                    tokio::time::sleep(Duration::from_micros(250)).await;
                }
            })
        };
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client(domain.clone(), config.clone(), id)))
            .collect();
        let mut fast = 0;
        for c in clients {
            fast += c.await.expect("a client panicked");
        }
        admin.await.expect("the admin task panicked");
        domain.rcu_barrier_async().await;
        fast
    });
    let elapsed = start.elapsed();
    drop(runtime); // every worker runs its stop hook: offline
    let stats = domain.stats();
    assert_eq!(stats.leaked_read_sections, 0, "a worker exited online");
    drop(config);
    let (made, dropped) = (MADE.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed));
    assert_eq!(made, dropped, "{made} configurations made, {dropped} dropped");
    let requests = CLIENTS * REQUESTS_PER_CLIENT;
    println!(
        "qsbr_server: {requests} requests in {:.1} ms while {RELOADS} configurations were \
         reloaded; {:.1}% of reads found their worker online (a section of two plain stores); \
         {} grace periods, {} with a membarrier (a worker online); {made} configurations made, \
         all dropped once",
        elapsed.as_secs_f64() * 1e3,
        100.0 * fast as f64 / requests as f64,
        stats.gp_completed.saturating_sub(1),
        stats.membarriers
    );
}
