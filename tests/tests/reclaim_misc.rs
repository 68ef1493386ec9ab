//! DESIGN §5: the rest of the deferred-reclamation contract.
//!
//! - a panicking callback is caught, reported and counted, and the rest of its batch runs;
//! - a thread's staged work survives its exit and `rcu_barrier` from another thread covers it;
//! - `rcu_barrier` covers kvfree batches and items other (live) threads queued before it;
//! - callbacks queue more work with their `Atomic` token (a chain, one link per barrier);
//! - `call_rcu_fn` closures run, and only after a grace period; with every block request
//!   failing they take the intrusive list, each one (a barrier first takes the blocks the
//!   thread holds, so no block is left to it, however fast the worker is);
//! - `RcuCell` replace/update/set under every token, with concurrent readers and writers;
//! - dropping a domain runs everything queued on it.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FallbackReason, FaultConfig, Policy};
use rcu_tests::drop_log::wait_until;
use rcu_tests::drop_log::{DropLog, Tracked};
use rcu_tests::readers::{check_reads, StopOnDrop};
use rcu_tests::{with_token, TokenKind};

/// Bound on waits that only a hang would exceed (a loaded 2-CPU machine under a sanitizer
/// included).
const PATIENCE: Duration = Duration::from_secs(60);

fn drop_it<T>(obj: Box<Rcu<T>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// A domain whose worker does not collect on its own for a long while, so that what runs is
/// what `rcu_barrier` (or dropping the domain) made run.
fn lazy_domain(name: &'static str) -> Domain {
    Domain::new(DomainConfig::new().name(name).batch_delay(Duration::from_secs(30)))
}

static CALLBACKS_OK: AtomicU64 = AtomicU64::new(0);

fn maybe_panic(obj: Box<Rcu<(Tracked, bool)>>, _ctx: &Atomic<'_>) {
    if obj.1 {
        panic!("deliberate panic in an RCU callback (on purpose)");
    }
    CALLBACKS_OK.fetch_add(1, Ordering::SeqCst);
    drop(obj);
}

#[test]
fn a_panicking_callback_is_caught_counted_and_its_batch_still_runs() {
    rcu_tests::quiet::quiet_deliberate_panics();
    rcu_tests::quiet::quiet_reports("RCU callback(s) of domain 'panics' panicked");
    let domain = lazy_domain("panics");
    let ctx = Sleepable::enter();
    let log = DropLog::new(200);
    let ok_before = CALLBACKS_OK.load(Ordering::SeqCst);
    // 200 callbacks from one thread: one 253-entry block, one batch (nothing collects before
    // the barrier asks). Every 50th panics.
    for i in 0..200 {
        domain.call_rcu(&ctx, Rcu::boxed((log.track(), i % 50 == 7)), maybe_panic);
    }
    domain.rcu_barrier(&ctx);
    let stats = domain.stats();
    assert_eq!(stats.callback_panics, 4, "{stats:?}");
    // Reported too, once the count is out.
    let reported = || rcu_tests::quiet::reported_callback_panics("panics");
    assert!(wait_until(Duration::from_secs(5), || reported() == 4), "reported: {}", reported());
    assert_eq!(CALLBACKS_OK.load(Ordering::SeqCst) - ok_before, 196);
    assert_eq!(stats.callbacks_invoked, 200, "{stats:?}");
    assert_eq!(stats.callbacks_pending, 0, "{stats:?}");
    // The panicking callbacks' objects were dropped while unwinding.
    log.assert_all_freed_once();
    // The domain still works afterwards.
    domain.call_rcu(&ctx, Rcu::boxed((log_one(), false)), maybe_panic);
    domain.rcu_barrier(&ctx);
    assert_eq!(CALLBACKS_OK.load(Ordering::SeqCst) - ok_before, 197);
}

fn log_one() -> Tracked {
    DropLog::new(1).track()
}

#[test]
fn staged_work_of_an_exited_thread_is_covered_by_rcu_barrier() {
    let domain = lazy_domain("thread-exit");
    let log = DropLog::new(10 * 1000);
    for round in 0..10 {
        rcu_tests::scope(|s| {
            s.spawn(|| {
                let mut ctx = Sleepable::enter();
                // Fewer than a block's worth each: they stay staged in the thread's block.
                for _ in 0..25 {
                    for kind in TokenKind::ALL {
                        with_token!(&mut ctx, domain, kind, |t| {
                            domain.kvfree_rcu(t, Rcu::boxed(log.track()));
                            domain.call_rcu(t, Rcu::boxed(log.track()), drop_it);
                        });
                    }
                }
            });
        });
        // The thread has exited; its staged block was handed over at exit.
        let ctx = Sleepable::enter();
        domain.rcu_barrier(&ctx);
        assert_eq!(log.freed(), log.allocated(), "round {round}: the exited thread's items");
    }
    log.assert_all_freed_once();
    assert_eq!(domain.stats().callbacks_pending, 0);
}

#[test]
fn rcu_barrier_covers_kvfree_batches_and_other_threads_staged_items() {
    const PRODUCERS: usize = 3;
    const PER_ROUND: usize = 700;
    const ROUNDS: usize = 5;
    let domain = lazy_domain("barrier");
    let log = DropLog::new(PRODUCERS * ROUNDS * PER_ROUND * 2 + 8000);
    let ctx = Sleepable::enter();

    // Thousands of kvfree_rcu from this thread, every token, then one barrier.
    {
        let mut ctx = Sleepable::enter();
        for i in 0..8000 {
            let kind = TokenKind::ALL[i % 4];
            with_token!(&mut ctx, domain, kind, |t| domain.kvfree_rcu(t, Rcu::boxed(log.track())));
        }
        domain.rcu_barrier(&ctx);
        assert_eq!(log.freed(), 8000, "kvfree batches not covered by rcu_barrier");
        let stats = domain.stats();
        assert_eq!(stats.callbacks_pending, 0, "{stats:?}");
        assert_eq!(stats.callbacks_invoked, stats.callbacks_queued, "{stats:?}");
    }

    // Live threads queue, tell us, and keep living (their blocks must be collected, not
    // adopted): the barrier we then call covers what they queued.
    rcu_tests::scope(|s| {
        let (queued_tx, queued) = mpsc::channel();
        let mut go = Vec::new();
        for p in 0..PRODUCERS {
            let (go_tx, go_rx) = mpsc::channel::<bool>();
            go.push(go_tx);
            let queued_tx = queued_tx.clone();
            let domain = &domain;
            s.spawn(move || {
                let mut ctx = Sleepable::enter();
                domain.register_current_thread(&ctx);
                while go_rx.recv() == Ok(true) {
                    for i in 0..PER_ROUND {
                        let kind = TokenKind::ALL[(i + p) % 4];
                        with_token!(&mut ctx, domain, kind, |t| {
                            if i % 2 == 0 {
                                domain.kvfree_rcu(t, Rcu::boxed(log.track()));
                            } else {
                                domain.call_rcu(t, Rcu::boxed(log.track()), drop_it);
                            }
                        });
                    }
                    queued_tx.send(()).unwrap();
                }
            });
        }
        for round in 0..ROUNDS {
            for g in &go {
                g.send(true).unwrap();
            }
            for _ in 0..PRODUCERS {
                queued.recv().unwrap();
            }
            // Everything allocated so far was queued before this call.
            let allocated = log.allocated();
            domain.rcu_barrier(&ctx);
            assert!(
                log.freed() >= allocated,
                "round {round}: rcu_barrier returned with {} of {allocated} items not run",
                allocated - log.freed()
            );
        }
        for g in &go {
            g.send(false).unwrap();
        }
    });
    log.assert_all_freed_once();
}

/// A domain pointer a callback can carry (the test keeps the domain alive until the chain
/// has ended).
struct DomainPtr(*const Domain);

// SAFETY: `Domain` is `Sync`; the pointer is only dereferenced while the test keeps the
// domain alive (it waits for the chain with barriers before dropping it).
unsafe impl Send for DomainPtr {}

impl DomainPtr {
    /// # Safety
    /// 1. The domain is alive for `'a`.
    unsafe fn get<'a>(&self) -> &'a Domain {
        // SAFETY: (1).
        unsafe { &*self.0 }
    }
}

struct Link {
    domain: DomainPtr,
    remaining: u32,
    /// Freed on the way with the callback's Atomic token (boxes: what `kvfree_rcu` takes).
    #[allow(clippy::vec_box)]
    cargo: Vec<Box<Rcu<Tracked>>>,
}

static LINKS_RUN: AtomicU64 = AtomicU64::new(0);

fn next_link(mut link: Box<Rcu<Link>>, ctx: &Atomic<'_>) {
    LINKS_RUN.fetch_add(1, Ordering::SeqCst);
    // SAFETY: (1) the test keeps the domain alive until the chain has ended.
    let domain = unsafe { link.domain.get() };
    if let Some(obj) = link.cargo.pop() {
        domain.kvfree_rcu(ctx, obj);
    }
    link.remaining -= 1;
    if link.remaining > 0 {
        // Re-queue the same box: a callback may not allocate.
        domain.call_rcu(ctx, link, next_link);
    }
}

#[test]
fn callbacks_queue_more_callbacks_with_their_atomic_token() {
    const LINKS: u32 = 30;
    let domain = lazy_domain("chain");
    let ctx = Sleepable::enter();
    let log = DropLog::new(LINKS as usize);
    let cargo = (0..LINKS).map(|_| Rcu::boxed(log.track())).collect();
    let before = LINKS_RUN.load(Ordering::SeqCst);
    let link = Link { domain: DomainPtr(&domain), remaining: LINKS, cargo };
    domain.call_rcu(&ctx, Rcu::boxed(link), next_link);
    let mut barriers = 0;
    loop {
        let ran = LINKS_RUN.load(Ordering::SeqCst) - before;
        if ran == u64::from(LINKS) {
            break;
        }
        domain.rcu_barrier(&ctx);
        barriers += 1;
        // The link queued before this barrier has run (and queued the next one).
        assert!(
            LINKS_RUN.load(Ordering::SeqCst) - before > ran,
            "barrier {barriers} returned without running the pending link"
        );
        assert!(barriers <= LINKS, "the chain did not advance");
    }
    domain.rcu_barrier(&ctx);
    assert_eq!(LINKS_RUN.load(Ordering::SeqCst) - before, u64::from(LINKS));
    log.assert_all_freed_once();
}

#[test]
fn call_rcu_fn_closures_run_once_after_a_grace_period() {
    // No thread cache: the only blocks this thread can hold are its current and parked ones,
    // which a barrier takes away (see below).
    let domain = Domain::new(
        DomainConfig::new().name("closures").alloc(AllocConfig::new().thread_cache_blocks(0)),
    );
    let mut ctx = Sleepable::enter();
    let log = DropLog::new(4000);
    let ran = Arc::new(AtomicU64::new(0));
    let queue = |ctx: &mut Sleepable, n: usize| {
        for i in 0..n {
            let obj = log.track();
            let ran = ran.clone();
            let f = move |_: &Atomic<'_>| {
                ran.fetch_add(1, Ordering::SeqCst);
                drop(obj);
            };
            if i % 2 == 0 {
                domain.call_rcu_fn(&*ctx, f);
            } else {
                let nr = ctx.no_reclaim();
                domain.call_rcu_fn(&nr, f);
            }
        }
    };
    queue(&mut ctx, 1000);
    // The barrier's collection takes this thread's current block and its parked ones (blocks
    // it sealed under Reclaim and would reuse once their grace period has passed, with no
    // block request). Without it, whether a later Reclaim call needs a new block depends on
    // how soon the worker completes those grace periods.
    domain.rcu_barrier(&ctx);
    assert_eq!(ran.load(Ordering::SeqCst), 1000);
    // With every block request failing and no block left to this thread, every closure
    // rides the intrusive list: half of them under each policy.
    let before = domain.alloc_stats();
    domain.inject_faults(Policy::Reclaim, FaultConfig::every_nth(1));
    domain.inject_faults(Policy::NoReclaim, FaultConfig::every_nth(1));
    queue(&mut ctx, 1000);
    domain.inject_faults(Policy::Reclaim, FaultConfig::default());
    domain.inject_faults(Policy::NoReclaim, FaultConfig::default());
    let after = domain.alloc_stats();
    for policy in [Policy::Reclaim, Policy::NoReclaim] {
        let no_block = after.fallbacks_of(policy, FallbackReason::NoBlock)
            - before.fallbacks_of(policy, FallbackReason::NoBlock);
        assert_eq!(no_block, 500, "{policy:?}: {before:?} -> {after:?}");
    }
    domain.rcu_barrier(&ctx);
    assert_eq!(ran.load(Ordering::SeqCst), 2000);
    log.assert_all_freed_once();

    // A closure queued while an older reader is inside does not run before it leaves.
    let reader_left = Arc::new(AtomicBool::new(false));
    let ran_early = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let left = reader_left.clone();
        let domain = &domain;
        let reader = s.spawn(move || {
            let mut ctx = Sleepable::enter();
            let guard = domain.read_lock(&mut ctx);
            entered_tx.send(()).unwrap();
            let _ = release.recv();
            left.store(true, Ordering::SeqCst);
            drop(guard);
        });
        entered.recv().unwrap();
        let (left, early) = (reader_left.clone(), ran_early.clone());
        domain.call_rcu_fn(&ctx, move |_| {
            early.store(!left.load(Ordering::SeqCst), Ordering::SeqCst)
        });
        let ran_before = ran.load(Ordering::SeqCst);
        // Give the worker time to (wrongly) run it.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ran.load(Ordering::SeqCst), ran_before);
        release_tx.send(()).unwrap();
        reader.join().unwrap();
    });
    domain.rcu_barrier(&ctx);
    assert!(!ran_early.load(Ordering::SeqCst), "a closure ran while an older reader was inside");
}

