//! W3: one reader looping W1's read section and one updater replacing the pointer with a
//! fresh 64-byte node and deferring the old one's free, for a fixed time, each run in a fresh
//! process (child.rs). Ours' updater runs once per token: `RcuCell::replace` under the
//! `Sleepable` root, under a `NoReclaim` scope and under an `Atomic` scope (those two
//! allocate the node before entering the scope, as W5 does). Reader and updater Mops/s, the
//! process's peak RSS (`VmHWM`), and whether every node allocated was freed after the
//! system's barrier (ours: `rcu_barrier`; crossbeam-epoch: repeated `pin().flush()`,
//! bounded; seize: dropping the collector, which reclaims everything retired).
//!
//! QSBR (issue 26): the reader online in a `QsbrDomain` through `QsbrDomain::online`, a
//! quiescent state after every 1024 reads (where the classic reader checks the stop flag),
//! the updater `RcuCell::replace` with the `Sleepable` root on that domain's cell; against
//! urcu-qsbr's W3 in C (liburcu.rs: the same threads, batch, quiescent-state cadence and stop
//! flag; its updater `rcu_xchg_pointer` + `call_rcu`, online with a quiescent state after
//! each update, as liburcu asks of a QSBR thread that calls `call_rcu`).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crossbeam_epoch::{self as epoch, Owned};
use rcu_core::prelude::*;
use rcu_core::{DomainConfig, QsbrDomain, Rcu, RcuCell};
use seize::{reclaim, Collector, Guard as _};

use crate::child::{self, Report};
use crate::common::{freed, wait_freed, Node, PerSystem, System, CROSSBEAM, OURS, SEIZE};
use crate::liburcu;
use crate::report::{Better, Row, Target};
use crate::Config;

/// Reads per stop-flag check (and per quiescent state of the QSBR readers): the inner loop is
/// exactly W1's.
const READ_BATCH: u64 = crate::w1::QSBR_BATCH;

/// Which system runs, and for ours, the updater's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Sleepable,
    NoReclaim,
    Atomic,
    /// Ours, the reader online in a `QsbrDomain`, the updater `Sleepable`.
    Qsbr,
    Crossbeam,
    Seize,
    /// urcu-qsbr in C (liburcu.rs), the QSBR variant's peer.
    LiburcuQsbr,
}

impl Variant {
    /// Interleaved: ours, the peers, then ours' other tokens.
    const ORDER: [Variant; 7] = [
        Variant::Sleepable,
        Variant::Crossbeam,
        Variant::Seize,
        Variant::NoReclaim,
        Variant::Atomic,
        Variant::Qsbr,
        Variant::LiburcuQsbr,
    ];

    /// Ours, in the order of the rows.
    const OURS: [Variant; 3] = [Variant::Sleepable, Variant::NoReclaim, Variant::Atomic];

    fn name(self) -> &'static str {
        match self {
            Variant::Sleepable => "rcu-ctx Sleepable",
            Variant::NoReclaim => "rcu-ctx NoReclaim",
            Variant::Atomic => "rcu-ctx Atomic",
            Variant::Qsbr => "rcu-ctx QSBR",
            Variant::Crossbeam => "crossbeam-epoch",
            Variant::Seize => "seize",
            Variant::LiburcuQsbr => "liburcu-qsbr",
        }
    }

    /// Its name in a child job (`w3:<slug>:<seconds>`).
    fn slug(self) -> &'static str {
        match self {
            Variant::Sleepable => "sleepable",
            Variant::NoReclaim => "noreclaim",
            Variant::Atomic => "atomic",
            Variant::Qsbr => "qsbr",
            Variant::Crossbeam => "crossbeam",
            Variant::Seize => "seize",
            Variant::LiburcuQsbr => "liburcu-qsbr",
        }
    }

    fn from_slug(slug: &str) -> Option<Self> {
        Variant::ORDER.into_iter().find(|v| v.slug() == slug)
    }

    /// The token's name in the rows (ours only).
    fn token(self) -> &'static str {
        match self {
            Variant::Sleepable => "Sleepable",
            Variant::NoReclaim => "NoReclaim",
            Variant::Atomic => "Atomic",
            Variant::Qsbr => "Sleepable",
            Variant::Crossbeam | Variant::Seize | Variant::LiburcuQsbr => "",
        }
    }
}

struct Outcome {
    reader_mops: f64,
    updater_mops: f64,
    allocated: u64,
    freed: u64,
    drain: Duration,
}

