//! DESIGN §4/§5: every fallback path of deferred reclamation, forced by fault injection or a
//! small-block domain, with drop counting and grace-period checks.
//!
//! - the intrusive list (embedded head) for headed items, under each policy;
//! - headless `kvfree_rcu_mightsleep`: synchronize, then free inline (and not before a reader
//!   that predates the call has left); with a block, return at once and free later (the
//!   reader stays inside until the call has returned, so that "at once" means "while the
//!   reader is certainly inside", however slowly the call is scheduled);
//! - an empty pool under `Atomic` (no injection), and the refill worker topping it up;
//! - probabilistic, seeded injection on every policy at once.
//!
//! While objects are retired, reader threads load them under read guards and check that none
//! is freed while held; afterwards `rcu_barrier` and every object freed exactly once.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FallbackReason, FaultConfig, Policy};
use rcu_tests::drop_log::{wait_until, DropLog, Tracked};
use rcu_tests::readers::{check_reads, Published, ReaderReport, StopOnDrop};
use rcu_tests::{with_token, TokenKind};

/// How a test step retires the published object.
#[derive(Clone, Copy, Debug)]
enum Api {
    /// Swap the published pointer, `kvfree_rcu` the old object.
    Kvfree,
    /// Swap the published pointer, `call_rcu` the old object (the callback drops it).
    CallRcu,
    /// `RcuCell::replace`.
    CellReplace,
}

const APIS: [Api; 3] = [Api::Kvfree, Api::CallRcu, Api::CellReplace];

/// Bound on waits for what must happen: a watchdog meaning hung, not a speed target.
const PATIENCE: Duration = Duration::from_secs(60);

fn drop_it(obj: Box<Rcu<Tracked>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// A domain, one `Published` pointer and one `RcuCell` of it, watched by checking readers.
struct Fixture {
    domain: Domain,
    log: &'static DropLog,
    published: Published,
    cell: RcuCell<Tracked>,
}

impl Fixture {
    fn new(name: &'static str, alloc: AllocConfig, capacity: usize) -> Self {
        // Short batches: retired objects are freed (right after their grace period) while
        // readers may still be looking at their successors, so a grace period that ended too
        // early would show.
        let domain = Domain::new(
            DomainConfig::new().name(name).alloc(alloc).batch_delay(Duration::from_micros(200)),
        );
        let log = DropLog::new(capacity);
        let published = Published::new(Rcu::boxed(log.track()));
        let cell = RcuCell::new_in(&domain, log.track());
        Fixture { domain, log, published, cell }
    }

    /// Retires the current object of `api` with a token of `kind`, publishing a new one.
    fn retire_one(&self, ctx: &mut Sleepable, kind: TokenKind, api: Api) {
        let new = Rcu::boxed(self.log.track());
        let domain = &self.domain;
        match api {
            Api::Kvfree => {
                // SAFETY: (1) the old object is retired with kvfree_rcu of the readers' domain.
                let old = unsafe { self.published.swap(new) };
                with_token!(ctx, domain, kind, |t| domain.kvfree_rcu(t, old));
            }
            Api::CallRcu => {
                // SAFETY: (1) retired with call_rcu of the readers' domain; the callback drops it.
                let old = unsafe { self.published.swap(new) };
                with_token!(ctx, domain, kind, |t| domain.call_rcu(t, old, drop_it));
            }
            Api::CellReplace => with_token!(ctx, domain, kind, |t| self.cell.replace(t, new)),
        }
    }

    /// Runs `writer` while two checking readers (one on the published pointer, one on the
    /// cell) read; returns their reports.
    fn with_readers(&self, writer: impl FnOnce()) -> [ReaderReport; 2] {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let pointer_reader = s.spawn(|| check_reads(&self.domain, &stop, &self.published));
            let cell_reader = s.spawn(|| check_reads(&self.domain, &stop, &self.cell));
            {
                let _stop = StopOnDrop(&stop);
                writer();
            }
            [pointer_reader.join().unwrap(), cell_reader.join().unwrap()]
        })
    }

    /// Barrier, then checks: readers saw no freed object, and every retired object was freed
    /// exactly once; then drops the fixture and checks the rest were freed too.
    fn finish(self, ctx: &Sleepable, reports: [ReaderReport; 2]) {
        for r in reports {
            assert_eq!(r.violations, 0, "a reader saw its object freed while holding it: {r:?}");
            assert!(r.reads > 0);
        }
        self.domain.rcu_barrier(ctx);
        self.log.assert_no_double_free();
        // Two objects are still published.
        assert_eq!(self.log.freed(), self.log.allocated() - 2, "retired objects not all freed");
        let Fixture { domain, log, published, cell } = self;
        drop(published);
        drop(cell);
        drop(domain);
        log.assert_all_freed_once();
    }
}

