//! W7: sleepable RCU (SRCU, `rcu_core::SrcuStruct`), issue 25's targets. Every row is a
//! figure of this project; each comparison is against a reference measured in the same run,
//! repetitions interleaved, and given as a ratio row (the median of the per-repetition
//! ratios, as W4's), except W7e's pointer row, whose peer is seize's own column.
//!
//! - **W7a, read-section cost.** One thread, N x (lock, load an `RcuCell<u64>` of the
//!   section's domain and `black_box` its value, unlock), the same loop for five sections:
//!   the classic global `read_lock` (the reference), a classic `Domain::new` domain's
//!   `read_lock`, an SRCU `Fast` domain's `read_lock` (borrowed guard), an SRCU `Plain`
//!   domain's `read_lock`, and the `Fast` domain's `down_read` + drop (owned guard). Each
//!   thread's registration is done before the clock starts. Targets: `Fast` borrowed <= 2x
//!   the reference, `Plain` <= 4x, owned <= 8x. For information, the same loop around a bare
//!   SeqCst fence: the one barrier `Plain` adds to `Fast` (and an owned guard's RMW costs
//!   about as much), so "reference + fence" is the least a fenced reader can cost here.
//! - **W7b, a sleeping reader delays only its own domain.** A thread loops "enter a section
//!   of SRCU domain A, sleep 100 ms, leave, re-enter at once". Meanwhile the main thread times
//!   `synchronize_srcu` on another SRCU domain B and the classic global `synchronize_rcu`,
//!   round-robin; the same with no sleeper ("idle") in the same repetition (the two phases'
//!   order alternates between repetitions). Target: p99 with the sleeper <= 1.1x idle p99,
//!   for each.
//! - **W7c, grace period with no reader.** `synchronize_srcu` on a fresh `Fast` domain
//!   (and, for information, a `Plain` one) against `synchronize_rcu` on a fresh classic
//!   `Domain::new`, round-robin, no thread reading any of them. Target: `Fast` p50 <= 2x
//!   classic p50.
//! - **W7d, owned guards across awaits.** tokio, multi-thread runtime with 2 workers; T
//!   (10,000) tasks, spawned in `WAVES` waves 1 ms apart (as requests reach a server), each:
//!   `down_read` on the SRCU domain, then the domain's cookie (`get_state_synchronize_srcu`,
//!   read *after* the lock) and the index the guard counted on, load a `Value` from an
//!   `RcuCell` of the domain, 1 to 3 awaits (`tokio::time::sleep` of 0, 1 or 2 ms, or
//!   `yield_now`), check the value again, note the time, drop the guard. A `Value`'s `Drop`
//!   poisons it; a reader that finds a poisoned value counts a *freed value seen* (must be
//!   0). A writer task replaces the value every millisecond until every reader has
//!   finished; every value made must have been dropped once after `srcu_barrier`. A poller
//!   thread drives grace periods back to back: `start_poll_synchronize_srcu`, note the time,
//!   `poll_state_synchronize_srcu` until true (yielding its CPU between polls; `poll`
//!   advances the grace period itself when no other leader runs), noting the time of each
//!   look. Which guards held grace period `c` up is worked out from the guards' cookies and
//!   indices (`attribute`: every guard of cookie <= `c`, and those of cookie `c + 1` on the
//!   index `c` drained). Measured: the grace periods that such a guard held up after the
//!   poller asked for them (the others are counted as unblocked and left out); for each,
//!   from the drop of the last such guard to the completion, which lies between the
//!   poller's last look that found `c` not completed (the lower bound) and its first look
//!   that found it completed (the figure the target applies to: it includes the poller's
//!   own scheduling delay, so it errs high). A grace period seen completed before a guard
//!   it waited for had dropped would be a safety bug: counted, must be 0. Target: p99 <= 2
//!   ms, pooled over the repetitions.
//! - **W7e, owned-guard reads against the peers', 2 threads.** Pointer: our `down_read` +
//!   `RcuCell<u64>::load` + drop against seize's `Collector::enter_owned()` + `protect` of
//!   an `AtomicPtr<u64>` + drop (one `Collector` per run). Map: `RcuHashMap<u64, u64>` on an
//!   `Arc<SrcuStruct>` (`with_capacity_and_hasher_in(1024, RandomState, ..)`), `get` under a
//!   `down_read` guard, against papaya 0.2's `HashMap::pin_owned().get`, both with 1024 keys
//!   and std's `RandomState`, keys drawn by the same xorshift generator. One guard per
//!   operation. Both threads start at a barrier and time themselves; throughput = all
//!   operations / (last end - first start). Target: ours >= 1.5x the peer's throughput.

use std::collections::hash_map::RandomState;
use std::hint::black_box;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;
use rcu_core::{
    DomainConfig, Fast, Plain, Rcu, RcuCell, SrcuFlavor, SrcuOwnedGuard, SrcuStruct, Unbranded,
};
use seize::{reclaim, Collector, Guard as _};

use crate::common::{Latency, PerSystem};
use crate::report::{Better, Row, Target};
use crate::Config;

/// How long W7b's sleeper sleeps inside each of its sections.
const SLEEP: Duration = Duration::from_millis(100);
/// Keys of W7e's map workload.
const MAP_KEYS: u64 = 1024;
/// Threads of W7e.
const READERS: usize = 2;

