//! W3: one reader looping W1's read section and one updater replacing the pointer with a
//! fresh 64-byte node and deferring the old one's free, for a fixed time. Reader and updater
//! Mops/s, peak RSS growth, and whether every node allocated was freed after the system's
//! barrier (ours: `rcu_barrier`; crossbeam-epoch: repeated `pin().flush()`, bounded;
//! seize: dropping the collector, which reclaims everything retired).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crossbeam_epoch::{self as epoch, Owned};
use rcu_core::prelude::*;
use rcu_core::RcuCell;
use seize::{reclaim, Collector, Guard as _};

use crate::common::{
    freed, wait_freed, Node, PerSystem, RssMonitor, System, CROSSBEAM, OURS, SEIZE,
};
use crate::report::{Better, Row, Target};
use crate::Config;

/// Reads per stop-flag check: the inner loop is exactly W1's.
const READ_BATCH: u64 = 1024;

struct Outcome {
    reader_mops: f64,
    updater_mops: f64,
    rss: u64,
    allocated: u64,
    freed: u64,
    drain: Duration,
}

/// Runs `reader` and `updater` on their own threads for `duration`; they return their op
/// counts and the time they ran (each thread times itself from the start barrier to its
/// last operation). The RSS monitor covers the timed phase.
fn race(
    duration: Duration,
    reader: impl FnOnce(&AtomicBool, &Barrier) -> (u64, Duration) + Send,
    updater: impl FnOnce(&AtomicBool, &Barrier) -> (u64, Duration) + Send,
) -> (f64, f64, u64, u64) {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(3);
    let rss = RssMonitor::start();
    let ((reads, rt), (updates, ut)) = std::thread::scope(|s| {
        let r = s.spawn(|| reader(&stop, &barrier));
        let u = s.spawn(|| updater(&stop, &barrier));
        barrier.wait();
        std::thread::sleep(duration);
        // Relaxed: a flag; the threads are joined below.
        stop.store(true, Ordering::Relaxed);
        (r.join().expect("reader panicked"), u.join().expect("updater panicked"))
    });
    let rss = rss.finish();
    let mops = |ops: u64, t: Duration| ops as f64 / t.as_secs_f64() / 1e6;
    (mops(reads, rt), mops(updates, ut), rss, updates)
}

fn ours(duration: Duration) -> Outcome {
    let freed0 = freed(OURS);
    let cell = RcuCell::new(Node::<OURS>::new(0));
    let (reader_mops, updater_mops, rss, updates) = race(
        duration,
        |stop, barrier| {
            let mut ctx = Sleepable::enter();
            drop(read_lock(&mut ctx));
            barrier.wait();
            let start = Instant::now();
            let mut reads = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..READ_BATCH {
                    let guard = read_lock(&mut ctx);
                    let node = black_box(&cell).load(&guard);
                    black_box(node.data[0]);
                }
                reads += READ_BATCH;
            }
            (reads, start.elapsed())
        },
        |stop, barrier| {
            let ctx = Sleepable::enter();
            barrier.wait();
            let start = Instant::now();
            let mut updates = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                cell.replace(&ctx, rcu_core::Rcu::boxed(Node::new(updates)));
                updates += 1;
            }
            (updates, start.elapsed())
        },
    );
    let start = Instant::now();
    drop(cell); // the current value is dropped inline
    rcu_barrier(&Sleepable::enter());
    Outcome {
        reader_mops,
        updater_mops,
        rss,
        allocated: updates + 1,
        freed: freed(OURS) - freed0,
        drain: start.elapsed(),
    }
}

fn crossbeam(duration: Duration) -> Outcome {
    let freed0 = freed(CROSSBEAM);
    let atomic = epoch::Atomic::new(Node::<CROSSBEAM>::new(0));
    let (reader_mops, updater_mops, rss, updates) = race(
        duration,
        |stop, barrier| {
            drop(epoch::pin());
            barrier.wait();
            let start = Instant::now();
            let mut reads = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..READ_BATCH {
                    let guard = epoch::pin();
                    let p = black_box(&atomic).load(Ordering::Acquire, &guard);
                    // SAFETY: never null; retired nodes are destroyed only after every guard
                    // that could see them is gone.
                    black_box(unsafe { p.deref() }.data[0]);
                }
                reads += READ_BATCH;
            }
            (reads, start.elapsed())
        },
        |stop, barrier| {
            drop(epoch::pin());
            barrier.wait();
            let start = Instant::now();
            let mut updates = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                let guard = epoch::pin();
                let old = atomic.swap(Owned::new(Node::new(updates)), Ordering::AcqRel, &guard);
                // SAFETY: `old` is unpublished; readers that loaded it hold guards.
                unsafe { guard.defer_destroy(old) };
                updates += 1;
            }
            (updates, start.elapsed())
        },
    );
    let start = Instant::now();
    // SAFETY: the threads are joined; no one else can reach `atomic`.
    drop(unsafe { atomic.into_owned() });
    let target = freed0 + updates + 1;
    wait_freed(CROSSBEAM, target, Duration::from_secs(10), || epoch::pin().flush());
    Outcome {
        reader_mops,
        updater_mops,
        rss,
        allocated: updates + 1,
        freed: freed(CROSSBEAM) - freed0,
        drain: start.elapsed(),
    }
}