fn policy_of(kind: TokenKind) -> Policy {
    match kind {
        TokenKind::Sleepable => Policy::Reclaim,
        TokenKind::NoReclaim => Policy::NoReclaim,
        TokenKind::Atomic | TokenKind::InReadSection => Policy::NoWait,
    }
}

#[test]
fn headed_items_take_the_intrusive_list_under_every_policy() {
    const PER_API: usize = 150;
    for kind in TokenKind::ALL {
        let policy = policy_of(kind);
        let fx = Fixture::new("intrusive", AllocConfig::new().small_blocks(), 4 * PER_API + 8);
        let mut ctx = Sleepable::enter();
        fx.domain.register_current_thread(&ctx);
        // Every block request of this policy fails.
        fx.domain.inject_faults(policy, FaultConfig::every_nth(1));
        let before = fx.domain.alloc_stats();
        let reports = fx.with_readers(|| {
            for i in 0..PER_API {
                for api in APIS {
                    fx.retire_one(&mut ctx, kind, api);
                }
                if i % 16 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let after = fx.domain.alloc_stats();
        let no_block = after.fallbacks_of(policy, FallbackReason::NoBlock)
            - before.fallbacks_of(policy, FallbackReason::NoBlock);
        // No block was ever current (every request failed), so every item fell back.
        assert_eq!(no_block, 3 * PER_API as u64, "{kind:?}: {after:?}");
        assert!(after.alloc_failures_injected >= 3 * PER_API as u64, "{after:?}");
        for other in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
            if other != policy {
                assert_eq!(after.fallbacks_total(other), 0, "{kind:?}: {after:?}");
            }
        }
        fx.finish(&ctx, reports);
    }
}

/// A headless payload that records, when dropped, whether its reader had already left.
struct WitnessDrop {
    reader_left: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
    dropped_after_reader: Arc<AtomicBool>,
}

impl Drop for WitnessDrop {
    fn drop(&mut self) {
        // SeqCst (all): flags compared across threads; strongest order for simplicity.
        let left = self.reader_left.load(Ordering::SeqCst);
        self.dropped_after_reader.store(left, Ordering::SeqCst);
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// What `mightsleep_against_reader` observed.
struct Witnessed {
    /// The object had been dropped when the call returned.
    dropped_at_return: bool,
    /// The reader had left when the call returned.
    reader_left_at_return: bool,
    /// Set when the object is dropped: whether the reader had left by then.
    dropped_after_reader: Arc<AtomicBool>,
    /// Set when the object is dropped.
    dropped: Arc<AtomicBool>,
}

/// How long the reader of `mightsleep_against_reader` stays inside.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// This long: a call that waits for the reader returns once it has left on its own.
    For(Duration),
    /// Until the call has returned (for a call that must not wait for the reader), at most
    /// five seconds: a call that does wait then returns late, with the reader gone, instead
    /// of hanging.
    UntilTheCallReturns,
}

/// Runs `call` (a `kvfree_rcu_mightsleep` of a `WitnessDrop`) while another thread sits in a
/// read section of `domain` that began before the call and lasts as `hold` says.
fn mightsleep_against_reader(
    domain: &Domain,
    hold: Hold,
    call: impl FnOnce(WitnessDrop),
) -> Witnessed {
    let reader_left = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let dropped_after_reader = Arc::new(AtomicBool::new(false));
    let witness = WitnessDrop {
        reader_left: reader_left.clone(),
        dropped: dropped.clone(),
        dropped_after_reader: dropped_after_reader.clone(),
    };
    std::thread::scope(|s| {
        let (entered_tx, entered_rx) = mpsc::channel();
        // Dropped once the call has returned (also when it panics): releases the reader.
        let (release, released) = mpsc::channel::<()>();
        let left = reader_left.clone();
        let reader = s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            match hold {
                Hold::For(duration) => std::thread::sleep(duration),
                Hold::UntilTheCallReturns => {
                    let _ = released.recv_timeout(PATIENCE);
                }
            }
            // SeqCst: set before the section ends, so a grace period that waited for the
            // section also orders this store before whatever follows it.
            left.store(true, Ordering::SeqCst);
            drop(guard);
        });
        entered_rx.recv().unwrap();
        call(witness);
        // SeqCst (all): see `WitnessDrop`.
        let witnessed = Witnessed {
            dropped_at_return: dropped.load(Ordering::SeqCst),
            reader_left_at_return: reader_left.load(Ordering::SeqCst),
            dropped_after_reader,
            dropped,
        };
        drop(release);
        reader.join().unwrap();
        witnessed
    })
}

#[test]
fn headless_mightsleep_synchronizes_then_frees_inline_when_no_block_can_be_had() {
    let domain = Domain::new(DomainConfig::new().name("mightsleep-inline"));
    let mut ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    domain.inject_faults(Policy::Reclaim, FaultConfig::every_nth(1));
    domain.inject_faults(Policy::NoReclaim, FaultConfig::every_nth(1));
    let log = DropLog::new(16);

    // Without readers: freed before the call returns.
    let obj = Box::new(log.track());
    let id = obj.id();
    domain.kvfree_rcu_mightsleep(&ctx, obj);
    assert!(log.is_freed(id), "Sleepable: the headless object was not freed inline");
    let obj = Box::new(log.track());
    let id = obj.id();
    {
        let nr = ctx.no_reclaim();
        domain.kvfree_rcu_mightsleep(&nr, obj);
    }
    assert!(log.is_freed(id), "NoReclaim: the headless object was not freed inline");

    // With a reader that entered before the call: the call waits for it, then frees.
    let hold = Hold::For(Duration::from_millis(300));
    let w = mightsleep_against_reader(&domain, hold, |w| {
        domain.kvfree_rcu_mightsleep(&ctx, Box::new(w))
    });
    assert!(w.dropped_at_return, "Sleepable: not freed inline");
    assert!(w.reader_left_at_return, "Sleepable: returned while an older reader was inside");
    assert!(w.dropped_after_reader.load(Ordering::SeqCst), "Sleepable: freed under the reader");
    let w = mightsleep_against_reader(&domain, hold, |w| {
        let nr = ctx.no_reclaim();
        domain.kvfree_rcu_mightsleep(&nr, Box::new(w));
    });
    assert!(w.dropped_at_return, "NoReclaim: not freed inline");
    assert!(w.reader_left_at_return, "NoReclaim: returned while an older reader was inside");
    assert!(w.dropped_after_reader.load(Ordering::SeqCst), "NoReclaim: freed under the reader");

    let stats = domain.alloc_stats();
    assert_eq!(stats.fallbacks_of(Policy::Reclaim, FallbackReason::NoBlock), 2, "{stats:?}");
    assert_eq!(stats.fallbacks_of(Policy::NoReclaim, FallbackReason::NoBlock), 2, "{stats:?}");
    log.assert_all_freed_once();
}

#[test]
fn headless_mightsleep_with_a_block_is_deferred_past_the_reader() {
    // No injection: the object goes into a block and is freed by the worker, after the
    // reader that predates the call has left; the call itself does not wait.
    let domain = Domain::new(DomainConfig::new().name("mightsleep-deferred"));
    let ctx = Sleepable::enter();
    domain.register_current_thread(&ctx);
    let w = mightsleep_against_reader(&domain, Hold::UntilTheCallReturns, |w| {
        domain.kvfree_rcu_mightsleep(&ctx, Box::new(w))
    });
    assert!(!w.reader_left_at_return, "a call that had a block waited for the reader");
    assert!(!w.dropped_at_return, "freed while a pre-existing reader was still inside");
    domain.rcu_barrier(&ctx);
    assert!(w.dropped.load(Ordering::SeqCst), "not freed by rcu_barrier");
    assert!(w.dropped_after_reader.load(Ordering::SeqCst), "freed before the reader left");
    let stats = domain.alloc_stats();
    assert_eq!(stats.fallbacks_total(Policy::Reclaim), 0, "{stats:?}");
}

#[test]
fn atomic_frees_drain_the_pool_and_the_refill_worker_restocks_it() {
    // No injection: 4-entry blocks, no thread cache, a pool of 2 refilled below 1.
    let fx = Fixture::new("empty-pool", AllocConfig::new().small_blocks(), 20_000);
    let mut ctx = Sleepable::enter();
    fx.domain.register_current_thread(&ctx);
    // Let the refill worker's first top-up happen, so the count below is of later ones.
    assert!(
        wait_until(PATIENCE, || fx.domain.alloc_stats().blocks_pooled >= 2),
        "{:?}",
        fx.domain.alloc_stats()
    );
    let refills_before = fx.domain.alloc_stats().refills;
    let mut rounds = 0;
    // A reader holds a section of the domain across the flood and the check below: no batch
    // can complete meanwhile, so no block comes back to the pool that way, and only the
    // refill worker can restock it (without the holder, returned blocks could fill the pool
    // first and leave the refill worker nothing to do).
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let domain = &fx.domain;
    let (reports, stats) = rcu_tests::scope(|s| {
        // Owned by this closure: a failing assertion below drops it while unwinding, which
        // releases the holder, so the scope's join cannot hang.
        let release = release;
        s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let _guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            let _ = released.recv();
        });
        entered.recv().unwrap();
        let reports = fx.with_readers(|| loop {
            rounds += 1;
            for _ in 0..500 {
                for api in APIS {
                    fx.retire_one(&mut ctx, TokenKind::Atomic, api);
                }
            }
            let stats = fx.domain.alloc_stats();
            if stats.fallbacks_of(Policy::NoWait, FallbackReason::NoBlock) > 0 {
                assert!(stats.pool_empty > 0, "{stats:?}");
                break;
            }
            assert!(rounds < 12, "the pool never ran dry: {stats:?}");
        });
        // The empty pool woke the refill worker, which topped it up again.
        assert!(
            wait_until(PATIENCE, || fx.domain.alloc_stats().refills > refills_before),
            "no refill after the pool ran dry: {:?}",
            fx.domain.alloc_stats()
        );
        let stats = fx.domain.alloc_stats();
        release.send(()).unwrap();
        (reports, stats)
    });
    println!(
        "empty pool: {rounds} round(s); NoBlock fallbacks {}, pool_empty {}, refills {} -> {}",
        stats.fallbacks_of(Policy::NoWait, FallbackReason::NoBlock),
        stats.pool_empty,
        refills_before,
        stats.refills
    );
    fx.finish(&ctx, reports);
}

