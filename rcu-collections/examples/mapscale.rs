//! mapscale: `RcuHashMap` against papaya, dashmap and `RwLock<HashMap>` on the workloads of
//! conc-map-bench (read_heavy, exchange, rapid_grow), 1 and 2 threads, plus memory per entry.
//!
//! Run: `cargo run --release -p rcu-collections --example mapscale` (add `-- --quick` for a
//! smoke run; `--help` for the options).
//!
//! Like conc-map-bench (bustle): keys are `u64`, values `u32`, the map is made with the
//! initial capacity and prefilled to a fraction of it (0.75 for read_heavy and exchange, 0
//! for rapid_grow), then every thread runs its share of the operations on its own keys: reads
//! and updates of keys it inserted, removes of its oldest key, inserts of fresh keys. Each
//! thread's operations are generated before the clock starts, and every result is checked
//! (a read of a live key must hit). Repetitions are interleaved (each repetition runs every
//! map once, in a rotated order) and the table reports medians.
//!
//! Memory per entry: live heap bytes (as `malloc_usable_size` counts them, so allocator
//! rounding is included) after prefilling a fresh map, divided by the entries, measured by a
//! counting global allocator that counts only during that phase.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::time::Instant;

use rcu_collections::RcuHashMap;
use rcu_core::prelude::*;

// ---------------------------------------------------------------- counting allocator