fn seize(duration: Duration) -> Outcome {
    let freed0 = freed(SEIZE);
    let collector = Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<SEIZE>::new(0))));
    let (reader_mops, updater_mops, rss, updates) = race(
        duration,
        |stop, barrier| {
            drop(collector.enter());
            barrier.wait();
            let start = Instant::now();
            let mut reads = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..READ_BATCH {
                    let guard = collector.enter();
                    let p = guard.protect(black_box(&ptr), Ordering::Acquire);
                    // SAFETY: retired nodes are reclaimed only after every guard that could
                    // see them is gone.
                    black_box(unsafe { &*p }.data[0]);
                }
                reads += READ_BATCH;
            }
            (reads, start.elapsed())
        },
        |stop, barrier| {
            drop(collector.enter());
            barrier.wait();
            let start = Instant::now();
            let mut updates = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                let new = Box::into_raw(Box::new(Node::new(updates)));
                // AcqRel: Release publishes the node; Acquire takes the old one over.
                let old = ptr.swap(new, Ordering::AcqRel);
                // SAFETY: `old` is unpublished and came from Box::into_raw.
                unsafe { collector.retire(old, reclaim::boxed) };
                updates += 1;
            }
            (updates, start.elapsed())
        },
    );
    let start = Instant::now();
    // SAFETY: unpublished (the threads are joined) and from Box::into_raw.
    unsafe { collector.retire(ptr.into_inner(), reclaim::boxed) };
    drop(collector); // reclaims everything retired
    Outcome {
        reader_mops,
        updater_mops,
        rss,
        allocated: updates + 1,
        freed: freed(SEIZE) - freed0,
        drain: start.elapsed(),
    }
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>) {
    let mut reader = PerSystem::default();
    let mut updater = PerSystem::default();
    let mut rss = PerSystem::default();
    let mut all_freed = PerSystem::default();
    let mut drain = PerSystem::default();
    for rep in 0..cfg.reps {
        for s in System::ALL {
            let o = match s {
                System::Ours => ours(cfg.w3_duration),
                System::Crossbeam => crossbeam(cfg.w3_duration),
                System::Seize => seize(cfg.w3_duration),
            };
            eprintln!(
                "  W3 rep {}/{} {:>15}: reader {:7.2} Mops/s, updater {:6.3} Mops/s, RSS +{:.1} MiB, \
                 freed {}/{} (drain {:.1} ms)",
                rep + 1,
                cfg.reps,
                s.name(),
                o.reader_mops,
                o.updater_mops,
                o.rss as f64 / (1 << 20) as f64,
                o.freed,
                o.allocated,
                o.drain.as_secs_f64() * 1e3
            );
            reader.push(s, o.reader_mops);
            updater.push(s, o.updater_mops);
            rss.push(s, o.rss as f64 / (1 << 20) as f64);
            all_freed.push(s, f64::from(u8::from(o.freed == o.allocated)));
            drain.push(s, o.drain.as_secs_f64() * 1e3);
        }
    }
    rows.push(
        Row::from_reps("W3", "reader (Mops/s)", "Mops/s", Better::Higher, reader)
            .target(Target::VsCrossbeamAtLeast(1.5)),
    );
    rows.push(
        Row::from_reps("W3", "updater (Mops/s)", "Mops/s", Better::Higher, updater)
            .target(Target::VsCrossbeamAtLeast(1.0)),
    );
    rows.push(Row::from_reps("W3", "peak RSS growth (MiB)", "MiB", Better::Lower, rss));
    // Every repetition must have freed everything: the minimum over repetitions.
    let mut freed_row = Row::new("W3", "freed == allocated after barrier/flush (all reps)", "bool")
        .target(Target::OursYes);
    for s in System::ALL {
        let v = all_freed.get(s);
        freed_row.values[s as usize] =
            (!v.is_empty()).then(|| v.iter().copied().fold(1.0, f64::min));
    }
    freed_row.reps = Some(all_freed);
    rows.push(freed_row);
    rows.push(Row::from_reps("W3", "time to drain after the run (ms)", "ms", Better::Lower, drain));
}
