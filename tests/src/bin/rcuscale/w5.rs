//! W5: deferred-free flood. One thread, N x (allocate a 64-byte node, defer its free), each
//! run in a fresh process (child.rs). Enqueue Mops/s is N over the loop's time; drained
//! Mops/s is N over the time until every node has been dropped (the loop plus the system's
//! barrier or flush); the process's peak RSS (`VmHWM`) after the drain.
//!
//! Ours: `kvfree_rcu` with each token and `call_rcu` (Sleepable) whose callback drops the
//! node, on the global domain after `rcu_core::init`; the node is allocated before the
//! token's scope is entered and the `NoReclaim`/`Atomic` scope is entered and left per call
//! (an `Atomic` scope may not allocate). crossbeam-epoch: the idiomatic per-operation
//! `let guard = epoch::pin(); guard.defer_destroy(...)`, drained by `pin().flush()` in a
//! loop. seize: `Collector::retire` (no guard), drained by dropping the collector.

use std::time::{Duration, Instant};

use crossbeam_epoch::{self as epoch, Owned};
use rcu_core::prelude::*;
use rcu_core::{Rcu, RcuHead};
use seize::{reclaim, Collector};

use crate::child::{self, Report};
use crate::common::{freed, wait_freed, Node, PerSystem, CROSSBEAM, OURS, SEIZE};
use crate::report::{Better, Row, Target};
use crate::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    KvfreeSleepable,
    KvfreeNoReclaim,
    KvfreeAtomic,
    CallRcuSleepable,
    Crossbeam,
    Seize,
}

impl Variant {
    /// Interleaved: ours, the peers, then ours' other tokens.
    const ORDER: [Variant; 6] = [
        Variant::KvfreeSleepable,
        Variant::Crossbeam,
        Variant::Seize,
        Variant::KvfreeNoReclaim,
        Variant::KvfreeAtomic,
        Variant::CallRcuSleepable,
    ];

    /// Ours, in the order of the rows.
    const OURS: [Variant; 4] = [
        Variant::KvfreeSleepable,
        Variant::KvfreeNoReclaim,
        Variant::KvfreeAtomic,
        Variant::CallRcuSleepable,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::KvfreeSleepable => "kvfree_rcu Sleepable",
            Variant::KvfreeNoReclaim => "kvfree_rcu NoReclaim",
            Variant::KvfreeAtomic => "kvfree_rcu Atomic",
            Variant::CallRcuSleepable => "call_rcu Sleepable",
            Variant::Crossbeam => "crossbeam defer_destroy",
            Variant::Seize => "seize retire",
        }
    }

    /// Its name in a child job (`w5:<slug>:<n>`).
    fn slug(self) -> &'static str {
        match self {
            Variant::KvfreeSleepable => "kvfree-sleepable",
            Variant::KvfreeNoReclaim => "kvfree-noreclaim",
            Variant::KvfreeAtomic => "kvfree-atomic",
            Variant::CallRcuSleepable => "callrcu-sleepable",
            Variant::Crossbeam => "crossbeam",
            Variant::Seize => "seize",
        }
    }

    fn from_slug(slug: &str) -> Option<Self> {
        Variant::ORDER.into_iter().find(|v| v.slug() == slug)
    }

    /// The targets against crossbeam-epoch: (enqueue and drained at least, peak RSS
    /// at most), as ratios; none for `call_rcu`, measured for information.
    fn targets(self) -> Option<(f64, f64)> {
        match self {
            Variant::KvfreeSleepable => Some((1.0, 1.5)),
            Variant::KvfreeNoReclaim | Variant::KvfreeAtomic => Some((0.9, 2.0)),
            _ => None,
        }
    }
}

