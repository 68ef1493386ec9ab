//! How long an async task's scope openings take on an executor thread: the figure behind
//! "an executor thread never waits for reclaim" (docs/which-token.md, the async row).
//!
//! A tokio runtime with 2 worker threads runs tasks that write without pause: each write
//! takes a root in a block that ends before the next `.await` and replaces a shared `RcuCell`
//! value and frees a box (`kvfree_rcu`); other tasks read under `read_lock`. Two rounds, one
//! per way of taking the write's context:
//! - `NoReclaimRoot::enter()`, the async row's: its opening pays only the deallocations the
//!   worker gave back, and what the frees leave for reclaim goes to the worker;
//! - `Sleepable::enter()` then `no_reclaim()`, for comparison: that opening, from a token that
//!   may reclaim, runs the thread's ready frees and may wait up to 10 ms for a grace period
//!   when its parking slots are full (docs/guide.md §4).
//!
//! It times each opening and each `read_lock` opening and prints the percentiles, the
//! maximum and how many took over 1 ms, against the targets of issue 23 for the async row's
//! openings (maximum <= 1 ms, p99.9 <= 50 us). The timed windows are a few hundred
//! nanoseconds, so an OS preemption inside one is rare but shows in the maximum on a loaded
//! machine: read openings, which pay nothing, are the control for that. To tell the two
//! apart, each opening reads its thread's context switches just before and just after
//! (`getrusage(RUSAGE_THREAD)`, Linux; outside the timed window): an opening with a
//! voluntary switch waited (blocked), one with only involuntary switches was preempted. The
//! targets are checked on all openings, and again leaving out the preempted ones.
//!
//! Run: `cargo run --release -p rcu-core --example executor_latency [-- --secs N]` (N seconds
//! per round, 5 by default).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;

const WORKERS: usize = 2;
const WRITERS: usize = 4;
const READERS: usize = 4;
/// Writes between two `.await`s of a writer task (a batch of requests).
const WRITES_PER_TURN: usize = 64;
const TARGET_MAX: Duration = Duration::from_millis(1);
const TARGET_P999: Duration = Duration::from_micros(50);

/// The shared value writers replace and readers read.
struct Config {
    version: u64,
    payload: [u64; 8],
}

/// How a write takes its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    /// `NoReclaimRoot::enter()`: the async row's.
    NoReclaim,
    /// `Sleepable::enter()` then `no_reclaim()`.
    SleepableNarrowed,
}

fn main() {
    let secs = parse_secs();
    println!(
        "executor_latency: tokio, {WORKERS} workers, {WRITERS} writer and {READERS} reader \
         tasks, {secs} s per round"
    );
    let write_ok = round(Root::NoReclaim, secs);
    round(Root::SleepableNarrowed, secs);
    println!(
        "targets (NoReclaimRoot::enter() openings not preempted): max <= {TARGET_MAX:?}, \
         p99.9 <= {TARGET_P999:?}: {}",
        if write_ok { "met" } else { "NOT MET" }
    );
}

/// Runs writers taking their context as `root` says, and readers, for `secs` seconds on a
/// fresh runtime; prints the openings' distributions and returns whether the writes' meet
/// the targets.
fn round(root: Root, secs: u64) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let cell = Arc::new(RcuCell::new(Config { version: 0, payload: [0; 8] }));
    let stop = Arc::new(AtomicBool::new(false));
    let (writes, reads) = runtime.block_on(async {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            writers.push(tokio::spawn(async move { writer(w, root, &cell, &stop).await }));
        }
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            readers.push(tokio::spawn(async move { reader(&cell, &stop).await }));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut writes = Vec::new();
        for w in writers {
            writes.extend(w.await.expect("a writer task"));
        }
        let mut reads = Vec::new();
        for r in readers {
            reads.extend(r.await.expect("a reader task"));
        }
        rcu_barrier_async().await;
        (writes, reads)
    });
    let what = match root {
        Root::NoReclaim => "NoReclaimRoot::enter() opening (write scope)",
        Root::SleepableNarrowed => "Sleepable::enter().no_reclaim() opening (write scope)",
    };
    let write_ok = report(what, writes);
    report("read_lock opening (control)", reads);
    write_ok
}

/// One opening: how long it took (ns), and what its batch's thread did meanwhile.
#[derive(Clone, Copy)]
struct Sample {
    nanos: u32,
    switched: Switched,
}

/// Context switches of a batch's thread while the batch ran.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Switched {
    /// None (or not known: not Linux).
    No,
    /// Only involuntary ones: preempted.
    Preempted,
    /// At least one voluntary one: something in the batch blocked.
    Blocked,
}

/// The calling thread's (voluntary, involuntary) context switches so far.
#[cfg(target_os = "linux")]
fn switches() -> (i64, i64) {
    // SAFETY: a zeroed rusage is a valid output buffer; RUSAGE_THREAD needs nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `usage` outlives the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    (usage.ru_nvcsw, usage.ru_nivcsw)
}

