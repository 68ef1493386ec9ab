//! What every workload shares: the node, per-system drop counters, and the small statistics
//! (medians, percentiles).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The systems compared. The index is the node's drop-counter index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum System {
    /// This project (`rcu_core`, global domain unless stated).
    Ours,
    /// `crossbeam-epoch` 0.9, its default (global) collector.
    Crossbeam,
    /// `seize`, one `Collector` per run.
    Seize,
}

impl System {
    /// In the interleaving order of every workload: A B C A B C ...
    pub(crate) const ALL: [System; 3] = [System::Ours, System::Crossbeam, System::Seize];

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Ours => "rcu-ctx",
            System::Crossbeam => "crossbeam-epoch",
            System::Seize => "seize",
        }
    }
}

/// Drop-counter index of this project's nodes.
pub(crate) const OURS: usize = 0;
/// Drop-counter index of crossbeam-epoch's nodes.
pub(crate) const CROSSBEAM: usize = 1;
/// Drop-counter index of seize's nodes.
pub(crate) const SEIZE: usize = 2;
/// Drop-counter index of W6 (budgeted domain) nodes.
pub(crate) const BUDGET: usize = 3;
/// Drop-counter index of the nodes of peers outside the three columns (arc-swap).
pub(crate) const OTHER: usize = 4;

/// One counter per cache line, so systems measured back to back never share a line.
#[repr(align(128))]
struct Padded(AtomicU64);

static FREED: [Padded; 5] = [
    Padded(AtomicU64::new(0)),
    Padded(AtomicU64::new(0)),
    Padded(AtomicU64::new(0)),
    Padded(AtomicU64::new(0)),
    Padded(AtomicU64::new(0)),
];

/// The 64-byte payload every system allocates, reads and frees. `S` picks the drop counter,
/// so a peer's late frees can never be counted for another system; the size stays 64 bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Node<const S: usize> {
    pub(crate) data: [u64; 8],
}

impl<const S: usize> Node<S> {
    #[inline]
    pub(crate) fn new(v: u64) -> Self {
        Node { data: [v; 8] }
    }
}

impl<const S: usize> Drop for Node<S> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: a count; readers of it synchronize through the system's barrier or flush
        // (or poll it until it reaches the expected value).
        FREED[S].0.fetch_add(1, Ordering::Relaxed);
    }
}

const _: () = assert!(core::mem::size_of::<Node<0>>() == 64);

/// Nodes of counter `s` dropped so far.
pub(crate) fn freed(s: usize) -> u64 {
    // Relaxed: see `Node::drop`.
    FREED[s].0.load(Ordering::Relaxed)
}

/// Polls `freed(s) >= target` every 100 µs until `timeout`, calling `nudge` between polls (a
/// peer's flush); returns whether it got there.
pub(crate) fn wait_freed(
    s: usize,
    target: u64,
    timeout: Duration,
    mut nudge: impl FnMut(),
) -> bool {
    // None: beyond any representable instant, that is never.
    let deadline = std::time::Instant::now().checked_add(timeout);
    loop {
        if freed(s) >= target {
            return true;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return false;
        }
        nudge();
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// The median of `xs` (mean of the middle two for an even count); NaN when empty.
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `q`-quantile (0..=1, nearest rank) of `xs`; NaN when empty.
pub(crate) fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The largest of `xs`; NaN when empty.
pub(crate) fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::max)
}

/// Latency summary of one run, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) samples: usize,
}

impl Latency {
    pub(crate) fn of(ns: &[f64]) -> Self {
        Latency { p50: quantile(ns, 0.5), p99: quantile(ns, 0.99), max: max(ns), samples: ns.len() }
    }
}

/// Per-system values of one metric over the repetitions, in run order.
#[derive(Clone, Debug, Default)]
pub(crate) struct PerSystem {
    pub(crate) ours: Vec<f64>,
    pub(crate) crossbeam: Vec<f64>,
    pub(crate) seize: Vec<f64>,
}

impl PerSystem {
    pub(crate) fn push(&mut self, system: System, value: f64) {
        match system {
            System::Ours => self.ours.push(value),
            System::Crossbeam => self.crossbeam.push(value),
            System::Seize => self.seize.push(value),
        }
    }

    pub(crate) fn get(&self, system: System) -> &[f64] {
        match system {
            System::Ours => &self.ours,
            System::Crossbeam => &self.crossbeam,
            System::Seize => &self.seize,
        }
    }

    /// Medians per system (None for a system with no values).
    pub(crate) fn medians(&self) -> [Option<f64>; 3] {
        System::ALL.map(|s| {
            let v = self.get(s);
            (!v.is_empty()).then(|| median(v))
        })
    }
}
