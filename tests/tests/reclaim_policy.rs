//! DESIGN §4: what each policy may do when memory is short.
//!
//! - `NoReclaim` and `Atomic` never run a shrinker and never wait for a grace period: over
//!   budget they fall back (counted as `OverBudget`) and return promptly even while a reader
//!   holds every grace period up; with the allocator failing they fall back (`NoBlock`).
//! - `Sleepable` (the `Reclaim` policy) waits for pending memory to drain when over budget
//!   (backpressure: it blocks until the reader leaves, at most 100 ms per call) and runs the
//!   registered shrinkers when the global allocator really fails.
//!
//! Shrinkers run only after a *real* allocation failure (fault injection fails the request
//! before the allocator is tried), so this binary's global allocator can fail, on request and
//! only on the requesting thread, allocations of one distinctive block layout.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FallbackReason, Policy, Shrinker};
use rcu_tests::drop_log::{wait_until, DropLog, Tracked};

/// Block size of the domains whose allocations fail on request: nothing else in the process
/// allocates this size with 64-byte alignment.
const FAILING_BLOCK_BYTES: usize = 3008;

/// Bound on waits for what must happen: a watchdog meaning hung, not a speed target.
const PATIENCE: Duration = Duration::from_secs(60);

thread_local! {
    static FAIL_BLOCKS: Cell<bool> = const { Cell::new(false) };
}

struct FailingAlloc;