pub(crate) fn run(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    notes.push(
        "W7: every figure is this project's and stands in the rcu-ctx column, except W7e's \
         peers: seize in its own column, and papaya (no column of its own) in the rcu-ctx \
         column of the row marked PEER; rows ending in (x) are ratios to a reference measured \
         in the same run, the median of the per-repetition ratios"
            .to_owned(),
    );
    w7a(cfg, rows);
    w7b(cfg, rows, notes);
    w7c(cfg, rows);
    w7d(cfg, rows, notes);
    w7e(cfg, rows, notes);
}

/// A figure of this project only (the first column), with its per-repetition values.
fn ours_row(
    workload: &'static str,
    metric: &str,
    unit: &'static str,
    better: Better,
    v: Vec<f64>,
) -> Row {
    Row::from_reps(
        workload,
        metric.to_string(),
        unit,
        better,
        PerSystem { ours: v, ..PerSystem::default() },
    )
}

/// Per-repetition ratios `a[i] / b[i]`.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

fn timed_ns(op: impl FnOnce()) -> f64 {
    let t = Instant::now();
    op();
    t.elapsed().as_nanos() as f64
}

/// Sets a flag when dropped, so a helper thread stops whether the body returns or panics
/// (the scope joins it either way).
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        // Relaxed: a flag; the scope joins the thread.
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// W7a

/// W7a's sections, in the order of every repetition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    ClassicGlobal,
    ClassicDomain,
    FastBorrowed,
    PlainBorrowed,
    FastOwned,
}

impl Section {
    const ALL: [Section; 5] = [
        Section::ClassicGlobal,
        Section::ClassicDomain,
        Section::FastBorrowed,
        Section::PlainBorrowed,
        Section::FastOwned,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::ClassicGlobal => "classic global read_lock (reference)",
            Section::ClassicDomain => "classic Domain::new read_lock",
            Section::FastBorrowed => "SRCU Fast read_lock (borrowed)",
            Section::PlainBorrowed => "SRCU Plain read_lock (borrowed)",
            Section::FastOwned => "SRCU Fast down_read + drop (owned)",
        }
    }

    /// Issue 25's bound on the ratio to the reference.
    fn target(self) -> Option<f64> {
        match self {
            Section::ClassicGlobal | Section::ClassicDomain => None,
            Section::FastBorrowed => Some(2.0),
            Section::PlainBorrowed => Some(4.0),
            Section::FastOwned => Some(8.0),
        }
    }
}

/// The domains W7a reads (the global one needs none).
struct Domains {
    classic: Domain,
    fast: SrcuStruct<Fast>,
    plain: SrcuStruct<Plain>,
}

