//! W5: deferred-free flood. One thread, N x (allocate a 64-byte node, defer its free).
//! Enqueue Mops/s is N over the loop's time; drained Mops/s is N over the time until every
//! node has been dropped (the loop plus the system's barrier or flush); peak RSS growth over
//! both.
//!
//! Ours: `kvfree_rcu` with each token and `call_rcu` (Sleepable) whose callback drops the
//! node, on the global domain; the node is allocated before the token's scope is entered and
//! the `NoReclaim`/`Atomic` scope is entered and left per call (an `Atomic` scope may not
//! allocate). crossbeam-epoch: the idiomatic per-operation
//! `let guard = epoch::pin(); guard.defer_destroy(...)`, drained by `pin().flush()` in a
//! loop. seize: `Collector::retire` (no guard), drained by dropping the collector.

use std::time::{Duration, Instant};

use crossbeam_epoch::{self as epoch, Owned};
use rcu_core::prelude::*;
use rcu_core::Rcu;
use seize::{reclaim, Collector};

use crate::common::{freed, wait_freed, Node, PerSystem, RssMonitor, CROSSBEAM, OURS, SEIZE};
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
}

struct Outcome {
    enqueue_mops: f64,
    drained_mops: f64,
    rss_mib: f64,
    all_freed: bool,
}

fn drop_node(obj: Box<Rcu<Node<OURS>>>, _ctx: &Atomic<'_>) {
    drop(obj);
}

fn run_one(v: Variant, n: u64) -> Outcome {
    let counter = match v {
        Variant::Crossbeam => CROSSBEAM,
        Variant::Seize => SEIZE,
        _ => OURS,
    };
    let freed0 = freed(counter);
    let rss = RssMonitor::start();
    let mut ctx = Sleepable::enter();
    // The systems' per-thread state exists before the clock starts.
    rcu_core::Domain::global().register_current_thread(&ctx);
    drop(epoch::pin());
    let collector = Collector::new();
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
        Variant::Crossbeam => {
            for i in 0..n {
                let node = Owned::new(Node::<CROSSBEAM>::new(i));
                let guard = epoch::pin();
                // SAFETY: never published: no other thread can reach it.
                unsafe { guard.defer_destroy(node.into_shared(&guard)) };
            }
        }
        Variant::Seize => {
            for i in 0..n {
                let node = Box::into_raw(Box::new(Node::<SEIZE>::new(i)));
                // SAFETY: never published; from Box::into_raw.
                unsafe { collector.retire(node, reclaim::boxed) };
            }
        }
    }
    let enqueue = start.elapsed();
    match v {
        Variant::Crossbeam => {
            wait_freed(CROSSBEAM, freed0 + n, Duration::from_secs(30), || epoch::pin().flush());
        }
        Variant::Seize => drop(collector),
        _ => rcu_barrier(&ctx),
    }
    let drained = start.elapsed();
    let rss = rss.finish();
    Outcome {
        enqueue_mops: n as f64 / enqueue.as_secs_f64() / 1e6,
        drained_mops: n as f64 / drained.as_secs_f64() / 1e6,
        rss_mib: rss as f64 / (1 << 20) as f64,
        all_freed: freed(counter) - freed0 == n,
    }
}

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = cfg.w5_n;
    let mut enqueue: Vec<Vec<f64>> = vec![Vec::new(); Variant::ORDER.len()];
    let mut drained = enqueue.clone();
    let mut rss = enqueue.clone();
    let mut not_freed = Vec::new();
    for rep in 0..cfg.reps {
        for (i, v) in Variant::ORDER.into_iter().enumerate() {
            let o = run_one(v, n);
            eprintln!(
                "  W5 rep {}/{} {:>24}: enqueue {:6.2} Mops/s, drained {:6.2} Mops/s, RSS +{:6.1} MiB{}",
                rep + 1,
                cfg.reps,
                v.name(),
                o.enqueue_mops,
                o.drained_mops,
                o.rss_mib,
                if o.all_freed { "" } else { ", NOT ALL FREED" }
            );
            enqueue[i].push(o.enqueue_mops);
            drained[i].push(o.drained_mops);
            rss[i].push(o.rss_mib);
            if !o.all_freed {
                not_freed.push(format!("{} rep {}", v.name(), rep + 1));
            }
        }
    }
    let idx = |v: Variant| Variant::ORDER.iter().position(|&x| x == v).expect("variant");
    let peers = |m: &[Vec<f64>], ours: Variant| PerSystem {
        ours: m[idx(ours)].clone(),
        crossbeam: m[idx(Variant::Crossbeam)].clone(),
        seize: m[idx(Variant::Seize)].clone(),
    };
    let ours_variants = [
        Variant::KvfreeSleepable,
        Variant::KvfreeNoReclaim,
        Variant::KvfreeAtomic,
        Variant::CallRcuSleepable,
    ];
    for v in ours_variants {
        let kvfree = v != Variant::CallRcuSleepable;
        let mut row = Row::from_reps(
            "W5",
            format!("{} enqueue (Mops/s)", v.name()),
            "Mops/s",
            Better::Higher,
            peers(&enqueue, v),
        );
        if kvfree {
            row = row.target(Target::VsCrossbeamAtLeast(2.0));
        }
        rows.push(row);
    }
    for v in ours_variants {
        let kvfree = v != Variant::CallRcuSleepable;
        let mut row = Row::from_reps(
            "W5",
            format!("{} drained (Mops/s)", v.name()),
            "Mops/s",
            Better::Higher,
            peers(&drained, v),
        );
        if kvfree {
            row = row.target(Target::VsCrossbeamAtLeast(1.5));
        }
        rows.push(row);
    }
    for v in ours_variants {
        let kvfree = v != Variant::CallRcuSleepable;
        let mut row = Row::from_reps(
            "W5",
            format!("{} peak RSS growth (MiB)", v.name()),
            "MiB",
            Better::Lower,
            peers(&rss, v),
        );
        if kvfree {
            row = row.target(Target::VsCrossbeamAtMost(1.0));
        }
        rows.push(row);
    }
    let mut freed_row = Row::new("W5", "every node freed after barrier/flush (all reps)", "bool")
        .target(Target::OursYes);
    let ok = |vs: &[Variant]| {
        f64::from(u8::from(!not_freed.iter().any(|f| vs.iter().any(|v| f.starts_with(v.name())))))
    };
    freed_row.values =
        [Some(ok(&ours_variants)), Some(ok(&[Variant::Crossbeam])), Some(ok(&[Variant::Seize]))];
    rows.push(freed_row);
    if !not_freed.is_empty() {
        notes.push(format!("W5: not every node was freed in: {}", not_freed.join(", ")));
    }
    notes.push(format!(
        "W5: N = {n} per run; peers' figures are the same runs on every rcu-ctx row (one \
         crossbeam-epoch and one seize run per repetition). Ours' allocation is \
         {} bytes per node (64-byte payload + embedded RcuHead), the peers' 64.",
        core::mem::size_of::<Rcu<Node<OURS>>>()
    ));
}