fn drop_node(obj: Box<Rcu<Node<OURS>>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

/// Enqueue and drained times of `n` deferred frees with `v`, one of ours.
fn ours(v: Variant, n: u64) -> (Duration, Duration) {
    let mut ctx = Sleepable::enter();
    rcu_core::init(&ctx); // process set-up and this thread's registration, untimed
    let start = Instant::now();
    match v {
        Variant::KvfreeSleepable => {
            for i in 0..n {
                kvfree_rcu(&ctx, Rcu::boxed(Node::<OURS>::new(i)));
            }
        }
        Variant::KvfreeNoReclaim => {
            for i in 0..n {
                let node = Rcu::boxed(Node::<OURS>::new(i));
                let scope = ctx.no_reclaim();
                kvfree_rcu(&scope, node);
            }
        }
        Variant::KvfreeAtomic => {
            for i in 0..n {
                let node = Rcu::boxed(Node::<OURS>::new(i));
                let scope = ctx.atomic();
                kvfree_rcu(&scope, node);
            }
        }
        Variant::CallRcuSleepable => {
            for i in 0..n {
                call_rcu(&ctx, Rcu::boxed(Node::<OURS>::new(i)), drop_node);
            }
        }
        Variant::Crossbeam | Variant::Seize => unreachable!("{v:?} is not ours"),
    }
    let enqueue = start.elapsed();
    rcu_barrier(&ctx);
    (enqueue, start.elapsed())
}

fn crossbeam(n: u64) -> (Duration, Duration) {
    drop(epoch::pin()); // this thread's registration, untimed
    let start = Instant::now();
    for i in 0..n {
        let node = Owned::new(Node::<CROSSBEAM>::new(i));
        let guard = epoch::pin();
        // SAFETY: never published: no other thread can reach it.
        unsafe { guard.defer_destroy(node.into_shared(&guard)) };
    }
    let enqueue = start.elapsed();
    wait_freed(CROSSBEAM, n, Duration::from_secs(30), || epoch::pin().flush());
    (enqueue, start.elapsed())
}

fn seize(n: u64) -> (Duration, Duration) {
    let collector = Collector::new();
    drop(collector.enter()); // this thread's registration, untimed
    let start = Instant::now();
    for i in 0..n {
        let node = Box::into_raw(Box::new(Node::<SEIZE>::new(i)));
        // SAFETY: never published; from Box::into_raw.
        unsafe { collector.retire(node, reclaim::boxed) };
    }
    let enqueue = start.elapsed();
    drop(collector); // reclaims everything retired
    (enqueue, start.elapsed())
}

/// Child side: one run of `variant` (its slug) with `n` nodes. A fresh process: the drop
/// counters start at 0.
pub(crate) fn child(variant: &str, n: u64) -> Result<Report, String> {
    let v = Variant::from_slug(variant).ok_or_else(|| format!("no W5 variant {variant:?}"))?;
    let (counter, (enqueue, drained)) = match v {
        Variant::Crossbeam => (CROSSBEAM, crossbeam(n)),
        Variant::Seize => (SEIZE, seize(n)),
        _ => (OURS, ours(v, n)),
    };
    let mops = |t: Duration| n as f64 / t.as_secs_f64() / 1e6;
    Ok(Report::new()
        .with("enqueue_mops", mops(enqueue))
        .with("drained_mops", mops(drained))
        .with("all_freed", f64::from(u8::from(freed(counter) == n))))
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = cfg.w5_n;
    let mut enqueue: Vec<Vec<f64>> = vec![Vec::new(); Variant::ORDER.len()];
    let mut drained = enqueue.clone();
    let mut rss = enqueue.clone();
    // Runs that did not free every node (or did not report), and why children failed.
    let mut not_freed: Vec<(Variant, String)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for rep in 0..cfg.reps {
        for (i, v) in Variant::ORDER.into_iter().enumerate() {
            let o = child::run(&format!("w5:{}:{n}", v.slug())).unwrap_or_else(|e| {
                eprintln!("  W5: {e}");
                failures.push(e);
                Report::new() // every figure NaN: left out of the medians
            });
            let all_freed = o.get("all_freed") == 1.0;
            eprintln!(
                "  W5 rep {}/{} {:>24}: enqueue {:6.2} Mops/s, drained {:6.2} Mops/s, \
                 process peak RSS {:6.1} MiB{}",
                rep + 1,
                cfg.reps,
                v.name(),
                o.get("enqueue_mops"),
                o.get("drained_mops"),
                o.peak_rss_mib(),
                if all_freed { "" } else { ", NOT ALL FREED" }
            );
            enqueue[i].push(o.get("enqueue_mops"));
            drained[i].push(o.get("drained_mops"));
            rss[i].push(o.peak_rss_mib());
            if !all_freed {
                not_freed.push((v, format!("{} rep {}", v.name(), rep + 1)));
            }
        }
    }
    let idx = |v: Variant| Variant::ORDER.iter().position(|&x| x == v).expect("variant");
    let peers = |m: &[Vec<f64>], ours: Variant| PerSystem {
        ours: m[idx(ours)].clone(),
        crossbeam: m[idx(Variant::Crossbeam)].clone(),
        seize: m[idx(Variant::Seize)].clone(),
    };
    for v in Variant::OURS {
        let row = |metric: &str, unit, better, values: &[Vec<f64>]| {
            Row::from_reps("W5", format!("{} {metric}", v.name()), unit, better, peers(values, v))
        };
        let mut e = row("enqueue (Mops/s)", "Mops/s", Better::Higher, &enqueue);
        let mut d = row("drained (Mops/s)", "Mops/s", Better::Higher, &drained);
        let mut r = row("process peak RSS (MiB)", "MiB", Better::Lower, &rss);
        if let Some((speed, memory)) = v.targets() {
            e = e.target(Target::VsCrossbeamAtLeast(speed));
            d = d.target(Target::VsCrossbeamAtLeast(speed));
            r = r.target(Target::VsCrossbeamAtMost(memory));
        }
        rows.extend([e, d, r]);
    }
    let mut freed_row = Row::new("W5", "every node freed after barrier/flush (all reps)", "bool")
        .target(Target::OursYes);
    let ok = |vs: &[Variant]| f64::from(u8::from(!not_freed.iter().any(|(f, _)| vs.contains(f))));
    freed_row.values =
        [Some(ok(&Variant::OURS)), Some(ok(&[Variant::Crossbeam])), Some(ok(&[Variant::Seize]))];
    rows.push(freed_row);
    rows.push(
        Row::new("W5", "embedded RcuHead (bytes)", "bytes")
            .ours(core::mem::size_of::<RcuHead>() as f64)
            .target(Target::Equals(16.0)),
    );
    if !not_freed.is_empty() {
        let runs: Vec<&str> = not_freed.iter().map(|(_, s)| s.as_str()).collect();
        notes.push(format!("W5: not every node was freed (or no result) in: {}", runs.join(", ")));
    }
    if !failures.is_empty() {
        notes.push(format!("W5: failed runs: {}", failures.join("; ")));
    }
    notes.push(format!(
        "W5: N = {n} per run, each run a fresh process (peak RSS = its VmHWM after the drain); \
         peers' figures are the same runs on every rcu-ctx row (one crossbeam-epoch and one \
         seize run per repetition). Allocation per node: rcu-ctx {} bytes (the {}-byte \
         payload + the {}-byte embedded RcuHead), crossbeam-epoch {}, seize {}; the \
         bookkeeping each system keeps outside the node (rcu-ctx's block entries, \
         crossbeam-epoch's bags of deferred functions, seize's batches of entries) is in the \
         peak RSS only.",
        core::mem::size_of::<Rcu<Node<OURS>>>(),
        core::mem::size_of::<Node<OURS>>(),
        core::mem::size_of::<RcuHead>(),
        core::mem::size_of::<Node<CROSSBEAM>>(),
        core::mem::size_of::<Node<SEIZE>>(),
    ));
}