/// ns per call of `section`, over `n` calls; one call first, untimed (it registers the
/// thread with the section's domain).
#[inline(always)]
fn per_op(n: u64, mut section: impl FnMut()) -> f64 {
    section();
    let start = Instant::now();
    for _ in 0..n {
        section();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn section_cost(d: &Domains, s: Section, n: u64) -> f64 {
    match s {
        Section::ClassicGlobal => {
            let cell = RcuCell::new(1u64);
            let mut ctx = Sleepable::enter();
            per_op(n, || {
                let guard = read_lock(&mut ctx);
                black_box(*black_box(&cell).load(&guard));
            })
        }
        Section::ClassicDomain => {
            let cell = RcuCell::new_in(&d.classic, 1u64);
            let mut ctx = Sleepable::enter();
            per_op(n, || {
                let guard = d.classic.read_lock(&mut ctx);
                black_box(*black_box(&cell).load(&guard));
            })
        }
        Section::FastBorrowed => borrowed(&d.fast, n),
        Section::PlainBorrowed => borrowed(&d.plain, n),
        Section::FastOwned => {
            let cell = RcuCell::new_in(&d.fast, 1u64);
            let ctx = Sleepable::enter();
            per_op(n, || {
                let guard = d.fast.down_read(&ctx);
                black_box(*black_box(&cell).load(&guard));
                drop(guard);
            })
        }
    }
}

fn borrowed<F: SrcuFlavor>(srcu: &SrcuStruct<F>, n: u64) -> f64 {
    let cell = RcuCell::new_in(srcu, 1u64);
    let mut ctx = Sleepable::enter();
    per_op(n, || {
        let guard = srcu.read_lock(&mut ctx);
        black_box(*black_box(&cell).load(&guard));
    })
}

fn w7a(cfg: &Config, rows: &mut Vec<Row>) {
    let d = Domains {
        classic: Domain::new(DomainConfig::new().name("rcuscale-w7a-classic")),
        fast: SrcuStruct::new(DomainConfig::new().name("rcuscale-w7a-fast")),
        plain: SrcuStruct::new(DomainConfig::new().name("rcuscale-w7a-plain")),
    };
    let mut ns: [Vec<f64>; 5] = Default::default();
    let mut bare_fence = Vec::new();
    for rep in 0..cfg.reps {
        for (i, s) in Section::ALL.into_iter().enumerate() {
            ns[i].push(section_cost(&d, s, cfg.w7_n));
        }
        // `black_box` between fences: back-to-back fences may be merged into one.
        bare_fence.push(per_op(cfg.w7_n, || {
            fence(Ordering::SeqCst);
            black_box(());
        }));
        eprintln!(
            "  W7a rep {}/{}: classic global {:.2}, classic domain {:.2}, SRCU Fast {:.2}, Plain \
             {:.2}, Fast owned {:.2} ns/section; a bare fence {:.2} ns",
            rep + 1,
            cfg.reps,
            ns[0][rep],
            ns[1][rep],
            ns[2][rep],
            ns[3][rep],
            ns[4][rep],
            bare_fence[rep]
        );
    }
    for (i, s) in Section::ALL.into_iter().enumerate() {
        rows.push(ours_row(
            "W7a",
            &format!("read section: {} + RcuCell::load (ns/op)", s.label()),
            "ns/op",
            Better::Lower,
            ns[i].clone(),
        ));
    }
    rows.push(ours_row(
        "W7a",
        "a bare SeqCst fence, the barrier Plain adds to Fast (ns/op)",
        "ns/op",
        Better::Lower,
        bare_fence.clone(),
    ));
    let floor: Vec<f64> = ns[0].iter().zip(&bare_fence).map(|(c, f)| c + f).collect();
    rows.push(ours_row(
        "W7a",
        "floor of a fenced reader: (classic global + bare fence) / classic global (x)",
        "x",
        Better::Lower,
        ratios(&floor, &ns[0]),
    ));
    for (i, s) in Section::ALL.into_iter().enumerate().skip(1) {
        let row = ours_row(
            "W7a",
            &format!("{} / classic global (x)", s.label()),
            "x",
            Better::Lower,
            ratios(&ns[i], &ns[0]),
        );
        rows.push(match s.target() {
            Some(t) => row.target(Target::AtMost(t)),
            None => row,
        });
    }
}

// ---------------------------------------------------------------------------------------
// W7b

/// One phase of W7b: `synchronize_srcu` on `b` and the global `synchronize_rcu`, sampled
/// round-robin, with or without a thread sleeping in sections of `a`. Returns the two
/// latencies (ns) and the sections the sleeper completed.
fn w7b_phase(
    cfg: &Config,
    a: &SrcuStruct,
    b: &SrcuStruct,
    sleeper: bool,
) -> (Latency, Latency, u64) {
    let stop = AtomicBool::new(false);
    let inside = Barrier::new(2);
    std::thread::scope(|s| {
        let handle = sleeper.then(|| {
            s.spawn(|| {
                let mut ctx = Sleepable::enter();
                let mut sections = 0u64;
                loop {
                    let guard = a.read_lock(&mut ctx);
                    if sections == 0 {
                        inside.wait();
                    }
                    std::thread::sleep(SLEEP);
                    drop(guard);
                    sections += 1;
                    // Relaxed: a flag.
                    if stop.load(Ordering::Relaxed) {
                        return sections;
                    }
                }
            })
        });
        let _stop = Stop(&stop);
        if sleeper {
            inside.wait();
        }
        let ctx = Sleepable::enter();
        // Warm: the workers run and this thread's first-call costs are paid.
        b.synchronize_srcu(&ctx);
        synchronize_rcu(&ctx);
        let (mut on_b, mut global) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + cfg.w7_budget;
        while on_b.len() < 5 || (on_b.len() < cfg.w7_max_samples && Instant::now() < deadline) {
            on_b.push(timed_ns(|| b.synchronize_srcu(&ctx)));
            global.push(timed_ns(|| synchronize_rcu(&ctx)));
        }
        drop(_stop);
        let sections = handle.map_or(0, |h| h.join().expect("W7b sleeper panicked"));
        (Latency::of(&on_b), Latency::of(&global), sections)
    })
}

fn w7b(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let a: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("rcuscale-w7b-a"));
    let b: SrcuStruct = SrcuStruct::new(DomainConfig::new().name("rcuscale-w7b-b"));
    let us = |ns: f64| ns / 1e3;
    // [B, global] x [idle, sleeper] x [p50, p99]
    let mut v: [[[Vec<f64>; 2]; 2]; 2] = Default::default();
    let mut samples = [[0usize; 2]; 2];
    let mut sections = 0u64;
    for rep in 0..cfg.reps {
        // Alternate which phase comes first, so that a drift of the machine's load does not
        // always count against the same one.
        let order = if rep % 2 == 0 { [false, true] } else { [true, false] };
        for sleeper in order {
            let (lb, lg, n) = w7b_phase(cfg, &a, &b, sleeper);
            let p = usize::from(sleeper);
            for (k, l) in [lb, lg].into_iter().enumerate() {
                v[k][p][0].push(us(l.p50));
                v[k][p][1].push(us(l.p99));
                samples[k][p] += l.samples;
            }
            sections += n;
            eprintln!(
                "  W7b rep {}/{} {}: synchronize_srcu(B) p50 {:.1} us p99 {:.1} us, \
                 synchronize_rcu p50 {:.1} us p99 {:.1} us ({} samples each)",
                rep + 1,
                cfg.reps,
                if sleeper { "sleeper in A" } else { "idle" },
                us(lb.p50),
                us(lb.p99),
                us(lg.p50),
                us(lg.p99),
                lb.samples
            );
        }
    }
    for (k, what) in ["synchronize_srcu on B", "global synchronize_rcu"].into_iter().enumerate() {
        for (p, phase) in ["idle", "sleeper in A"].into_iter().enumerate() {
            for (q, pct) in ["p50", "p99"].into_iter().enumerate() {
                rows.push(ours_row(
                    "W7b",
                    &format!("{what}, {phase}: {pct} (us)"),
                    "us",
                    Better::Lower,
                    v[k][p][q].clone(),
                ));
            }
        }
        rows.push(
            ours_row(
                "W7b",
                &format!("{what}: p99 sleeper / p99 idle (x)"),
                "x",
                Better::Lower,
                ratios(&v[k][1][1], &v[k][0][1]),
            )
            .target(Target::AtMost(1.1)),
        );
    }
    notes.push(format!(
        "W7b: the sleeper held {sections} sections of {} ms in domain A over the run (one \
         per phase when the samples take less than {} ms); samples per phase (all \
         repetitions): B idle {}, B sleeper {}, global idle {}, global sleeper {}",
        SLEEP.as_millis(),
        SLEEP.as_millis(),
        samples[0][0],
        samples[0][1],
        samples[1][0],
        samples[1][1]
    ));
}

// ---------------------------------------------------------------------------------------
// W7c

fn w7c(cfg: &Config, rows: &mut Vec<Row>) {
    let classic = Domain::new(DomainConfig::new().name("rcuscale-w7c-classic"));
    let fast: SrcuStruct<Fast> = SrcuStruct::new(DomainConfig::new().name("rcuscale-w7c-fast"));
    let plain: SrcuStruct<Plain> = SrcuStruct::new(DomainConfig::new().name("rcuscale-w7c-plain"));
    let us = |ns: f64| ns / 1e3;
    // [classic, fast, plain] x [p50, p99]
    let mut v: [[Vec<f64>; 2]; 3] = Default::default();
    let ctx = Sleepable::enter();
    for rep in 0..cfg.reps {
        // Warm: the domains' workers run.
        classic.synchronize_rcu(&ctx);
        fast.synchronize_srcu(&ctx);
        plain.synchronize_srcu(&ctx);
        let mut s: [Vec<f64>; 3] = Default::default();
        let deadline = Instant::now() + cfg.w7_budget;
        while s[0].len() < 5 || (s[0].len() < cfg.w7_max_samples && Instant::now() < deadline) {
            s[0].push(timed_ns(|| classic.synchronize_rcu(&ctx)));
            s[1].push(timed_ns(|| fast.synchronize_srcu(&ctx)));
            s[2].push(timed_ns(|| plain.synchronize_srcu(&ctx)));
        }
        let l = s.map(|x| Latency::of(&x));
        for (k, l) in l.iter().enumerate() {
            v[k][0].push(us(l.p50));
            v[k][1].push(us(l.p99));
        }
        eprintln!(
            "  W7c rep {}/{}: p50 classic {:.2} us, SRCU Fast {:.2} us, SRCU Plain {:.2} us ({} \
             samples each)",
            rep + 1,
            cfg.reps,
            us(l[0].p50),
            us(l[1].p50),
            us(l[2].p50),
            l[0].samples
        );
    }
    let names = [
        "classic Domain::new synchronize_rcu",
        "SRCU Fast synchronize_srcu",
        "SRCU Plain synchronize_srcu",
    ];
    for (k, name) in names.into_iter().enumerate() {
        for (q, pct) in ["p50", "p99"].into_iter().enumerate() {
            rows.push(ours_row(
                "W7c",
                &format!("no reader: {name} {pct} (us)"),
                "us",
                Better::Lower,
                v[k][q].clone(),
            ));
        }
    }
    rows.push(
        ours_row(
            "W7c",
            "no reader: SRCU Fast p50 / classic p50 (x)",
            "x",
            Better::Lower,
            ratios(&v[1][0], &v[0][0]),
        )
        .target(Target::AtMost(2.0)),
    );
    rows.push(ours_row(
        "W7c",
        "no reader: SRCU Plain p50 / classic p50 (x)",
        "x",
        Better::Lower,
        ratios(&v[2][0], &v[0][0]),
    ));
}

// ---------------------------------------------------------------------------------------
// W7d

/// `Value`s made and dropped (W7d), checked equal after the domain's barrier.
static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

const POISON: u64 = 0xdead_beef_dead_beef;

/// The value W7d's readers hold across awaits: `check` is a function of `v`, and `Drop`
/// poisons both, so a reader that sees a freed value (not yet reused) finds it broken.
#[derive(Debug)]
struct Value {
    v: u64,
    check: u64,
}

fn seal(v: u64) -> u64 {
    v.rotate_left(29) ^ 0x5151_a5a5_0f0f_3c3c
}

impl Value {
    fn new(v: u64) -> Self {
        // Relaxed: counts, read after the barrier.
        MADE.fetch_add(1, Ordering::Relaxed);
        Value { v, check: seal(v) }
    }

    fn is_intact(&self) -> bool {
        // Volatile: read the memory each time; through `&Value` the compiler could otherwise
        // reuse the first check's loads for the second, across the awaits.
        // SAFETY: both are valid, aligned fields of a value the caller's guard keeps alive.
        let (v, check) =
            unsafe { (std::ptr::read_volatile(&self.v), std::ptr::read_volatile(&self.check)) };
        check == seal(v)
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.v = POISON;
        self.check = POISON;
        // Relaxed: see `new`.
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// One guard's record: the cookie's sequence number taken after it began, the index it
/// counted on, and the time (ns since the run's base) just before it was dropped
/// (`u64::MAX` until then).
struct GuardRecord {
    cookie: AtomicU64,
    index: AtomicU64,
    dropped: AtomicU64,
}

/// One grace period the poller drove: its cookie, when it was asked for, when `poll`
/// first said it had completed (ns since the run's base).
struct GpRecord {
    seq: u64,
    requested: u64,
    completed: u64,
    /// The poller's last poll that still said "not completed" (`requested` if none).
    last_miss: u64,
}

/// What one W7d run found.
struct W7dRun {
    freed_seen: u64,
    /// Per measured grace period, ns: (completion seen - last blocking drop, the poller's
    /// last look that found it not completed - that drop, or 0).
    gaps: Vec<(f64, f64)>,
    polled: usize,
    unblocked: usize,
    early: usize,
    replacements: u64,
    made: u64,
    dropped: u64,
    elapsed: Duration,
}

/// Tasks are spawned in this many waves, one per millisecond.
const WAVES: usize = 100;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The index (0 or 1) an owned guard counted on.
fn index_of(guard: &SrcuOwnedGuard<'_, Fast, Unbranded>) -> u64 {
    guard.index() as u64
}

/// Which grace periods each guard held up, and for how long after its drop they took to
/// complete.
///
/// A grace period `c` of a sleepable domain (raw::srcu): advance the sequence (from then on
/// `get_state` returns `c + 1`), barrier, scan 1 drains the inactive index, flip, scan 2
/// drains the index that was current when `c` started, `i_c`; one flip per grace period, so
/// `i_c` alternates with `c` (`i_c = (c + parity) % 2`, the parity read on the fresh domain).
/// So the guards `c` waited for, if still open, are:
/// - every guard whose cookie is <= `c`: it was counted before `c` started (its cookie, read
///   after its lock, still named `c` or an earlier grace period), on either index;
/// - the guards whose cookie is `c + 1` and that counted on `i_c`: begun after `c` started,
///   before its flip. A guard of cookie `c + 1` on the other index began after the flip (or
///   after `c` completed) and did not hold `c`.
///
/// The one case left out: a straggler that read the index before the previous grace
/// period's flip and counted itself after `c` started (cookie `c + 1`, on the other index,
/// held up `c`'s scan 1), a window of a few instructions.
fn attribute(
    guards: &[(u64, u64, u64)],
    gps: &[GpRecord],
    parity: u64,
) -> (Vec<(f64, f64)>, usize, usize) {
    // Guards by cookie, with the running maximum of their drop times; and per cookie, the
    // latest drop on each index.
    let mut by_cookie: Vec<(u64, u64)> = guards.iter().map(|&(c, _, d)| (c, d)).collect();
    by_cookie.sort_unstable();
    let mut running = 0u64;
    let latest: Vec<u64> = by_cookie
        .iter()
        .map(|&(_, d)| {
            running = running.max(d);
            running
        })
        .collect();
    let mut per_index: std::collections::HashMap<u64, [u64; 2]> = Default::default();
    for &(c, i, d) in guards {
        let slot = &mut per_index.entry(c).or_default()[(i & 1) as usize];
        *slot = (*slot).max(d);
    }
    let (mut gaps, mut unblocked, mut early) = (Vec::new(), 0, 0);
    for gp in gps {
        let n = by_cookie.partition_point(|&(c, _)| c <= gp.seq);
        let up_to_c = n.checked_sub(1).map_or(0, |i| latest[i]);
        let i_c = (gp.seq + parity) % 2;
        let next_on_i_c = per_index.get(&(gp.seq + 1)).map_or(0, |m| m[i_c as usize]);
        let last = up_to_c.max(next_on_i_c);
        if last <= gp.requested {
            // No guard it had to wait for was open after it was asked for.
            unblocked += 1;
        } else if last > gp.completed {
            early += 1;
        } else {
            // Upper bound: completion as the poller saw it; lower bound: its last look that
            // found the grace period not completed, if after the drop.
            gaps.push(((gp.completed - last) as f64, gp.last_miss.saturating_sub(last) as f64));
        }
    }
    (gaps, unblocked, early)
}

fn w7d_run(tasks: usize) -> W7dRun {
    // Relaxed: counts; this thread reads them again after the barriers.
    let made0 = MADE.load(Ordering::Relaxed);
    let dropped0 = DROPPED.load(Ordering::Relaxed);
    let srcu: Arc<SrcuStruct> = Arc::new(SrcuStruct::new(DomainConfig::new().name("rcuscale-w7d")));
    let parity = {
        // No grace period has been asked for on the fresh domain: the index is that of the
        // next grace period.
        let ctx = Sleepable::enter();
        let guard = srcu.down_read(&ctx);
        let cookie = srcu.get_state_synchronize_srcu().seq();
        (index_of(&guard) + cookie) % 2
    };
    let cell = Arc::new(RcuCell::new_in(&*srcu, Value::new(0)));
    let records: Arc<Vec<GuardRecord>> = Arc::new(
        (0..tasks)
            .map(|_| GuardRecord {
                cookie: AtomicU64::new(0),
                index: AtomicU64::new(0),
                dropped: AtomicU64::new(u64::MAX),
            })
            .collect(),
    );
    let base = Instant::now();
    let since = move || base.elapsed().as_nanos() as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let readers_done = AtomicBool::new(false);
    let start = Instant::now();
    let (freed_seen, replacements, gps) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let ctx = Sleepable::enter();
            let mut gps = Vec::new();
            // Relaxed: a flag; the scope joins the thread.
            while !readers_done.load(Ordering::Relaxed) {
                let cookie = srcu.start_poll_synchronize_srcu(&ctx);
                let requested = since();
                let mut last_miss = requested;
                // `poll` advances the grace period itself when it can; between polls the
                // CPU goes to whoever else wants it (the executor's 2 workers share the
                // machine's 2 CPUs with this thread).
                while !srcu.poll_state_synchronize_srcu(cookie) {
                    last_miss = since();
                    std::thread::yield_now();
                }
                gps.push(GpRecord { seq: cookie.seq(), requested, completed: since(), last_miss });
            }
            gps
        });
        let _stop = Stop(&readers_done);
        let (freed_seen, replacements) = runtime.block_on(async {
            let writer_stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (cell, stop) = (cell.clone(), writer_stop.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    // Relaxed: a flag.
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let next = Rcu::boxed(Value::new(i));
                        // The token is used only for the call (the async row of the guide).
                        cell.replace(&NoReclaimRoot::enter(), next);
                        // Paced, so as not to hold one of the 2 workers for the whole run.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    i
                })
            };
            let mut readers = Vec::with_capacity(tasks);
            for i in 0..tasks {
                let (srcu, cell, records) = (srcu.clone(), cell.clone(), records.clone());
                readers.push(tokio::spawn(async move {
                    let guard = srcu.down_read(&NoReclaimRoot::enter());
                    let cookie = srcu.get_state_synchronize_srcu();
                    let record = &records[i];
                    // Relaxed (all three): read after the runtime has joined every task.
                    record.cookie.store(cookie.seq(), Ordering::Relaxed);
                    record.index.store(index_of(&guard), Ordering::Relaxed);
                    let value = cell.load(&guard);
                    let mut freed = u64::from(!value.is_intact());
                    let r = splitmix(i as u64);
                    for k in 0..1 + r % 3 {
                        match (r >> (8 + 2 * k)) & 3 {
                            0 => tokio::task::yield_now().await,
                            ms => tokio::time::sleep(Duration::from_millis(ms - 1)).await,
                        }
                    }
                    freed += u64::from(!value.is_intact());
                    // Taken before the drop, so a completion seen after the drop is never
                    // earlier than this.
                    record.dropped.store(since(), Ordering::Relaxed);
                    drop(guard);
                    freed
                }));
                // Arrivals spread over WAVES ms, as requests arrive at a server.
                if (i + 1) % tasks.div_ceil(WAVES) == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let mut freed_seen = 0;
            for r in readers {
                freed_seen += r.await.expect("a W7d reader panicked");
            }
            // Relaxed: a flag.
            writer_stop.store(true, Ordering::Relaxed);
            let replacements = writer.await.expect("the W7d writer panicked");
            (freed_seen, replacements)
        });
        drop(_stop);
        let gps = poller.join().expect("the W7d poller panicked");
        (freed_seen, replacements, gps)
    });
    let elapsed = start.elapsed();
    drop(runtime);
    // Every value retired so far, then the last one with the cell.
    let ctx = Sleepable::enter();
    srcu.srcu_barrier(&ctx);
    drop(cell);
    srcu.srcu_barrier(&ctx);

    let guards: Vec<(u64, u64, u64)> = records
        .iter()
        .map(|g| {
            // Relaxed: every task has been joined.
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            (load(&g.cookie), load(&g.index), load(&g.dropped))
        })
        .collect();
    let (gaps, unblocked, early) = attribute(&guards, &gps, parity);
    W7dRun {
        freed_seen,
        gaps,
        polled: gps.len(),
        unblocked,
        early,
        replacements,
        // Relaxed: after the barriers, on this thread.
        made: MADE.load(Ordering::Relaxed) - made0,
        dropped: DROPPED.load(Ordering::Relaxed) - dropped0,
        elapsed,
    }
}

