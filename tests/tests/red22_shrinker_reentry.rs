//! Red team, issue 22: a shrinker is user code the runtime runs for a caller (DESIGN §5.1),
//! and "freeing paths must never recurse into reclaim" (DESIGN §1). Wakers were moved into
//! a no-reclaim scope so that they cannot take a root; shrinkers were not.
//!
//! Suspicion: `rcu_alloc::shrinker::shrink_all` runs `count`/`scan` on the `Sleepable` thread
//! whose block request found memory short, with no scope open (allocator.rs, `get`,
//! `BlockSource::Shrinkers`). A shrinker that frees the RCU-protected objects of its cache
//! the obvious way (`Sleepable::enter()` then `kvfree_rcu`) is let through by every check,
//! and its free needs a block too, so it asks the shrinkers again: reclaim recurses into
//! reclaim without bound, until the stack overflows.
//!
//! A real allocation failure is needed (shrinkers run only after the global allocator
//! failed). The test re-runs itself in a child process under `ulimit -v` and fills the
//! address space with ballast (safe `Vec::try_reserve_exact`), so that a 1 MiB block cannot
//! be had while small allocations still can. No unsafe code.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rcu_core::prelude::*;
use rcu_core::{register_shrinker, AllocConfig, DomainConfig, Rcu, Shrinker};

const CHILD: &str = "RED22_SHRINKER_CHILD";

/// How deep the shrinker found itself called inside its own `scan`.
static DEPTH: AtomicUsize = AtomicUsize::new(0);
static MAX_DEPTH: AtomicUsize = AtomicUsize::new(0);

/// A cache of RCU-protected objects; shrinking it retires them.
struct RcuCache {
    domain: Arc<Domain>,
    #[allow(clippy::vec_box)] // each element is retired with kvfree_rcu, which takes the box
    objects: Mutex<Vec<Box<Rcu<[u64; 4]>>>>,
}

impl Shrinker for RcuCache {
    fn count(&self) -> usize {
        self.objects.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        let depth = DEPTH.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_DEPTH.fetch_max(depth, Ordering::SeqCst);
        if depth % 500 == 0 {
            eprintln!("red22-child: shrinker scan re-entered {depth} deep");
        }
        // The shrinker has no token: it takes a root, which no check refuses here.
        let ctx = Sleepable::enter();
        let mut freed = 0;
        while freed < nr_to_scan.min(1) {
            let Some(obj) = self.objects.lock().unwrap().pop() else { break };
            self.domain.kvfree_rcu(&ctx, obj); // needs a block: asks the shrinkers again
            freed += 1;
        }
        DEPTH.fetch_sub(1, Ordering::SeqCst);
        freed
    }
}

fn child() {
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("shrink").alloc(
            AllocConfig::new()
                .block_bytes(1 << 20) // every block is a 1 MiB mmap
                .thread_cache_blocks(0)
                .pool_watermarks(0, 0),
        ),
    ));
    let ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    rcu_barrier(&ctx);
    let objects: Vec<Box<Rcu<[u64; 4]>>> = (0..200_000u64).map(|i| Rcu::boxed([i; 4])).collect();
    let cache = Arc::new(RcuCache { domain: domain.clone(), objects: Mutex::new(objects) });
    let _handle = register_shrinker(cache.clone());
    // Small allocations keep working from the heap's free lists after the ballast.
    let reserve: Vec<Vec<u8>> = (0..2000).map(|_| vec![0u8; 512]).collect();
    // Ballast: take the address space in 1 MiB pieces, then smaller, until none is left.
    let mut ballast: Vec<Vec<u8>> = Vec::with_capacity(1 << 16);
    for size in [1usize << 26, 1 << 23, 1 << 20] {
        loop {
            let mut v: Vec<u8> = Vec::new();
            if v.try_reserve_exact(size).is_err() || ballast.len() == ballast.capacity() {
                break;
            }
            ballast.push(v);
        }
    }
    // Free every other piece: holes for small allocations that never coalesce into 1 MiB.
    let mut keep = Vec::new();
    for (i, piece) in reserve.into_iter().enumerate() {
        if i % 2 == 0 {
            keep.push(piece);
        }
    }
    let mut probe: Vec<u8> = Vec::new();
    assert!(probe.try_reserve_exact(1 << 20).is_err(), "a 1 MiB allocation still succeeds");
    eprintln!(
        "red22-child: address space full ({} ballast pieces); freeing one object",
        ballast.len()
    );
    // One free that needs a new block: the allocator fails, the shrinkers run.
    let obj = Rcu::boxed([0u64; 4]);
    domain.kvfree_rcu(&ctx, obj);
    eprintln!(
        "red22-child: returned; deepest shrinker re-entry {}",
        MAX_DEPTH.load(Ordering::SeqCst)
    );
    drop(ballast);
    drop(keep);
}

#[test]
#[cfg_attr(
    any(rcu_sanitizer = "address", rcu_sanitizer = "thread"),
    ignore = "the child runs under `ulimit -v`, and a sanitizer's shadow memory needs far more"
)]
fn a_shrinker_that_frees_with_kvfree_rcu_recurses_into_reclaim() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4000000 && exec \"$0\" --exact --nocapture --test-threads 1 \"$1\"")
        .arg(exe)
        .arg("a_shrinker_that_frees_with_kvfree_rcu_recurses_into_reclaim")
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("red22")
                || l.contains("overflow")
                || l.contains("panicked")
                || l.contains("memory")
        })
        .collect();
    eprintln!(
        "child status: {:?}\nchild stderr (filtered):\n{}",
        out.status,
        lines.iter().rev().take(12).rev().cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.status.success(),
        "the child died: a shrinker's kvfree_rcu re-entered reclaim (status {:?})",
        out.status
    );
}