/// Counts live usable bytes while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn usable(ptr: *mut u8) -> isize {
    // SAFETY: `ptr` is a live allocation of the system allocator (malloc).
    unsafe { libc::malloc_usable_size(ptr.cast()) as isize }
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        // Relaxed: statistics.
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(usable(p), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Relaxed: statistics.
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(usable(ptr), Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------- the maps

type Key = u64;
type Value = u32;

/// One map under test, as the benchmark drives it (per-thread handle state lives in `T`).
trait Bench: Send + Sync + 'static {
    const NAME: &'static str;
    /// Per-thread state (a token for the RCU map).
    type Thread;
    fn with_capacity(capacity: usize) -> Self;
    fn thread(&self) -> Self::Thread;
    fn get(&self, t: &mut Self::Thread, key: Key) -> bool;
    fn insert(&self, t: &mut Self::Thread, key: Key) -> bool;
    fn remove(&self, t: &mut Self::Thread, key: Key) -> bool;
    fn update(&self, t: &mut Self::Thread, key: Key) -> bool;
}

struct Rcu(RcuHashMap<Key, Value>);

impl Bench for Rcu {
    const NAME: &'static str = "RcuHashMap";
    type Thread = Sleepable;
    fn with_capacity(capacity: usize) -> Self {
        Rcu(RcuHashMap::with_capacity(capacity))
    }
    fn thread(&self) -> Sleepable {
        Sleepable::enter()
    }
    #[inline]
    fn get(&self, ctx: &mut Sleepable, key: Key) -> bool {
        let guard = read_lock(ctx);
        self.0.get(&key, &guard).is_some()
    }
    #[inline]
    fn insert(&self, ctx: &mut Sleepable, key: Key) -> bool {
        self.0.insert(ctx, key, 0)
    }
    #[inline]
    fn remove(&self, ctx: &mut Sleepable, key: Key) -> bool {
        self.0.remove(ctx, &key)
    }
    #[inline]
    fn update(&self, ctx: &mut Sleepable, key: Key) -> bool {
        self.0.update(ctx, &key, |v| v + 1)
    }
}

struct Papaya(papaya::HashMap<Key, Value>);

impl Bench for Papaya {
    const NAME: &'static str = "papaya";
    type Thread = ();
    fn with_capacity(capacity: usize) -> Self {
        // papaya's defaults (conc-map-bench's adapter tunes seize options that seize 0.5,
        // papaya 0.2's collector, no longer has).
        Papaya(papaya::HashMap::builder().capacity(capacity).build())
    }
    fn thread(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: Key) -> bool {
        self.0.pin().get(&key).is_some()
    }
    #[inline]
    fn insert(&self, _: &mut (), key: Key) -> bool {
        self.0.pin().insert(key, 0).is_none()
    }
    #[inline]
    fn remove(&self, _: &mut (), key: Key) -> bool {
        self.0.pin().remove(&key).is_some()
    }
    #[inline]
    fn update(&self, _: &mut (), key: Key) -> bool {
        self.0.pin().update(key, |v| v + 1).is_some()
    }
}

struct Dash(dashmap::DashMap<Key, Value>);

impl Bench for Dash {
    const NAME: &'static str = "dashmap";
    type Thread = ();
    fn with_capacity(capacity: usize) -> Self {
        Dash(dashmap::DashMap::with_capacity(capacity))
    }
    fn thread(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: Key) -> bool {
        self.0.get(&key).is_some()
    }
    #[inline]
    fn insert(&self, _: &mut (), key: Key) -> bool {
        self.0.insert(key, 0).is_none()
    }
    #[inline]
    fn remove(&self, _: &mut (), key: Key) -> bool {
        self.0.remove(&key).is_some()
    }
    #[inline]
    fn update(&self, _: &mut (), key: Key) -> bool {
        self.0.get_mut(&key).map(|mut v| *v += 1).is_some()
    }
}

struct Locked(RwLock<HashMap<Key, Value>>);

impl Bench for Locked {
    const NAME: &'static str = "RwLock<HashMap>";
    type Thread = ();
    fn with_capacity(capacity: usize) -> Self {
        Locked(RwLock::new(HashMap::with_capacity(capacity)))
    }
    fn thread(&self) {}
    #[inline]
    fn get(&self, _: &mut (), key: Key) -> bool {
        self.0.read().unwrap().contains_key(&key)
    }
    #[inline]
    fn insert(&self, _: &mut (), key: Key) -> bool {
        self.0.write().unwrap().insert(key, 0).is_none()
    }
    #[inline]
    fn remove(&self, _: &mut (), key: Key) -> bool {
        self.0.write().unwrap().remove(&key).is_some()
    }
    #[inline]
    fn update(&self, _: &mut (), key: Key) -> bool {
        self.0.write().unwrap().get_mut(&key).map(|v| *v += 1).is_some()
    }
}

// ---------------------------------------------------------------- workloads

#[derive(Clone, Copy, Debug)]
struct Mix {
    name: &'static str,
    read: u32,
    insert: u32,
    remove: u32,
    /// update = 100 - the rest
    prefill: f64,
}

const READ_HEAVY: Mix = Mix { name: "read_heavy", read: 98, insert: 1, remove: 1, prefill: 0.75 };
const EXCHANGE: Mix = Mix { name: "exchange", read: 10, insert: 40, remove: 40, prefill: 0.75 };
const RAPID_GROW: Mix = Mix { name: "rapid_grow", read: 5, insert: 80, remove: 5, prefill: 0.0 };

#[derive(Clone, Copy)]
enum Op {
    Get(Key),
    Insert(Key),
    Remove(Key),
    Update(Key),
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One thread's plan: its prefill keys and its operations (each expected to succeed).
struct Plan {
    prefill: Vec<Key>,
    ops: Vec<Op>,
}

fn plan(mix: Mix, thread: u64, prefill: usize, ops: usize) -> Plan {
    let mut next = 0u64;
    let mut fresh = || {
        next += 1;
        splitmix((thread << 48) | next)
    };
    let mut live: VecDeque<Key> = (0..prefill).map(|_| fresh()).collect();
    let prefill_keys: Vec<Key> = live.iter().copied().collect();
    let mut rng = splitmix(thread ^ 0x5eed);
    let mut out = Vec::with_capacity(ops);
    for _ in 0..ops {
        rng = splitmix(rng);
        let roll = (rng % 100) as u32;
        let pick = (rng >> 32) as usize;
        let op = if live.is_empty() || roll >= mix.read + mix.insert + mix.remove {
            if live.is_empty() {
                let k = fresh();
                live.push_back(k);
                Op::Insert(k)
            } else {
                Op::Update(live[pick % live.len()])
            }
        } else if roll < mix.read {
            Op::Get(live[pick % live.len()])
        } else if roll < mix.read + mix.insert {
            let k = fresh();
            live.push_back(k);
            Op::Insert(k)
        } else {
            Op::Remove(live.pop_front().expect("not empty"))
        };
        out.push(op);
    }
    Plan { prefill: prefill_keys, ops: out }
}

/// Runs one map on the plans; returns the parallel phase's Mops/s.
fn run<M: Bench>(capacity: usize, plans: &Arc<Vec<Plan>>) -> f64 {
    let map = Arc::new(M::with_capacity(capacity));
    {
        let mut t = map.thread();
        for p in plans.iter() {
            for &k in &p.prefill {
                assert!(map.insert(&mut t, k));
            }
        }
    }
    let threads = plans.len();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (map, plans, barrier) = (map.clone(), plans.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut t = map.thread();
                barrier.wait();
                let mut ok = 0usize;
                for op in &plans[i].ops {
                    ok += usize::from(match *op {
                        Op::Get(k) => map.get(&mut t, k),
                        Op::Insert(k) => map.insert(&mut t, k),
                        Op::Remove(k) => map.remove(&mut t, k),
                        Op::Update(k) => map.update(&mut t, k),
                    });
                }
                barrier.wait();
                assert_eq!(ok, plans[i].ops.len(), "{}: an operation failed", M::NAME);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    barrier.wait();
    let elapsed = start.elapsed();
    for h in handles {
        h.join().expect("bench thread");
    }
    let total: usize = plans.iter().map(|p| p.ops.len()).sum();
    drop(map);
    total as f64 / elapsed.as_secs_f64() / 1e6
}

/// Live bytes per entry after prefilling `entries` into a fresh map of `capacity`.
fn memory<M: Bench>(capacity: usize, entries: usize) -> f64 {
    let ctx = Sleepable::enter();
    rcu_barrier(&ctx);
    // Relaxed: single-threaded phase markers (other threads' allocations are noise).
    LIVE.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let map = M::with_capacity(capacity);
    let mut t = map.thread();
    for i in 0..entries as u64 {
        map.insert(&mut t, splitmix(i));
    }
    COUNTING.store(false, Ordering::Relaxed);
    let bytes = LIVE.load(Ordering::Relaxed);
    drop(t);
    drop(map);
    bytes as f64 / entries as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    capacity_log2: u32,
    ops: f64,
    reps: usize,
    threads: Vec<usize>,
    /// Only these workloads (for profiling); all if empty.
    workloads: Vec<String>,
    /// Only these maps (indices into the table's columns; for profiling); all if empty.
    maps: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        capacity_log2: 20,
        ops: 1.0,
        reps: 5,
        threads: vec![1, 2],
        workloads: Vec::new(),
        maps: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                a.capacity_log2 = 14;
                a.reps = 1;
            }
            "--capacity-log2" => a.capacity_log2 = value().parse().expect("a number"),
            "--ops" => a.ops = value().parse().expect("a number"),
            "--reps" => a.reps = value().parse().expect("a number"),
            "--threads" => {
                a.threads = value().split(',').map(|t| t.parse().expect("a number")).collect()
            }
            "--workloads" => a.workloads = value().split(',').map(String::from).collect(),
            "--maps" => {
                let names = value();
                a.maps = [Rcu::NAME, Papaya::NAME, Dash::NAME, Locked::NAME]
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| names.split(',').any(|m| m == **n))
                    .map(|(i, _)| i)
                    .collect();
            }
            "--help" | "-h" => {
                println!(
                    "mapscale [--quick] [--capacity-log2 N (20)] [--ops MULTIPLE (1.0)] \
                     [--reps N (5)] [--threads 1,2] [--workloads read_heavy,..] \
                     [--maps RcuHashMap,papaya,dashmap,RwLock<HashMap>] (the last two for \
                     profiling: the summary tables need every map and workload)"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (see --help)"),
        }
    }
    a
}

fn main() {
    let a = args();
    let capacity = 1usize << a.capacity_log2;
    let names = [Rcu::NAME, Papaya::NAME, Dash::NAME, Locked::NAME];
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    println!(
        "command: cargo run --release -p rcu-collections --example mapscale{}{command}",
        if command.is_empty() { "" } else { " -- " }
    );
    println!(
        "capacity 2^{} = {capacity}, operations {}x capacity per run, {} interleaved \
         repetitions, medians; Mops/s (higher is better)\n",
        a.capacity_log2, a.ops, a.reps
    );
    // results[(mix, threads)][map] = median Mops/s
    let mut results: Vec<(Mix, usize, [f64; 4])> = Vec::new();
    for mix in [READ_HEAVY, EXCHANGE, RAPID_GROW] {
        if !a.workloads.is_empty() && !a.workloads.iter().any(|w| w == mix.name) {
            continue;
        }
        for &threads in &a.threads {
            let prefill = (capacity as f64 * mix.prefill) as usize / threads;
            let ops = (capacity as f64 * a.ops) as usize / threads;
            let plans: Arc<Vec<Plan>> =
                Arc::new((0..threads as u64).map(|t| plan(mix, t, prefill, ops)).collect());
            let mut samples: [Vec<f64>; 4] = Default::default();
            for rep in 0..a.reps {
                for k in 0..4 {
                    let which = (k + rep) % 4;
                    if !a.maps.is_empty() && !a.maps.contains(&which) {
                        samples[which].push(f64::NAN);
                        continue;
                    }
                    let mops = match which {
                        0 => run::<Rcu>(capacity, &plans),
                        1 => run::<Papaya>(capacity, &plans),
                        2 => run::<Dash>(capacity, &plans),
                        _ => run::<Locked>(capacity, &plans),
                    };
                    samples[which].push(mops);
                }
                // Let deferred frees of the dropped maps finish between repetitions.
                rcu_barrier(&Sleepable::enter());
            }
            let medians = samples.map(median);
            eprintln!(
                "{:<11} {} thread(s): {}",
                mix.name,
                threads,
                names
                    .iter()
                    .zip(medians)
                    .map(|(n, m)| format!("{n} {m:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            results.push((mix, threads, medians));
        }
    }
    let entries = capacity * 3 / 4;
    let mem = [
        memory::<Rcu>(capacity, entries),
        memory::<Papaya>(capacity, entries),
        memory::<Dash>(capacity, entries),
        memory::<Locked>(capacity, entries),
    ];

    println!(
        "| workload | threads | {} | RcuHashMap / papaya | RcuHashMap / dashmap |",
        names.join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (mix, threads, m) in &results {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            mix.name,
            threads,
            m[0],
            m[1],
            m[2],
            m[3],
            m[0] / m[1],
            m[0] / m[2]
        );
    }
    println!(
        "| memory per entry, bytes ({entries} entries, capacity {capacity}) | | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
        mem[0],
        mem[1],
        mem[2],
        mem[3],
        mem[0] / mem[1],
        mem[0] / mem[2]
    );

    let find = |name: &str, threads: usize| {
        results.iter().find(|(m, t, _)| m.name == name && *t == threads).map(|(_, _, r)| *r)
    };
    let met = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!("\n| target | measured | result |\n|---|---|---|");
    if let Some(r) = find("read_heavy", 2) {
        println!(
            "| read_heavy, 2 threads: >= 1.2x papaya | {:.2}x | {} |",
            r[0] / r[1],
            met(r[0] >= 1.2 * r[1])
        );
        println!(
            "| read_heavy, 2 threads: >= dashmap | {:.2}x | {} |",
            r[0] / r[2],
            met(r[0] >= r[2])
        );
    }
    for t in &a.threads {
        if let Some(r) = find("exchange", *t) {
            println!(
                "| exchange, {t} thread(s): >= papaya | {:.2}x | {} |",
                r[0] / r[1],
                met(r[0] >= r[1])
            );
        }
    }
    println!(
        "| memory per entry <= papaya | {:.1} vs {:.1} bytes | {} |",
        mem[0],
        mem[1],
        met(mem[0] <= mem[1])
    );
}