fn should_fail(layout: Layout) -> bool {
    layout.size() == FAILING_BLOCK_BYTES
        && layout.align() == 64
        && FAIL_BLOCKS.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to `System` unchanged, except that it may return null from `alloc`, which
// `GlobalAlloc` permits (allocation failure).
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if should_fail(layout) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: FailingAlloc = FailingAlloc;

/// Makes this thread's block allocations fail while it lives.
struct FailBlocks;

impl FailBlocks {
    fn on() -> Self {
        FAIL_BLOCKS.with(|f| f.set(true));
        FailBlocks
    }
}

impl Drop for FailBlocks {
    fn drop(&mut self) {
        FAIL_BLOCKS.with(|f| f.set(false));
    }
}

/// Shrinkers are process-wide: tests that count shrinker calls run one at a time.
static SHRINKER_TESTS: Mutex<()> = Mutex::new(());

/// A shrinker that only counts how often it is asked.
#[derive(Default)]
struct CountingShrinker {
    counts: AtomicUsize,
    scans: AtomicUsize,
}

impl Shrinker for CountingShrinker {
    fn count(&self) -> usize {
        self.counts.fetch_add(1, Ordering::SeqCst);
        1000
    }

    fn scan(&self, nr_to_scan: usize) -> usize {
        self.scans.fetch_add(1, Ordering::SeqCst);
        // Pretends to free: the failing allocator keeps failing anyway.
        nr_to_scan
    }
}

impl CountingShrinker {
    fn calls(&self) -> (usize, usize) {
        (self.counts.load(Ordering::SeqCst), self.scans.load(Ordering::SeqCst))
    }
}

fn drop_it(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

#[test]
fn shrinkers_run_only_under_reclaim_after_a_real_allocation_failure() {
    let _serial = SHRINKER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let shrinker = Arc::new(CountingShrinker::default());
    let _handle = rcu_core::register_shrinker(shrinker.clone());
    // No thread cache, no refill: every block request goes to the global allocator.
    let domain = Domain::new(
        DomainConfig::new().name("shrinkers").alloc(
            AllocConfig::new()
                .block_bytes(FAILING_BLOCK_BYTES)
                .thread_cache_blocks(0)
                .pool_watermarks(0, 0),
        ),
    );
    let mut ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    let log = DropLog::new(128);

    // Injected faults fail the request before the allocator is tried: no shrinker runs, not
    // even under Reclaim. Shrinkers are reachable only through a real allocation failure.
    {
        let injected = Domain::new(DomainConfig::new().name("injected"));
        injected.register_current_thread(&ctx);
        for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
            injected.inject_faults(policy, rcu_core::FaultConfig::every_nth(1));
        }
        for _ in 0..5 {
            injected.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
            injected.kvfree_rcu_mightsleep(&ctx, Box::new(log.track()));
            let mut nr = ctx.no_reclaim();
            injected.kvfree_rcu(&nr, Rcu::boxed(log.track()));
            let atomic = nr.atomic();
            injected.kvfree_rcu(&atomic, Rcu::boxed(log.track()));
        }
        let stats = injected.alloc_stats();
        assert_eq!(stats.alloc_failures_injected, 20, "{stats:?}");
        assert_eq!(stats.shrinker_calls, 0, "{stats:?}");
        assert_eq!(shrinker.calls(), (0, 0), "an injected fault ran a shrinker");
        injected.rcu_barrier(&ctx);
    }

    {
        let _fail = FailBlocks::on();
        // NoReclaim: the allocator fails, the item falls back; no shrinker.
        {
            let nr = ctx.no_reclaim();
            for _ in 0..5 {
                domain.kvfree_rcu(&nr, Rcu::boxed(log.track()));
                domain.call_rcu(&nr, Rcu::boxed(log.track()), drop_it);
            }
            let headless = Box::new(log.track());
            let id = headless.id();
            domain.kvfree_rcu_mightsleep(&nr, headless);
            assert!(log.is_freed(id), "NoReclaim headless: not synchronized and freed inline");
        }
        let stats = domain.alloc_stats();
        assert_eq!(stats.fallbacks_of(Policy::NoReclaim, FallbackReason::NoBlock), 11, "{stats:?}");
        assert!(stats.alloc_failures_real >= 11, "the allocator was not tried: {stats:?}");
        assert_eq!(stats.shrinker_calls, 0, "NoReclaim ran shrinkers: {stats:?}");
        assert_eq!(shrinker.calls(), (0, 0), "NoReclaim asked a shrinker");

        // Atomic: the pool is empty and the allocator is off limits; no shrinker.
        let failures_before = stats.alloc_failures_real;
        {
            let atomic = ctx.atomic();
            for _ in 0..5 {
                domain.kvfree_rcu(&atomic, Rcu::boxed(log.track()));
                domain.call_rcu(&atomic, Rcu::boxed(log.track()), drop_it);
            }
        }
        let stats = domain.alloc_stats();
        assert_eq!(stats.fallbacks_of(Policy::NoWait, FallbackReason::NoBlock), 10, "{stats:?}");
        assert_eq!(stats.alloc_failures_real, failures_before, "Atomic tried the allocator");
        assert_eq!(stats.shrinker_calls, 0, "Atomic ran shrinkers: {stats:?}");
        assert_eq!(shrinker.calls(), (0, 0), "Atomic asked a shrinker");

        // Sleepable: the allocator fails, the shrinkers run, the retry fails, it falls back.
        domain.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
        let headless = Box::new(log.track());
        let id = headless.id();
        domain.kvfree_rcu_mightsleep(&ctx, headless);
        assert!(log.is_freed(id), "Sleepable headless: not synchronized and freed inline");
        let stats = domain.alloc_stats();
        println!("shrinkers: {stats:?}; counting shrinker (count, scan) = {:?}", shrinker.calls());
        assert_eq!(stats.fallbacks_of(Policy::Reclaim, FallbackReason::NoBlock), 2, "{stats:?}");
        assert!(stats.shrinker_calls >= 2, "Reclaim did not run shrinkers: {stats:?}");
        let (counts, scans) = shrinker.calls();
        assert!(
            counts >= 2 && scans >= 2,
            "the registered shrinker was not asked: {counts} {scans}"
        );
        // Two failures per Reclaim request: before and after shrinking.
        assert_eq!(stats.alloc_failures_real, failures_before + 4, "{stats:?}");
    }

    domain.rcu_barrier(&ctx);
    log.assert_all_freed_once();
}

/// DESIGN §4: "the runtime's own caches are a shrinker too": every domain registers its block
/// pool, so a real allocation failure under `Reclaim` frees the blocks other domains keep
/// pooled (this test found the registration missing).
#[test]
fn a_real_allocation_failure_shrinks_other_domains_pools() {
    let _serial = SHRINKER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let stocked = Domain::new(DomainConfig::new().name("stocked"));
    // The refill worker stocks the pool from the start.
    assert!(wait_until(PATIENCE, || stocked.alloc_stats().blocks_pooled > 0), "no pool refill");
    let failing = Domain::new(
        DomainConfig::new().name("failing").alloc(
            AllocConfig::new()
                .block_bytes(FAILING_BLOCK_BYTES)
                .thread_cache_blocks(0)
                .pool_watermarks(0, 0),
        ),
    );
    let ctx = Sleepable::enter();
    failing.register_current_thread(&ctx);
    let log = DropLog::new(4);
    let freed_before = stocked.alloc_stats().blocks_freed;
    {
        let _fail = FailBlocks::on();
        failing.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
    }
    let stats = failing.alloc_stats();
    assert!(stats.alloc_failures_real >= 2, "{stats:?}");
    assert!(
        stocked.alloc_stats().blocks_freed > freed_before,
        "a real allocation failure under Reclaim left another domain's pooled blocks alone \
         (shrinker calls: {})",
        stats.shrinker_calls
    );
    failing.rcu_barrier(&ctx);
    log.assert_all_freed_once();
}

/// A reader of `domain` on another thread, inside one read section until released (or until
/// the `HeldReader` is dropped, e.g. by a failing test).
struct HeldReader {
    release: mpsc::Sender<()>,
    handle: std::thread::JoinHandle<()>,
}

impl HeldReader {
    fn spawn(domain: Arc<Domain>) -> Self {
        let (release, released) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            let _ = released.recv();
            drop(guard);
        });
        entered.recv().unwrap();
        HeldReader { release, handle }
    }

    fn release(self) {
        self.release.send(()).unwrap();
        self.handle.join().unwrap();
    }
}

