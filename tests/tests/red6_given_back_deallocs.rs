//! Red team, round 6 (`NoReclaimRoot`): the deallocations given back to a thread that then
//! takes a `NoReclaimRoot` are still done, and `rcu_barrier`/`rcu_barrier_async` cover them.
//!
//! Suspicion: under a live `NoReclaimRoot`, `pay_owed` returns at once and a block boundary
//! skips `finish_returned` (rcu-core `reclaim/enqueue.rs`, `keeps_work`), so the deallocations the
//! worker gave back to the thread (its `Sleepable` phase's blocks, tagged with its staging
//! area) wait for someone else: the worker's full collections (`finish_idle_given_back`) or a
//! barrier (`finish_given_back`). The scopes the root opens clear the thread's debt bit
//! (`pay_now` clears `ALLOCATOR` before calling the payer, which returns at once), so nothing
//! on the thread will ever come back for them. If the worker's collections stopped coming
//! (an idle process), the memory would never be returned; if a barrier missed a list, it
//! would return before the deallocations of frees queued before it were done (DESIGN §5.1:
//! "`rcu_barrier` covers everything queued before it, on every path (... given back ...)").
//!
//! Mechanism: a counting global allocator counts the live allocations of one layout
//! (`Rcu<Marked>`, a size nothing else here uses) on every thread, and `Marked`'s drop counts
//! drops. A thread frees `Marked` values under `Sleepable`-derived scopes (blocks tagged for
//! it: on the global domain parked and stolen by the worker, on an owned one sealed to the
//! worker), takes a `NoReclaimRoot` and keeps it, opening scopes from it (which clear its
//! debt), while the test waits for the drops (the worker has run the blocks and given them
//! back), then checks the memory: after `rcu_barrier`, after `rcu_barrier_async`, or after
//! waiting (the worker alone, no barrier, no further frees).
//!
//! Alone in its file: it counts allocations process-wide; its tests run one at a time.
#![cfg(not(any(loom, rcu_sanitizer = "address", rcu_sanitizer = "thread")))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::{wait_until, PATIENCE};
use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig};
use rcu_tests::wakers::block_on;

