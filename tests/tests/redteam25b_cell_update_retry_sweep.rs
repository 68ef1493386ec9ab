//! Red team 25b, suspicion 2: an `RcuCell` that outlives its `Domain` handle, updated while
//! the thread registers with another domain (a sweep of dropped domains' registrations).
//!
//! `RcuCell::update` looks its slot up once (`prepare`) and keeps the `&Slot` for every retry
//! of its loop. When the compare-exchange loses to another writer, it drops the value its
//! closure made (`drop(Box::from_raw(new))`), outside the section, and loops. That drop is
//! user code: here it registers the thread with a new domain, whose `register_in` sweeps the
//! registrations of dropped domains. The cell's domain is dropped and the thread is outside
//! its section at that moment, so the sweep ends that registration and releases the slot
//! (`Registry::release`). The retry then enters its section on the released slot, which
//! other threads may claim: one that does and exits ends the section it finds open there as
//! a forgotten guard of its own (`end`, `force_end_sections`), and the grace period that the
//! retry's section should hold off completes. The value the closure is looking at is dropped
//! under it (use-after-free). Seen at the time of writing: the claimer's exit report blames
//! it ("thread ... exited inside 1 read section(s) of domain 'rt25b-dropped': a ReadGuard was
//! leaked ... the section was ended"), the value is dropped while the closure holds it, and
//! in debug builds the retry's section end then panics ("rcu-core internal error: read
//! section exit without entry", a `debug_assert`).
//!
//! The same holds for any user code `update` runs outside its section between two uses of
//! the slot; the compare-exchange retry is the one place it does.
//!
//! Deterministic: the competing writer is told to write from inside the closure's first run;
//! the threads that claim the free slots of the domain are held until all have claimed.
//! Failing at the time of writing.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::DomainConfig;
use rcu_tests::drop_log::{DropLog, Tracked};

/// A cell value. Dropping one made with `sweeps` registers the dropping thread with a new
/// domain, as any value's `Drop` may.
struct Val {
    tracked: Tracked,
    sweeps: bool,
}

impl Drop for Val {
    fn drop(&mut self) {
        if self.sweeps {
            let elsewhere = Domain::new(DomainConfig::new().name("rt25b-elsewhere"));
            let ctx = Sleepable::enter(); // outside any section: allowed
            elsewhere.register_current_thread(&ctx); // sweeps dropped domains' registrations
        }
    }
}

/// How many threads claim the domain's free slots (the released one among them).
const CLAIMERS: usize = 4;

#[test]
fn an_update_retry_after_a_sweep_is_counted_on_a_live_slot() {
    let log = DropLog::new(1000);
    let domain = Domain::new(DomainConfig::new().name("rt25b-dropped"));
    let cell = Arc::new(RcuCell::new_in(&domain, Val { tracked: log.track(), sweeps: false }));
    // The writer that makes the first compare-exchange fail.
    let (race_tx, race_rx) = mpsc::channel::<()>();
    let (raced_tx, raced_rx) = mpsc::channel::<()>();
    let writer = {
        let cell = Arc::clone(&cell);
        std::thread::spawn(move || {
            let ctx = Sleepable::enter();
            race_rx.recv().unwrap();
            cell.set(&ctx, Val { tracked: log.track(), sweeps: false });
            raced_tx.send(()).unwrap();
            // Stays alive (and registered): its slot is not one of the free ones.
            let _ = race_rx.recv();
        })
    };
    // The claimers: each writes once (registering with the cell's domain: it claims a free
    // slot), waits until all have, then exits (ending its registration).
    let (claim_tx, claim_rx) = mpsc::channel::<()>();
    let claim_rx = Arc::new(std::sync::Mutex::new(claim_rx));
    let all_claimed = Arc::new(Barrier::new(CLAIMERS));
    let claimers_done = Arc::new(AtomicUsize::new(0));
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|_| {
            let (cell, claim_rx, all_claimed, done) = (
                Arc::clone(&cell),
                Arc::clone(&claim_rx),
                Arc::clone(&all_claimed),
                Arc::clone(&claimers_done),
            );
            std::thread::spawn(move || {
                claim_rx.lock().unwrap().recv().unwrap();
                {
                    let ctx = Sleepable::enter();
                    cell.set(&ctx, Val { tracked: log.track(), sweeps: false });
                }
                all_claimed.wait();
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    let held_id = Arc::new(AtomicU64::new(u64::MAX));
    let freed_under_reader = Arc::new(AtomicBool::new(false));
    let updater = {
        let (cell, held_id, freed) =
            (Arc::clone(&cell), Arc::clone(&held_id), Arc::clone(&freed_under_reader));
        std::thread::spawn(move || {
            let mut ctx = Sleepable::enter();
            {
                // Registers with the domain while its handle lives (any read does).
                let _g = domain.read_lock(&mut ctx);
            }
            drop(domain); // the cell keeps the state; the registration stays in the list
            let mut runs = 0;
            cell.update(&mut ctx, |cur| {
                runs += 1;
                match runs {
                    1 => {
                        // Another writer gets in first: the compare-exchange fails, and the
                        // value returned here is dropped outside the section (it sweeps).
                        race_tx.send(()).unwrap();
                        raced_rx.recv().unwrap();
                        Rcu::boxed(Val { tracked: log.track(), sweeps: true })
                    }
                    2 => {
                        // The retry's section: `cur` must live until this closure returns.
                        let id = cur.tracked.id();
                        held_id.store(id as u64, Ordering::SeqCst);
                        for _ in 0..CLAIMERS {
                            claim_tx.send(()).unwrap();
                        }
                        let until = Instant::now() + Duration::from_secs(10);
                        while Instant::now() < until
                            && !(claimers_done.load(Ordering::SeqCst) == CLAIMERS
                                && log.is_freed(id))
                        {
                            std::thread::yield_now();
                        }
                        freed.store(log.is_freed(id), Ordering::SeqCst);
                        Rcu::boxed(Val { tracked: log.track(), sweeps: false })
                    }
                    _ => Rcu::boxed(Val { tracked: log.track(), sweeps: false }),
                }
            });
        })
    };
    let updater_result = updater.join();
    for c in claimers {
        c.join().unwrap();
    }
    writer.join().unwrap(); // its channel's sender went with the updater
    assert!(
        !freed_under_reader.load(Ordering::SeqCst),
        "value {} was dropped while RcuCell::update's closure held it: the retry's section was \
         entered on the slot the sweep had released, and a claimer of that slot ended it at \
         its exit",
        held_id.load(Ordering::SeqCst)
    );
    assert!(updater_result.is_ok(), "the updater panicked");
}