#[test]
fn rcu_cell_replace_update_and_set_under_every_token_with_readers() {
    const ROUNDS: usize = 200;
    let domain =
        Domain::new(DomainConfig::new().name("cells").batch_delay(Duration::from_micros(200)));
    let log = DropLog::new(ROUNDS * 4 * 6 + 16);
    let cell = RcuCell::new_in(&domain, log.track());
    let stop = AtomicBool::new(false);
    let reports = std::thread::scope(|s| {
        let readers: Vec<_> =
            (0..2).map(|_| s.spawn(|| check_reads(&domain, &stop, &cell))).collect();
        let stop_readers = StopOnDrop(&stop);
        let mut ctx = Sleepable::enter();
        domain.register_current_thread(&ctx);
        for i in 0..ROUNDS {
            for kind in TokenKind::ALL {
                with_token!(&mut ctx, domain, kind, |mut t| {
                    cell.replace(&*t, Rcu::boxed(log.track()));
                    // Single writer: `f` runs once; pre-boxed so Atomic callers do not allocate
                    // inside it.
                    let mut spare = Some(Rcu::boxed(log.track()));
                    cell.update(t, |old| {
                        assert!(!log.is_freed(old.id()), "update saw a freed value");
                        spare.take().expect("f ran twice with a single writer")
                    });
                });
            }
            cell.set(&ctx, log.track());
            let nr = ctx.no_reclaim();
            cell.set(&nr, log.track());
            drop(nr);
            if i % 32 == 0 {
                std::thread::yield_now();
            }
        }
        drop(stop_readers);
        readers.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    for r in reports {
        assert_eq!(r.violations, 0, "{r:?}");
    }
    let ctx = Sleepable::enter();
    domain.rcu_barrier(&ctx);
    log.assert_no_double_free();
    assert_eq!(log.freed(), log.allocated() - 1, "retired values not all freed");
    drop(cell);
    log.assert_all_freed_once();
}

#[test]
fn rcu_cell_concurrent_updates_are_not_lost() {
    const WRITERS: usize = 2;
    const UPDATES: usize = 500;
    let domain = Domain::new(DomainConfig::new().name("cell-updates"));
    let log = DropLog::new(WRITERS * UPDATES * 16 + 1);
    let cell = RcuCell::new_in(&domain, (log.track(), 0u64));
    rcu_tests::scope(|s| {
        for w in 0..WRITERS {
            let (cell, domain) = (&cell, &domain);
            s.spawn(move || {
                let mut ctx = Sleepable::enter();
                domain.register_current_thread(&ctx);
                // Boxes for the Atomic updates (an Atomic caller must not allocate in `f`);
                // a lost race retires the unpublished box and takes another.
                let mut spares: Vec<_> =
                    (0..UPDATES * 4).map(|_| Rcu::boxed((log.track(), 0u64))).collect();
                for i in 0..UPDATES {
                    if (i + w) % 2 == 0 {
                        cell.update(&mut ctx, |old| Rcu::boxed((log.track(), old.1 + 1)));
                    } else {
                        let mut atomic = ctx.atomic();
                        cell.update(&mut atomic, |old| {
                            let mut b = spares.pop().expect("enough spare boxes");
                            b.1 = old.1 + 1;
                            b
                        });
                    }
                }
            });
        }
    });
    let mut ctx = Sleepable::enter();
    {
        let guard = domain.read_lock(&mut ctx);
        assert_eq!(cell.load(&guard).1, (WRITERS * UPDATES) as u64, "an update was lost");
    }
    domain.rcu_barrier(&ctx);
    log.assert_no_double_free();
    drop(cell);
    log.assert_all_freed_once();
}

#[test]
fn dropping_a_domain_still_runs_everything_queued_on_it() {
    let domain = lazy_domain("dropped");
    let log = DropLog::new(4000);
    let headless = DropLog::new(100);
    let closures_ran = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        // Another live thread's staged items (collected from its block, not adopted).
        let (queued_tx, queued) = mpsc::channel();
        let (exit_tx, exit) = mpsc::channel::<()>();
        let domain_ptr = DomainPtr(&domain);
        let helper = s.spawn(move || {
            let mut ctx = Sleepable::enter();
            // SAFETY: (1) used only before `queued` is sent; the domain is dropped after that.
            let domain = unsafe { domain_ptr.get() };
            domain.register_current_thread(&ctx);
            for _ in 0..100 {
                let atomic = ctx.atomic();
                domain.kvfree_rcu(&atomic, Rcu::boxed(log.track()));
            }
            queued_tx.send(()).unwrap();
            let _ = exit.recv();
        });
        queued.recv().unwrap();

        let mut ctx = Sleepable::enter();
        for i in 0..500 {
            let kind = TokenKind::ALL[i % 4];
            with_token!(&mut ctx, domain, kind, |t| {
                domain.kvfree_rcu(t, Rcu::boxed(log.track()));
                domain.call_rcu(t, Rcu::boxed(log.track()), drop_it);
            });
            let ran = closures_ran.clone();
            domain.call_rcu_fn(&ctx, move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Intrusive items too.
        domain.inject_faults(Policy::NoWait, FaultConfig::every_nth(1));
        for _ in 0..100 {
            let atomic = ctx.atomic();
            domain.kvfree_rcu(&atomic, Rcu::boxed(log.track()));
        }
        for _ in 0..100 {
            domain.kvfree_rcu_mightsleep(&ctx, Box::new(headless.track()));
        }
        assert!(log.freed() < log.allocated(), "the lazy domain freed everything already");
        drop(domain);
        // The drop only signals; the worker runs everything queued (the helper still holds
        // a registration, so the worker serves on) and then exits.
        assert!(
            log.wait_freed(log.allocated(), PATIENCE),
            "items still queued after the domain's drop: {} of {} freed",
            log.freed(),
            log.allocated()
        );
        assert!(wait_until(PATIENCE, || closures_ran.load(Ordering::SeqCst) == 500));
        assert!(headless.wait_freed(headless.allocated(), PATIENCE));
        headless.assert_all_freed_once();
        exit_tx.send(()).unwrap();
        helper.join().unwrap();
    });
    log.assert_all_freed_once();
}

#[test]
fn a_panicking_update_closure_does_not_leave_a_read_section_behind() {
    // `RcuCell::update` runs `f` inside a read section of the cell's domain; if `f` panics,
    // that section must end, or every later grace period of the domain waits forever.
    rcu_tests::quiet::quiet_deliberate_panics();
    let domain = Arc::new(Domain::new(DomainConfig::new().name("update-panic")));
    let log = DropLog::new(4);
    let cell = RcuCell::new_in(&domain, log.track());
    let mut ctx = Sleepable::enter();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cell.update(&mut ctx, |_| panic!("deliberate panic in an update closure (on purpose)"));
    }));
    assert!(result.is_err());
    // A grace period from another thread still completes (not scoped: if it hangs, the test
    // fails instead of hanging).
    let (done_tx, done) = mpsc::channel();
    let other = domain.clone();
    std::thread::spawn(move || {
        let ctx = Sleepable::enter();
        other.synchronize_rcu(&ctx);
        let _ = done_tx.send(());
    });
    let start = Instant::now();
    assert!(
        done.recv_timeout(PATIENCE).is_ok(),
        "a grace period never completed after an update closure panicked ({:?}): its read \
         section was left open",
        start.elapsed()
    );
    // And on this thread too (which would otherwise count as inside a read section).
    domain.synchronize_rcu(&ctx);
    cell.set(&ctx, log.track());
    domain.rcu_barrier(&ctx);
    drop(cell);
    log.assert_all_freed_once();
}