fn w7d(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let us = |ns: f64| ns / 1e3;
    let (mut upper, mut lower) = (Vec::new(), Vec::new());
    let mut measured = Vec::new();
    let (mut freed_seen, mut early, mut all_dropped) = (0u64, 0usize, true);
    let mut details = Vec::new();
    for rep in 0..cfg.reps {
        let r = w7d_run(cfg.w7_tasks);
        let up: Vec<f64> = r.gaps.iter().map(|g| g.0).collect();
        let low: Vec<f64> = r.gaps.iter().map(|g| g.1).collect();
        let (lu, ll) = (Latency::of(&up), Latency::of(&low));
        measured.push(r.gaps.len() as f64);
        upper.extend(up);
        lower.extend(low);
        freed_seen += r.freed_seen;
        early += r.early;
        all_dropped &= r.made == r.dropped;
        eprintln!(
            "  W7d rep {}/{}: {} tasks in {:.1} ms, {} replacements; {} grace periods polled, {} \
             measured, {} unblocked, {} early; drop -> completion seen p50 {:.1} us p99 {:.1} \
             us (drop -> last miss p50 {:.1} us p99 {:.1} us); freed values seen {}; made {} \
             dropped {}",
            rep + 1,
            cfg.reps,
            cfg.w7_tasks,
            r.elapsed.as_secs_f64() * 1e3,
            r.replacements,
            r.polled,
            r.gaps.len(),
            r.unblocked,
            r.early,
            us(lu.p50),
            us(lu.p99),
            us(ll.p50),
            us(ll.p99),
            r.freed_seen,
            r.made,
            r.dropped
        );
        details.push(format!(
            "{:.0} ms, {} replacements, {} polled / {} measured / {} unblocked",
            r.elapsed.as_secs_f64() * 1e3,
            r.replacements,
            r.polled,
            r.gaps.len(),
            r.unblocked
        ));
    }
    let (lu, ll) = (Latency::of(&upper), Latency::of(&lower));
    rows.push(
        Row::new("W7d", "freed values seen under an owned guard (all reps)", "count")
            .ours(freed_seen as f64)
            .better(Better::Lower)
            .target(Target::AtMost(0.0)),
    );
    rows.push(
        Row::new("W7d", "every value dropped once after srcu_barrier (all reps)", "bool")
            .ours(f64::from(u8::from(all_dropped)))
            .target(Target::Yes),
    );
    rows.push(
        Row::new("W7d", "grace periods completed before a guard they waited for dropped", "count")
            .ours(early as f64)
            .better(Better::Lower)
            .target(Target::AtMost(0.0)),
    );
    rows.push(ours_row(
        "W7d",
        "grace periods measured per run (held by a guard)",
        "count",
        Better::Neither,
        measured,
    ));
    let w7d = |m: &str| Row::new("W7d", m.to_string(), "us").better(Better::Lower);
    rows.push(w7d("last blocking drop -> GP completion seen, p50 (us, all reps)").ours(us(lu.p50)));
    rows.push(
        w7d("last blocking drop -> GP completion seen, p99 (us, all reps)")
            .ours(us(lu.p99))
            .target(Target::AtMost(2000.0)),
    );
    rows.push(w7d("last blocking drop -> GP completion seen, max (us)").ours(us(lu.max)));
    rows.push(
        w7d("last blocking drop -> poller's last miss, p50 (us, lower bound)").ours(us(ll.p50)),
    );
    rows.push(
        w7d("last blocking drop -> poller's last miss, p99 (us, lower bound)").ours(us(ll.p99)),
    );
    notes.push(format!(
        "W7d: {} tasks per run on tokio (2 workers), spawned in {WAVES} waves 1 ms apart, each \
         holding an owned guard across 1-3 awaits; a grace period is measured when a guard it \
         waited for (w7.rs, `attribute`) dropped after the poller asked for it. The true time \
         from that drop to the completion lies between the poller's last look that found the \
         grace period not completed (lower bound) and its first look that found it completed \
         (the target row); the gap between the two is the poller's own scheduling. Pooled \
         over the repetitions ({} grace periods); per repetition: {}",
        cfg.w7_tasks,
        lu.samples,
        details.join("; ")
    ));
}