/// Runs `reader` and `updater` on their own threads for `duration`; they return their op
/// counts and the time they ran (each thread times itself from the start barrier to its
/// last operation). Reader and updater Mops/s, and the updates.
fn race(
    duration: Duration,
    reader: impl FnOnce(&AtomicBool, &Barrier) -> (u64, Duration) + Send,
    updater: impl FnOnce(&AtomicBool, &Barrier) -> (u64, Duration) + Send,
) -> (f64, f64, u64) {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(3);
    let ((reads, rt), (updates, ut)) = std::thread::scope(|s| {
        let r = s.spawn(|| reader(&stop, &barrier));
        let u = s.spawn(|| updater(&stop, &barrier));
        barrier.wait();
        std::thread::sleep(duration);
        // Relaxed: a flag; the threads are joined below.
        stop.store(true, Ordering::Relaxed);
        (r.join().expect("reader panicked"), u.join().expect("updater panicked"))
    });
    let mops = |ops: u64, t: Duration| ops as f64 / t.as_secs_f64() / 1e6;
    (mops(reads, rt), mops(updates, ut), updates)
}

/// Ours, the updater under `token`'s context.
fn ours(duration: Duration, token: Variant) -> Outcome {
    let ctx = Sleepable::enter();
    rcu_core::init(&ctx); // process set-up, untimed
    let cell = RcuCell::new(Node::<OURS>::new(0));
    let (reader_mops, updater_mops, updates) = race(
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
            let mut ctx = Sleepable::enter();
            Domain::global().register_current_thread(&ctx);
            barrier.wait();
            let start = Instant::now();
            let mut updates = 0;
            // Relaxed (every loop): a flag.
            match token {
                Variant::Sleepable => {
                    while !stop.load(Ordering::Relaxed) {
                        cell.replace(&ctx, Rcu::boxed(Node::new(updates)));
                        updates += 1;
                    }
                }
                Variant::NoReclaim => {
                    while !stop.load(Ordering::Relaxed) {
                        let node = Rcu::boxed(Node::new(updates));
                        let scope = ctx.no_reclaim();
                        cell.replace(&scope, node);
                        updates += 1;
                    }
                }
                Variant::Atomic => {
                    while !stop.load(Ordering::Relaxed) {
                        let node = Rcu::boxed(Node::new(updates));
                        let scope = ctx.atomic();
                        cell.replace(&scope, node);
                        updates += 1;
                    }
                }
                other => unreachable!("{other:?} is not a classic token"),
            }
            (updates, start.elapsed())
        },
    );
    let start = Instant::now();
    drop(cell); // the current value is dropped inline
    rcu_barrier(&ctx);
    Outcome {
        reader_mops,
        updater_mops,
        allocated: updates + 1,
        freed: freed(OURS),
        drain: start.elapsed(),
    }
}

/// Ours on a `QsbrDomain`: the reader online, a quiescent state every `READ_BATCH` reads;
/// the updater `Sleepable`, registered with the domain, never online.
fn ours_qsbr(duration: Duration) -> Outcome {
    let ctx = Sleepable::enter();
    rcu_core::init(&ctx); // process set-up, untimed, as the classic runs
    let domain = QsbrDomain::new(DomainConfig::new().name("rcuscale-w3-qsbr"));
    let cell = RcuCell::new_in(&domain, Node::<OURS>::new(0));
    let (reader_mops, updater_mops, updates) = race(
        duration,
        |stop, barrier| {
            let mut ctx = Sleepable::enter();
            let mut online = domain.online(&mut ctx);
            // Online while it waits at the barrier: grace periods begun meanwhile wait for
            // its first quiescent state, as they would for a reader that came online then.
            barrier.wait();
            let start = Instant::now();
            let mut reads = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..READ_BATCH {
                    let node = black_box(&cell).load(&online);
                    black_box(node.data[0]);
                }
                online.quiescent_state();
                reads += READ_BATCH;
            }
            (reads, start.elapsed())
        },
        |stop, barrier| {
            let ctx = Sleepable::enter();
            domain.register_current_thread(&ctx);
            barrier.wait();
            let start = Instant::now();
            let mut updates = 0;
            // Relaxed: a flag.
            while !stop.load(Ordering::Relaxed) {
                cell.replace(&ctx, Rcu::boxed(Node::new(updates)));
                updates += 1;
            }
            (updates, start.elapsed())
        },
    );
    let start = Instant::now();
    drop(cell); // the current value is dropped inline
    domain.rcu_barrier(&ctx);
    Outcome {
        reader_mops,
        updater_mops,
        allocated: updates + 1,
        freed: freed(OURS),
        drain: start.elapsed(),
    }
}