/// What the NoReclaim/Atomic flood saw.
struct FloodReport {
    elapsed: Duration,
    freed_meanwhile: usize,
}

/// NoReclaim and Atomic `kvfree_rcu`/`call_rcu` (and NoReclaim headless frees), `n` of each
/// token, on a thread of its own.
fn no_reclaim_and_atomic_flood(
    domain: Arc<Domain>,
    log: &'static DropLog,
    headless: &'static DropLog,
    n: usize,
) -> mpsc::Receiver<FloodReport> {
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        let started = Instant::now();
        {
            let nr = ctx.no_reclaim();
            for _ in 0..n / 2 {
                domain.kvfree_rcu(&nr, Rcu::boxed(log.track()));
                domain.call_rcu(&nr, Rcu::boxed(log.track()), drop_it);
            }
            // Headless items have no list: over budget they still take a block (counted),
            // rather than wait.
            for _ in 0..16 {
                domain.kvfree_rcu_mightsleep(&nr, Box::new(headless.track()));
            }
        }
        {
            let atomic = ctx.atomic();
            for _ in 0..n / 2 {
                domain.kvfree_rcu(&atomic, Rcu::boxed(log.track()));
                domain.call_rcu(&atomic, Rcu::boxed(log.track()), drop_it);
            }
        }
        let elapsed = started.elapsed();
        let freed_meanwhile = log.freed() + headless.freed();
        let _ = done_tx.send(FloodReport { elapsed, freed_meanwhile });
    });
    done
}

#[test]
fn over_budget_no_reclaim_and_atomic_fall_back_promptly_while_sleepable_waits() {
    let _serial = SHRINKER_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let shrinker = Arc::new(CountingShrinker::default());
    let _handle = rcu_core::register_shrinker(shrinker.clone());
    const BUDGET: usize = 8 << 10;
    const N: usize = 2000;
    // Threads that could block forever if the engine is wrong are not scoped: the test then
    // fails instead of hanging.
    let domain = Arc::new(Domain::new(
        DomainConfig::new().name("budget").alloc(AllocConfig::new().budget_bytes(BUDGET)),
    ));
    let log = DropLog::new(4 * N + 64);
    let headless = DropLog::new(64);

    // Nothing can drain while this reader sits in its read section.
    let reader = HeldReader::spawn(domain.clone());

    let flood = no_reclaim_and_atomic_flood(domain.clone(), log, headless, N);
    // No speed target: the reader holds every grace period until the end, so a call that
    // waited for one would never return (this watchdog), and one that waited for the memory
    // to drain is counted (`backpressure_waits`, below).
    let waiting = Instant::now();
    let report = match flood.recv_timeout(PATIENCE) {
        Ok(report) => report,
        Err(_) => {
            reader.release();
            panic!(
                "NoReclaim/Atomic calls over budget blocked ({:?}) while a reader held grace \
                 periods",
                waiting.elapsed()
            );
        }
    };
    let elapsed = report.elapsed;
    assert_eq!(report.freed_meanwhile, 0, "freed while a reader held them up");
    let stats = domain.alloc_stats();
    let over_nr = stats.fallbacks_of(Policy::NoReclaim, FallbackReason::OverBudget);
    let over_atomic = stats.fallbacks_of(Policy::NoWait, FallbackReason::OverBudget);
    println!(
        "over budget: {N} NoReclaim + {N} Atomic calls in {elapsed:?}; OverBudget fallbacks: \
         NoReclaim {over_nr}, NoWait {over_atomic}; pending {} bytes of {BUDGET}",
        domain.stats().pending_bytes
    );
    // Only the first block or two went in under budget (the fast path into a current block
    // does not check; every new block does).
    assert!(over_nr >= (N / 2) as u64, "{stats:?}");
    assert!(over_atomic >= (N - 300) as u64, "{stats:?}");
    assert_eq!(stats.backpressure_waits, 0, "NoReclaim/Atomic waited: {stats:?}");
    assert!(domain.stats().pending_bytes > BUDGET as u64);

    // A Sleepable call over budget waits for the memory to drain, but at most its bound
    // (100 ms, `DRAIN_BACKPRESSURE_LIMIT`): a reader that waits for the caller would
    // otherwise deadlock with it (issue 21). Nothing can drain while the reader holds grace
    // periods up, so the wait ends by the bound, with the reader still inside.
    let (done_tx, done) = mpsc::channel();
    let sleeper_domain = domain.clone();
    std::thread::spawn(move || {
        let ctx = Sleepable::enter();
        sleeper_domain.register_current_thread(&ctx);
        done_tx.send(None).unwrap();
        let started = std::time::Instant::now();
        sleeper_domain.kvfree_rcu(&ctx, Rcu::boxed(log.track()));
        done_tx.send(Some(started.elapsed())).unwrap();
    });
    assert_eq!(done.recv().unwrap(), None);
    let waiting = Instant::now();
    let waited = done.recv_timeout(PATIENCE);
    let freed = log.freed();
    let stats = domain.alloc_stats();
    reader.release();
    let waited = waited
        .unwrap_or_else(|_| {
            panic!(
                "a Sleepable call over budget waited without bound ({:?}) while a reader held \
                 grace periods",
                waiting.elapsed()
            )
        })
        .expect("the call's duration");
    assert!(stats.backpressure_waits > 0, "the Sleepable call did not wait: {stats:?}");
    assert!(
        waited >= Duration::from_millis(100),
        "the Sleepable call returned after {waited:?}, before its bound, while nothing could drain"
    );
    assert_eq!(freed, 0);

    assert_eq!(shrinker.calls(), (0, 0), "a shrinker ran because of the budget");
    assert_eq!(domain.alloc_stats().shrinker_calls, 0);
    let ctx = Sleepable::enter();
    domain.rcu_barrier(&ctx);
    log.assert_all_freed_once();
    headless.assert_all_freed_once();
    assert_eq!(domain.stats().callbacks_pending, 0);
}