#[test]
fn seeded_probabilistic_injection_on_every_policy() {
    const ROUNDS: usize = 400;
    let fx = Fixture::new("probability", AllocConfig::new().small_blocks(), 3 * 4 * ROUNDS + 600);
    let mut ctx = Sleepable::enter();
    fx.domain.register_current_thread(&ctx);
    for (i, policy) in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait].into_iter().enumerate()
    {
        fx.domain.inject_faults(policy, FaultConfig::probability(0.4, 0x5eed + i as u64));
    }
    let headless = DropLog::new(ROUNDS);
    let reports = fx.with_readers(|| {
        for i in 0..ROUNDS {
            for kind in TokenKind::ALL {
                fx.retire_one(&mut ctx, kind, APIS[i % 3]);
            }
            // Headless frees: a block, or (injected) synchronize and free inline.
            if i % 2 == 0 {
                fx.domain.kvfree_rcu_mightsleep(&ctx, Box::new(headless.track()));
            } else {
                let nr = ctx.no_reclaim();
                fx.domain.kvfree_rcu_mightsleep(&nr, Box::new(headless.track()));
            }
        }
    });
    let stats = fx.domain.alloc_stats();
    println!("probabilistic injection: {stats:?}");
    assert!(stats.alloc_failures_injected > 0, "{stats:?}");
    for policy in [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait] {
        let fallbacks = stats.fallbacks_of(policy, FallbackReason::NoBlock);
        assert!(fallbacks > 0, "{policy:?}: no fallback: {stats:?}");
    }
    // Not everything failed: blocks were used too.
    let total_fallbacks: u64 = [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait]
        .into_iter()
        .map(|p| stats.fallbacks_total(p))
        .sum();
    assert!(total_fallbacks < (5 * ROUNDS) as u64, "{stats:?}");
    fx.domain.rcu_barrier(&ctx);
    headless.assert_all_freed_once();
    fx.finish(&ctx, reports);
}
