//! A read-mostly configuration in an `RcuCell`: worker threads serve requests, each looking
//! the configuration up in a read section (no lock, no reference count), while the main
//! thread reloads it every few milliseconds. Every request sees one complete configuration,
//! versions only move forward, and every replaced configuration is dropped exactly once,
//! after the readers that could still see it have finished.
//!
//! Run: `cargo run --release -p rcu-core --example config_reload`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;

const WORKERS: usize = 4;
const RELOADS: u64 = 50;
const RELOAD_EVERY: Duration = Duration::from_millis(20);

/// Configurations dropped so far (each replaced one is dropped after its grace period).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What the server reads on every request.
struct Config {
    version: u64,
    max_body: usize,
    /// `(path prefix, backend)`, longest prefix first.
    routes: Vec<(String, String)>,
    /// Set last by the constructor: a reader seeing a half-built or freed value would
    /// find it inconsistent.
    checksum: u64,
}

impl Config {
    /// "Parses" version `version` of the configuration file.
    fn load(version: u64) -> Config {
        let backends = 2 + version % 3;
        let mut routes: Vec<(String, String)> = (0..backends)
            .map(|b| (format!("/api/v{b}/"), format!("backend-{b}.v{version}")))
            .collect();
        routes.push(("/".to_string(), format!("static.v{version}")));
        let mut config = Config { version, max_body: 1000 + version as usize, routes, checksum: 0 };
        config.checksum = config.compute_checksum();
        config
    }

    fn compute_checksum(&self) -> u64 {
        let mut sum = self.version.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.max_body as u64;
        for (prefix, backend) in &self.routes {
            sum = sum.rotate_left(7) ^ (prefix.len() as u64) ^ ((backend.len() as u64) << 32);
        }
        sum
    }

    fn is_consistent(&self) -> bool {
        self.checksum == self.compute_checksum()
            && self.routes.iter().all(|(_, backend)| version_of(backend) == Some(self.version))
    }

    /// Picks the backend for `path`.
    fn route(&self, path: &str) -> &str {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, backend)| backend.as_str())
            .expect("the catch-all route '/' always matches")
    }
}

/// The version a backend name was generated for: `"backend-1.v42"` -> 42.
fn version_of(backend: &str) -> Option<u64> {
    backend.rsplit_once(".v")?.1.parse().ok()
}

impl Drop for Config {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one worker did.
struct Served {
    requests: u64,
    rejected: u64,
    first_version: u64,
    last_version: u64,
    versions_seen: u64,
}

/// A worker thread: serves requests until told to stop.
fn serve(config: &RcuCell<Config>, stop: &AtomicBool) -> Served {
    // The thread's root token: acquired once, where the thread may block.
    let mut ctx = Sleepable::enter();
    let paths = ["/api/v0/users", "/api/v1/orders", "/api/v2/items", "/index.html"];
    let mut served =
        Served { requests: 0, rejected: 0, first_version: 0, last_version: 0, versions_seen: 0 };
    while !stop.load(Ordering::Relaxed) {
        let body_len = (served.requests as usize * 37) % 1100;
        let path = paths[served.requests as usize % paths.len()];
        // One read section per request: the configuration cannot be freed while `guard`
        // lives, and `cfg` cannot outlive it (the borrow checker sees to that).
        let guard = read_lock(&mut ctx);
        let cfg = config.load(&guard);
        assert!(cfg.is_consistent(), "request saw a torn or freed configuration");
        assert!(cfg.version >= served.last_version, "configuration version went backwards");
        if cfg.version != served.last_version {
            if served.versions_seen == 0 {
                served.first_version = cfg.version;
            }
            served.versions_seen += 1;
            served.last_version = cfg.version;
        }
        let backend = cfg.route(path);
        std::hint::black_box(backend);
        if body_len > cfg.max_body {
            served.rejected += 1; // 413 Payload Too Large
        }
        drop(guard);
        served.requests += 1;
    }
    served
}

fn main() {
    let config = Arc::new(RcuCell::new(Config::load(1)));
    let stop = Arc::new(AtomicBool::new(false));
    println!(
        "config_reload: {WORKERS} workers serve requests while the config is reloaded {RELOADS} \
         times, every {RELOAD_EVERY:?}"
    );

    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (config, stop) = (config.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || serve(&config, &stop))
                .expect("spawn worker")
        })
        .collect();

    // The writer: reloads the whole value; the old one is retired and dropped after a grace
    // period, on the domain's worker thread. Readers never wait for the writer.
    let mut ctx = Sleepable::enter();
    let start = Instant::now();
    for version in 2..=RELOADS + 1 {
        std::thread::sleep(RELOAD_EVERY);
        if version % 10 == 0 {
            // `update` computes the new value from the current one (retrying if another
            // writer got in first); here: keep the routes, raise the body limit.
            config.update(&mut ctx, |old| {
                let mut next = Config {
                    version,
                    max_body: old.max_body + 100,
                    routes: old
                        .routes
                        .iter()
                        .map(|(p, b)| {
                            (
                                p.clone(),
                                b.replace(&format!(".v{}", old.version), &format!(".v{version}")),
                            )
                        })
                        .collect(),
                    checksum: 0,
                };
                next.checksum = next.compute_checksum();
                Rcu::boxed(next)
            });
            println!(
                "  reload {version:>3}: new value derived from version {} by update()",
                version - 1
            );
        } else {
            config.set(&ctx, Config::load(version));
            if version % 10 == 5 {
                println!("  reload {version:>3}: loaded from file and published");
            }
        }
    }
    let reload_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let served: Vec<Served> =
        workers.into_iter().map(|w| w.join().expect("worker panicked")).collect();

    // Everything retired before this point has been dropped once `rcu_barrier` returns.
    rcu_barrier(&ctx);
    let dropped = DROPPED.load(Ordering::Relaxed);

    let requests: u64 = served.iter().map(|s| s.requests).sum();
    let rejected: u64 = served.iter().map(|s| s.rejected).sum();
    println!(
        "served {requests} requests in {:.2}s ({:.1}M/s), {rejected} rejected by max_body; every \
         request saw one complete config and versions only moved forward",
        reload_time.as_secs_f64(),
        requests as f64 / reload_time.as_secs_f64() / 1e6
    );
    for (i, s) in served.iter().enumerate() {
        println!(
            "  worker-{i}: {} requests, saw {} versions ({}..={})",
            s.requests, s.versions_seen, s.first_version, s.last_version
        );
    }
    println!("replaced configs dropped after their grace periods: {dropped} of {RELOADS}");
    assert_eq!(dropped, RELOADS, "a replaced configuration was leaked or dropped twice");

    // The last version is still in the cell; dropping the cell drops it.
    let final_version = {
        let mut ctx = ctx;
        let guard = read_lock(&mut ctx);
        config.load(&guard).version
    };
    assert_eq!(final_version, RELOADS + 1);
    drop(config);
    assert_eq!(DROPPED.load(Ordering::Relaxed), RELOADS + 1);
    println!("SUCCESS");
}