// ---------------------------------------------------------------------------------------
// W7e

/// Runs `body(thread, ready)` on `READERS` threads; each body does its set-up (registration,
/// a first guard), then calls `ready()`, which waits for the others and starts its clock.
/// Throughput in Mops/s of `ops` operations per thread, from the first start to the last end
/// (each thread timing itself).
fn mops(ops: u64, body: impl Fn(usize, &dyn Fn()) + Sync) -> f64 {
    let barrier = Barrier::new(READERS);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..READERS)
            .map(|t| {
                let (barrier, body) = (&barrier, &body);
                s.spawn(move || {
                    let start = std::cell::Cell::new(None);
                    body(t, &|| {
                        barrier.wait();
                        start.set(Some(Instant::now()));
                    });
                    (start.get().expect("the body called ready()"), Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a W7e reader panicked")).collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads");
    let last = spans.iter().map(|s| s.1).max().expect("threads");
    (READERS as u64 * ops) as f64 / (last - first).as_secs_f64() / 1e6
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A per-thread seed, never 0.
fn seed(thread: usize) -> u64 {
    splitmix(thread as u64 + 1) | 1
}

fn ptr_ours(srcu: &SrcuStruct, ops: u64) -> f64 {
    let cell = RcuCell::new_in(srcu, 1u64);
    mops(ops, |_, ready| {
        let ctx = Sleepable::enter();
        drop(srcu.down_read(&ctx)); // registers the thread
        ready();
        for _ in 0..ops {
            let guard = srcu.down_read(&ctx);
            black_box(*black_box(&cell).load(&guard));
            drop(guard);
        }
    })
}

fn ptr_seize(ops: u64) -> f64 {
    let collector = Collector::new();
    let ptr = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
    let r = mops(ops, |_, ready| {
        drop(collector.enter_owned());
        ready();
        for _ in 0..ops {
            let guard = collector.enter_owned();
            // Acquire: as W1's peers (seize's `protect` makes it SeqCst).
            let p = guard.protect(black_box(&ptr), Ordering::Acquire);
            // SAFETY: never retired while the readers run.
            black_box(unsafe { *p });
            drop(guard);
        }
    });
    // SAFETY: unpublished (the readers have been joined), allocated with Box.
    unsafe { collector.retire(ptr.into_inner(), reclaim::boxed) };
    r
}

/// (Mops/s, hits): every key is present, so hits must be `READERS * ops`.
fn map_ours(srcu: &Arc<SrcuStruct>, ops: u64) -> (f64, u64) {
    let map: RcuHashMap<u64, u64> = RcuHashMap::with_capacity_and_hasher_in(
        MAP_KEYS as usize,
        RandomState::new(),
        srcu.clone(),
    );
    let mut ctx = Sleepable::enter();
    for k in 0..MAP_KEYS {
        map.insert(&mut ctx, k, k);
    }
    let hits = AtomicU64::new(0);
    let r = mops(ops, |t, ready| {
        let ctx = Sleepable::enter();
        drop(srcu.down_read(&ctx)); // registers the thread
        let (mut x, mut n) = (seed(t), 0u64);
        ready();
        for _ in 0..ops {
            let key = xorshift(&mut x) % MAP_KEYS;
            let guard = srcu.down_read(&ctx);
            n += u64::from(black_box(map.get(&key, &guard)).is_some());
            drop(guard);
        }
        // Relaxed: read after the join.
        hits.fetch_add(n, Ordering::Relaxed);
    });
    (r, hits.into_inner())
}

fn map_papaya(ops: u64) -> (f64, u64) {
    let map: papaya::HashMap<u64, u64> =
        papaya::HashMap::builder().capacity(MAP_KEYS as usize).hasher(RandomState::new()).build();
    {
        let m = map.pin();
        for k in 0..MAP_KEYS {
            m.insert(k, k);
        }
    }
    let hits = AtomicU64::new(0);
    let r = mops(ops, |t, ready| {
        drop(map.pin_owned());
        let (mut x, mut n) = (seed(t), 0u64);
        ready();
        for _ in 0..ops {
            let key = xorshift(&mut x) % MAP_KEYS;
            let m = map.pin_owned();
            n += u64::from(black_box(m.get(&key)).is_some());
            drop(m);
        }
        // Relaxed: read after the join.
        hits.fetch_add(n, Ordering::Relaxed);
    });
    (r, hits.into_inner())
}

fn w7e(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let ops = cfg.w7_reads;
    let srcu: Arc<SrcuStruct> = Arc::new(SrcuStruct::new(DomainConfig::new().name("rcuscale-w7e")));
    let mut ptr = PerSystem::default();
    let (mut map_rcu, mut map_papaya_v) = (Vec::new(), Vec::new());
    let mut all_hit = true;
    for rep in 0..cfg.reps {
        ptr.ours.push(ptr_ours(&srcu, ops));
        ptr.seize.push(ptr_seize(ops));
        let (a, ha) = map_ours(&srcu, ops);
        let (b, hb) = map_papaya(ops);
        all_hit &= ha == READERS as u64 * ops && hb == READERS as u64 * ops;
        map_rcu.push(a);
        map_papaya_v.push(b);
        eprintln!(
            "  W7e rep {}/{}: pointer ours {:.1} / seize {:.1} Mops/s; map RcuHashMap {:.1} / \
             papaya {:.1} Mops/s",
            rep + 1,
            cfg.reps,
            ptr.ours[rep],
            ptr.seize[rep],
            a,
            b
        );
    }
    let ratio = ratios(&map_rcu, &map_papaya_v);
    rows.push(
        Row::from_reps(
            "W7e",
            format!("pointer, {READERS} threads: down_read + load vs seize enter_owned (Mops/s)"),
            "Mops/s",
            Better::Higher,
            ptr,
        )
        .target(Target::VsSeizeAtLeast(1.5)),
    );
    rows.push(ours_row(
        "W7e",
        &format!("map, {READERS} threads: RcuHashMap get under down_read (Mops/s)"),
        "Mops/s",
        Better::Higher,
        map_rcu,
    ));
    rows.push(ours_row(
        "W7e",
        &format!("map, {READERS} threads: PEER papaya pin_owned().get (Mops/s)"),
        "Mops/s",
        Better::Higher,
        map_papaya_v,
    ));
    rows.push(
        ours_row("W7e", "map: RcuHashMap / papaya throughput (x)", "x", Better::Higher, ratio)
            .target(Target::AtLeast(1.5)),
    );
    rows.push(
        Row::new("W7e", "map: every get found its key (all reps, both maps)", "bool")
            .ours(f64::from(u8::from(all_hit)))
            .target(Target::Yes),
    );
    notes.push(format!(
        "W7e: {ops} reads per thread per run, one owned guard per read, {MAP_KEYS} keys in the \
         map workload; the pointer row's peer is in seize's column (one Collector per run)"
    ));
}