#[test]
fn a_sleepable_flood_stays_within_the_budget() {
    // Backpressure keeps pending memory at the budget plus what one thread can stage before
    // it next checks: one block's worth (the block and the objects in it), also while a
    // reader holds grace periods up and nothing can be freed.
    const BUDGET: usize = 64 << 10;
    const N: usize = 20_000;
    let alloc = AllocConfig::new().budget_bytes(BUDGET);
    let domain = Domain::new(DomainConfig::new().name("flood").alloc(alloc));
    let ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    let log = DropLog::new(N);
    let object_bytes = std::mem::size_of::<Rcu<(Tracked, [u64; 8])>>();
    // Default blocks: 4096 bytes (no getter for the size; `block_capacity` is derived from it).
    let slack = 2 * (4096 + alloc.block_capacity() * object_bytes);
    // Over budget must happen whatever the scheduler does (a fast worker could otherwise
    // keep up with the flood): a reader holds grace periods up, so nothing queued can be
    // freed, until the flooding thread has been seen waiting under backpressure.
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release_tx, release) = mpsc::channel::<()>();
    let waited_while_held = AtomicUsize::new(0);
    let started = Instant::now();
    rcu_tests::scope(|s| {
        let domain = &domain;
        s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            let _ = release.recv();
            drop(guard);
        });
        entered.recv().unwrap();
        let waited = &waited_while_held;
        s.spawn(move || {
            let seen = wait_until(PATIENCE, || domain.alloc_stats().backpressure_waits > 0);
            // Relaxed: read after the scope joined this thread.
            waited.store(usize::from(seen), Ordering::Relaxed);
            release_tx.send(()).unwrap();
        });
        for _ in 0..N {
            domain.kvfree_rcu(&ctx, Rcu::boxed((log.track(), [0u64; 8])));
        }
    });
    let elapsed = started.elapsed();
    let stats = domain.stats();
    let alloc_stats = domain.alloc_stats();
    println!(
        "flood: {N} Sleepable frees of {object_bytes} B in {elapsed:?}: peak pending {} B, \
         budget {BUDGET} B, slack {slack} B, backpressure waits {}",
        stats.peak_pending_bytes, alloc_stats.backpressure_waits
    );
    assert!(N * object_bytes > 4 * BUDGET, "the flood must exceed the budget several times");
    // Relaxed: written before the scope joined the thread.
    assert_eq!(
        waited_while_held.load(Ordering::Relaxed),
        1,
        "the flood never waited while a reader held every grace period: {alloc_stats:?}"
    );
    assert!(
        stats.peak_pending_bytes <= (BUDGET + slack) as u64,
        "peak pending {} > budget {BUDGET} + slack {slack}",
        stats.peak_pending_bytes
    );
    assert_eq!(alloc_stats.fallbacks_total(Policy::Reclaim), 0, "{alloc_stats:?}");
    domain.rcu_barrier(&ctx);
    log.assert_all_freed_once();
    assert!(wait_until(PATIENCE, || domain.stats().pending_bytes == 0), "{:?}", domain.stats());
}