#[cfg(not(target_os = "linux"))]
fn switches() -> (i64, i64) {
    (0, 0)
}

/// Times `WRITES_PER_TURN` openings with `open_and_time` (which returns the opening's time
/// and runs the rest of the write or read after it), each tagged with the context switches
/// its thread made from just before the opening to just after it.
fn batch(samples: &mut Vec<Sample>, mut open_and_time: impl FnMut(&mut dyn FnMut()) -> u32) {
    for _ in 0..WRITES_PER_TURN {
        let mut after = (0, 0);
        let before = switches();
        let nanos = open_and_time(&mut || after = switches());
        let switched = if after.0 != before.0 {
            Switched::Blocked
        } else if after.1 != before.1 {
            Switched::Preempted
        } else {
            Switched::No
        };
        samples.push(Sample { nanos, switched });
    }
}

/// Replaces the cell's value and frees a box, `WRITES_PER_TURN` times per turn, taking the
/// context as `root` says; returns each opening's sample.
async fn writer(id: usize, root: Root, cell: &RcuCell<Config>, stop: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(1 << 20);
    let mut version = id as u64;
    while !stop.load(Ordering::Relaxed) {
        batch(&mut samples, |opened| {
            version += WRITERS as u64;
            match root {
                Root::NoReclaim => {
                    let start = Instant::now();
                    let ctx = NoReclaimRoot::enter();
                    let took = nanos(start.elapsed());
                    opened();
                    write(&ctx, cell, version);
                    took
                }
                Root::SleepableNarrowed => {
                    let mut root = Sleepable::enter();
                    let start = Instant::now();
                    let ctx = root.no_reclaim();
                    let took = nanos(start.elapsed());
                    opened();
                    write(&ctx, cell, version);
                    took
                }
            }
        });
        tokio::task::yield_now().await;
    }
    samples
}

fn write<C: MayAlloc>(ctx: &C, cell: &RcuCell<Config>, version: u64) {
    cell.set(ctx, Config { version, payload: [version; 8] });
    kvfree_rcu(ctx, Rcu::boxed([version; 16]));
}

/// Reads the cell under `read_lock`; returns each opening's sample.
async fn reader(cell: &RcuCell<Config>, stop: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(1 << 20);
    while !stop.load(Ordering::Relaxed) {
        batch(&mut samples, |opened| {
            let mut root = Sleepable::enter();
            let start = Instant::now();
            let guard = read_lock(&mut root);
            let took = nanos(start.elapsed());
            opened();
            let config = cell.load(&guard);
            assert!(config.payload.iter().all(|&p| p == config.version), "a torn value");
            took
        });
        tokio::task::yield_now().await;
    }
    samples
}

fn nanos(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

/// Prints the distribution of the openings' times, all of them and leaving out the
/// preempted ones; returns whether the latter meet the targets.
fn report(what: &str, samples: Vec<Sample>) -> bool {
    assert!(!samples.is_empty(), "{what}: no sample");
    let slow: Vec<Sample> = samples.iter().copied().filter(|s| s.nanos > 1_000_000).collect();
    let count = |w: Switched| slow.iter().filter(|s| s.switched == w).count();
    let all: Vec<u32> = samples.iter().map(|s| s.nanos).collect();
    let unpreempted: Vec<u32> =
        samples.iter().filter(|s| s.switched != Switched::Preempted).map(|s| s.nanos).collect();
    println!(
        "{what}: {} samples; {} over 1 ms ({} blocked, {} preempted, {} neither)",
        all.len(),
        slow.len(),
        count(Switched::Blocked),
        count(Switched::Preempted),
        count(Switched::No),
    );
    distribution("  all", all);
    distribution("  not preempted", unpreempted)
}

/// Prints percentiles and maximum of `times` (ns); returns whether they meet the targets.
fn distribution(label: &str, mut times: Vec<u32>) -> bool {
    if times.is_empty() {
        println!("{label}: no sample");
        return true;
    }
    times.sort_unstable();
    let at =
        |q: f64| Duration::from_nanos(u64::from(times[((times.len() - 1) as f64 * q) as usize]));
    let max = Duration::from_nanos(u64::from(*times.last().unwrap()));
    println!(
        "{label}: {} samples, p50 {:?}, p99 {:?}, p99.9 {:?}, max {max:?}",
        times.len(),
        at(0.5),
        at(0.99),
        at(0.999),
    );
    max <= TARGET_MAX && at(0.999) <= TARGET_P999
}

fn parse_secs() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--secs") {
        Some(i) => args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .filter(|&s| s > 0)
            .unwrap_or_else(|| panic!("--secs takes a whole number of seconds above 0")),
        None => 5,
    }
}