/// urcu-qsbr's run, made and timed in C.
fn liburcu_qsbr(duration: Duration) -> Result<Outcome, String> {
    let r = liburcu::qsbr_w3(duration.as_secs_f64())?;
    Ok(Outcome {
        reader_mops: r.reader_mops,
        updater_mops: r.updater_mops,
        allocated: r.allocated,
        freed: r.freed,
        drain: Duration::from_secs_f64(r.drain_ms / 1e3),
    })
}

fn crossbeam(duration: Duration) -> Outcome {
    let atomic = epoch::Atomic::new(Node::<CROSSBEAM>::new(0));
    let (reader_mops, updater_mops, updates) = race(
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
    wait_freed(CROSSBEAM, updates + 1, Duration::from_secs(10), || epoch::pin().flush());
    Outcome {
        reader_mops,
        updater_mops,
        allocated: updates + 1,
        freed: freed(CROSSBEAM),
        drain: start.elapsed(),
    }
}

fn seize(duration: Duration) -> Outcome {
    let collector = Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(Node::<SEIZE>::new(0))));
    let (reader_mops, updater_mops, updates) = race(
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
        allocated: updates + 1,
        freed: freed(SEIZE),
        drain: start.elapsed(),
    }
}

/// Child side: one run of `variant` (its slug) for `duration`. A fresh process: the drop
/// counters start at 0.
pub(crate) fn child(variant: &str, duration: Duration) -> Result<Report, String> {
    let v = Variant::from_slug(variant).ok_or_else(|| format!("no W3 variant {variant:?}"))?;
    let o = match v {
        Variant::Crossbeam => crossbeam(duration),
        Variant::Seize => seize(duration),
        Variant::Qsbr => ours_qsbr(duration),
        Variant::LiburcuQsbr => liburcu_qsbr(duration)?,
        _ => ours(duration, v),
    };
    Ok(Report::new()
        .with("reader_mops", o.reader_mops)
        .with("updater_mops", o.updater_mops)
        .with("allocated", o.allocated as f64)
        .with("freed", o.freed as f64)
        .with("drain_ms", o.drain.as_secs_f64() * 1e3))
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let secs = cfg.w3_duration.as_secs_f64();
    let mut reader: Vec<Vec<f64>> = vec![Vec::new(); Variant::ORDER.len()];
    let mut updater = reader.clone();
    let mut rss = reader.clone();
    let mut all_freed = reader.clone();
    let mut drain = reader.clone();
    let mut failures: Vec<String> = Vec::new();
    for rep in 0..cfg.reps {
        for (i, v) in Variant::ORDER.into_iter().enumerate() {
            if v == Variant::LiburcuQsbr && !liburcu::BUILT {
                continue; // its row says it was not built
            }
            let o = child::run(&format!("w3:{}:{secs}", v.slug())).unwrap_or_else(|e| {
                eprintln!("  W3: {e}");
                failures.push(e);
                Report::new() // every figure NaN: left out of the medians
            });
            let (allocated, freed) = (o.get("allocated"), o.get("freed"));
            eprintln!(
                "  W3 rep {}/{} {:>17}: reader {:7.2} Mops/s, updater {:6.3} Mops/s, \
                 process peak RSS {:.1} MiB, freed {freed}/{allocated} (drain {:.1} ms)",
                rep + 1,
                cfg.reps,
                v.name(),
                o.get("reader_mops"),
                o.get("updater_mops"),
                o.peak_rss_mib(),
                o.get("drain_ms"),
            );
            reader[i].push(o.get("reader_mops"));
            updater[i].push(o.get("updater_mops"));
            rss[i].push(o.peak_rss_mib());
            all_freed[i].push(f64::from(u8::from(freed == allocated)));
            drain[i].push(o.get("drain_ms"));
        }
    }
    let idx = |v: Variant| Variant::ORDER.iter().position(|&x| x == v).expect("variant");
    let peers = |m: &[Vec<f64>], ours: Variant| PerSystem {
        ours: m[idx(ours)].clone(),
        crossbeam: m[idx(Variant::Crossbeam)].clone(),
        seize: m[idx(Variant::Seize)].clone(),
    };
    rows.push(
        Row::from_reps(
            "W3",
            "reader (Mops/s), Sleepable updater's runs",
            "Mops/s",
            Better::Higher,
            peers(&reader, Variant::Sleepable),
        )
        .target(Target::VsCrossbeamAtLeast(1.5)),
    );
    for v in Variant::OURS {
        let token = v.token();
        rows.push(
            Row::from_reps(
                "W3",
                format!("updater {token} (Mops/s)"),
                "Mops/s",
                Better::Higher,
                peers(&updater, v),
            )
            .target(Target::VsCrossbeamAtLeast(1.0)),
        );
        rows.push(
            Row::from_reps(
                "W3",
                format!("updater {token}: process peak RSS (MiB)"),
                "MiB",
                Better::Lower,
                peers(&rss, v),
            )
            .target(Target::VsCrossbeamAtMost(2.0)),
        );
    }
    // Every repetition must have freed everything: per repetition, ours' value is the
    // minimum over the tokens and the QSBR run; the row's value is the minimum over the
    // repetitions.
    let mut freed_reps = peers(&all_freed, Variant::Sleepable);
    freed_reps.ours = (0..cfg.reps)
        .map(|rep| {
            Variant::OURS
                .iter()
                .chain([&Variant::Qsbr])
                .map(|&v| all_freed[idx(v)][rep])
                .fold(1.0, f64::min)
        })
        .collect();
    let mut freed_row = Row::new(
        "W3",
        "freed == allocated after barrier/flush (all reps, every token, QSBR)",
        "bool",
    )
    .target(Target::OursYes);
    for s in System::ALL {
        freed_row.values[s as usize] = Some(freed_reps.get(s).iter().copied().fold(1.0, f64::min));
    }
    freed_row.reps = Some(freed_reps);
    rows.push(freed_row);
    rows.push(Row::from_reps(
        "W3",
        "time to drain after the run, Sleepable updater (ms)",
        "ms",
        Better::Lower,
        peers(&drain, Variant::Sleepable),
    ));
    // QSBR (issue 26): the reader against urcu-qsbr's in the same run; the updater against
    // its own classic figure (the Sleepable runs), per repetition.
    let liburcu_col = |m: &[Vec<f64>]| {
        if liburcu::BUILT {
            Ok(m[idx(Variant::LiburcuQsbr)].clone())
        } else {
            Err(liburcu::NOT_BUILT)
        }
    };
    let ours_only =
        |m: &[Vec<f64>], v: Variant| PerSystem { ours: m[idx(v)].clone(), ..PerSystem::default() };
    rows.push(
        Row::from_reps(
            "W3",
            "QSBR reader (Mops/s), online, a quiescent state per 1024 reads",
            "Mops/s",
            Better::Higher,
            ours_only(&reader, Variant::Qsbr),
        )
        .other("liburcu-qsbr", liburcu_col(&reader))
        .target(Target::VsOtherAtLeast(0.9)),
    );
    rows.push(
        Row::from_reps(
            "W3",
            "QSBR: updater Sleepable (Mops/s)",
            "Mops/s",
            Better::Higher,
            ours_only(&updater, Variant::Qsbr),
        )
        .other("liburcu-qsbr", liburcu_col(&updater)),
    );
    let per_rep_ratio: Vec<f64> = updater[idx(Variant::Qsbr)]
        .iter()
        .zip(&updater[idx(Variant::Sleepable)])
        .map(|(q, c)| q / c)
        .collect();
    rows.push(
        Row::from_reps(
            "W3",
            "QSBR updater / classic Sleepable updater (x)",
            "x",
            Better::Higher,
            PerSystem { ours: per_rep_ratio, ..PerSystem::default() },
        )
        .target(Target::AtLeast(1.0)),
    );
    rows.push(
        Row::from_reps(
            "W3",
            "QSBR: process peak RSS (MiB)",
            "MiB",
            Better::Lower,
            ours_only(&rss, Variant::Qsbr),
        )
        .other("liburcu-qsbr", liburcu_col(&rss)),
    );
    notes.push(format!(
        "W3: {secs} s per run, each run a fresh process (peak RSS = its VmHWM after the \
         drain); peers' figures are the same runs on every rcu-ctx row (one crossbeam-epoch \
         and one seize run per repetition). NoReclaim and Atomic updaters allocate the node \
         before entering the scope."
    ));
    if liburcu::BUILT {
        let all = all_freed[idx(Variant::LiburcuQsbr)].iter().all(|&f| f == 1.0);
        notes.push(format!(
            "W3: liburcu-qsbr freed every node after rcu_barrier in every repetition: {}",
            if all { "yes" } else { "NO" }
        ));
    }
    if !failures.is_empty() {
        notes.push(format!("W3: failed runs: {}", failures.join("; ")));
    }
}