struct Marked(#[allow(dead_code)] [u8; 1931]);

static MARKED_LIVE: AtomicI64 = AtomicI64::new(0);
static DROPS: AtomicU64 = AtomicU64::new(0);

impl Drop for Marked {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting touches one atomic.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout == Layout::new::<Rcu<Marked>>() {
            MARKED_LIVE.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout == Layout::new::<Rcu<Marked>>() {
            MARKED_LIVE.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

static SERIAL: Mutex<()> = Mutex::new(());

const FREES: u64 = 20_000;

/// How the test settles the frees while the thread holds its root.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Settle {
    Barrier,
    AsyncBarrier,
    /// Nothing: the worker alone, within `PATIENCE`.
    Wait,
}

fn scenario(domain: Option<&'static Domain>, settle: Settle) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(wait_until(PATIENCE, || MARKED_LIVE.load(Ordering::SeqCst) == 0));
    let drops_before = DROPS.load(Ordering::SeqCst);
    let values: Vec<Box<Rcu<Marked>>> = (0..FREES).map(|_| Rcu::boxed(Marked([7; 1931]))).collect();
    let (holding_tx, holding) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    // On an owned domain, a read section held until the thread holds its root: no block runs
    // before, so the thread (which finishes what is given back at its block boundaries until
    // it takes the root) cannot finish any of them itself. Without it, under load the worker
    // kept up with the frees and the thread finished every block itself (CI, stop 32).
    let mut reader_ctx = Sleepable::enter();
    let reader = domain.map(|d| d.read_lock(&mut reader_ctx));
    let thread = std::thread::spawn(move || {
        let mut ctx = Sleepable::enter();
        for (i, v) in values.into_iter().enumerate() {
            // Blocks sealed under a policy that may allocate are tagged with this thread.
            match domain {
                Some(d) => d.kvfree_rcu(&ctx.no_reclaim(), v),
                None if i % 2 == 0 => kvfree_rcu(&ctx.no_reclaim(), v),
                None => kvfree_rcu(&ctx.atomic(), v),
            }
        }
        drop(ctx);
        let mut root = NoReclaimRoot::enter();
        holding_tx.send(()).unwrap();
        // Scopes from the root, until released: each clears the thread's debt bit.
        while release_rx.recv_timeout(Duration::from_millis(1)).is_err() {
            drop(root.no_reclaim());
            drop(root.atomic());
        }
    });
    holding.recv().unwrap();
    drop(reader);
    // Dropped values whose memory is not returned: the worker ran their blocks and gave
    // them back to the thread, which holds its root. On an owned domain every sealed block
    // waited for the reader, and only the worker's light collections (`collect_lists`, no
    // `finish_idle_given_back`) can run them: its full collections come only with a barrier
    // or after the batch delay (an hour), and no budget hurries them. So this state is
    // reached for sure; on the global domain only if the worker's next full collection has
    // not come yet.
    let dropped_not_freed = || {
        let dropped = (DROPS.load(Ordering::SeqCst) - drops_before) as i64;
        MARKED_LIVE.load(Ordering::SeqCst) - (FREES as i64 - dropped)
    };
    let reached =
        wait_until(if domain.is_some() { PATIENCE } else { Duration::from_millis(200) }, || {
            dropped_not_freed() > 0
        });
    assert!(reached || domain.is_none(), "no dropped value waited for its deallocation");
    let live_after_drops = dropped_not_freed();
    match settle {
        Settle::Barrier => {
            let ctx = Sleepable::enter();
            match domain {
                Some(d) => d.rcu_barrier(&ctx),
                None => rcu_barrier(&ctx),
            }
        }
        Settle::AsyncBarrier => match domain {
            Some(d) => block_on(d.rcu_barrier_async()),
            None => block_on(rcu_barrier_async()),
        },
        Settle::Wait => {
            // The worker's next full collection finishes them (within `MAX_IDLE` of this).
            if let Some(d) = domain {
                d.set_batch_delay(Duration::from_millis(10));
            }
            wait_until(PATIENCE, || MARKED_LIVE.load(Ordering::SeqCst) == 0);
        }
    }
    let live = MARKED_LIVE.load(Ordering::SeqCst);
    println!(
        "{settle:?} on {}: {live_after_drops} values dropped but not deallocated while the \
         thread held its root, {live} allocations left after settling",
        domain.map_or("the global domain".to_owned(), |d| d.name().to_owned())
    );
    // The values are dropped but their memory is not returned while the thread holds its root.
    assert_eq!(live, 0, "{settle:?}: {live} values not deallocated");
    assert_eq!(DROPS.load(Ordering::SeqCst) - drops_before, FREES);
    release.send(()).unwrap();
    thread.join().unwrap();
}

fn owned(name: &str) -> &'static Domain {
    // Only a barrier's collection or a full collection after the batch delay finishes what
    // the worker gave back to an idle owner: no full collection comes by itself until
    // `Settle::Wait` shortens the delay, and no budget makes the frees hurry one.
    let config = DomainConfig::new()
        .name(name.to_owned())
        .batch_delay(Duration::from_secs(3600))
        .alloc(AllocConfig::new().budget_bytes(usize::MAX));
    Box::leak(Box::new(Domain::new(config)))
}

#[test]
fn rcu_barrier_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_global() {
    scenario(None, Settle::Barrier);
}

#[test]
fn rcu_barrier_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_owned() {
    scenario(Some(owned("red6-gb-barrier")), Settle::Barrier);
}

#[test]
fn rcu_barrier_async_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_global() {
    scenario(None, Settle::AsyncBarrier);
}

#[test]
fn rcu_barrier_async_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_owned() {
    scenario(Some(owned("red6-gb-async")), Settle::AsyncBarrier);
}

#[test]
fn the_worker_alone_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_global() {
    scenario(None, Settle::Wait);
}

#[test]
fn the_worker_alone_finishes_what_was_given_back_to_a_thread_holding_a_no_reclaim_root_owned() {
    scenario(Some(owned("red6-gb-wait")), Settle::Wait);
}
