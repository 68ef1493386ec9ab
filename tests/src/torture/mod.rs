//! rcutorture: a stress tester that can fail.
//!
//! Readers check every element they see for a too-short grace period (age above 1), for
//! poison (freed under them) and for reuse; the writer ages retired elements with every
//! grace-period method; updaters push counted `call_rcu` traffic and tracked deferred frees
//! (`kvfree_rcu`, `kvfree_rcu_mightsleep`) with every token; side threads check
//! `rcu_barrier` (callbacks run, frees dropped and deallocated), forward progress under a
//! `call_rcu` flood, and stall reporting. A live line per second, then a summary ending in
//! SUCCESS or FAILURE. Under the `busted` flavor (a fake RCU that protects nothing) and the
//! `busted-barrier` flavor (a barrier that returns before deallocations) the run must fail.
//!
//! The sleepable flavors (`srcu`, `srcu-plain`) torture an `SrcuStruct`: its readers
//! (`srcu_readers.rs`) sleep in their sections and hand owned guards to each other, the
//! writer and the updaters use its `*_srcu` calls with every token, a section's own among
//! them; `srcu-busted` (readers on one sleepable domain, updates on another) must fail.
//!
//! The QSBR flavors (`qsbr`) torture a `QsbrDomain`: its readers (`qsbr_readers.rs`) stay
//! online across batches of reads, announce quiescent states between them and go offline
//! now and then; the writer and the updaters use its calls with every token, and its grace
//! periods must issue no membarrier. `qsbr-busted` (readers online on one QSBR domain,
//! updates on another) must fail.
//!
//! A process that runs it installs [`alloc::CountingAlloc`] as its global allocator.

pub mod alloc;
pub mod arena;
pub mod config;
pub mod flavor;
pub mod frees;
pub mod map;
pub mod qsbr_readers;
pub mod readers;
pub mod report;
pub mod rng;
pub mod side;
pub mod srcu_readers;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::prelude::*;
use rcu_core::{AllocConfig, DomainConfig, FaultConfig, Policy, QsbrDomain, SrcuStruct};

use arena::{Arena, PIPE_LEN};
pub use config::{Config, FlavorKind, Tests, TokenKind};
use flavor::Flavor;
use frees::Frees;
use readers::Published;
pub use report::{Check, Counters, QsbrFigures, Sample, Summary};

/// What every torture thread shares.
#[derive(Debug)]
pub struct Shared {
    /// The run's configuration.
    pub config: Config,
    /// What is being tortured.
    pub flavor: Flavor,
    /// The elements.
    pub arena: Arena,
    /// The current element.
    pub published: Published,
    /// The counters.
    pub counters: Counters,
    /// The updaters' tracked deferred frees.
    pub frees: Frees,
}

/// The configuration of the run's own domain: a pending-memory budget, maybe small blocks, a
/// short batch delay.
fn domain_config(config: &Config, name: &'static str) -> DomainConfig {
    let mut alloc = AllocConfig::new().budget_bytes(config.budget);
    if config.small_blocks {
        alloc = alloc.small_blocks();
    }
    DomainConfig::new().name(name).alloc(alloc).batch_delay(Duration::from_millis(2))
}

/// Fault injection on the run's own domain, if asked for.
fn inject_faults(config: &Config, inject: impl Fn(Policy, FaultConfig)) {
    if config.fault_rate > 0.0 {
        for (i, policy) in
            [Policy::Reclaim, Policy::NoReclaim, Policy::NoWait].into_iter().enumerate()
        {
            inject(policy, FaultConfig::probability(config.fault_rate, config.seed + i as u64));
        }
    }
}

fn make_flavor(config: &Config) -> Flavor {
    match config.flavor {
        FlavorKind::Global => Flavor::Global,
        FlavorKind::Busted => Flavor::Busted(AtomicU64::new(0)),
        FlavorKind::Custom | FlavorKind::BustedBarrier => {
            let domain = rcu_core::Domain::new(domain_config(config, "torture"));
            inject_faults(config, |policy, faults| domain.inject_faults(policy, faults));
            if config.flavor == FlavorKind::BustedBarrier {
                Flavor::BustedBarrier(domain)
            } else {
                Flavor::Custom(domain)
            }
        }
        FlavorKind::Srcu | FlavorKind::SrcuBusted => {
            let srcu = SrcuStruct::new(domain_config(config, "torture-srcu"));
            inject_faults(config, |policy, faults| srcu.inject_faults(policy, faults));
            if config.flavor == FlavorKind::Srcu {
                Flavor::Srcu(srcu)
            } else {
                // The readers' domain: nothing is ever retired on it or waits for it.
                let readers = SrcuStruct::new(DomainConfig::new().name("torture-srcu-readers"));
                Flavor::SrcuBusted { readers, writers: srcu }
            }
        }
        FlavorKind::SrcuPlain => {
            let srcu = SrcuStruct::new(domain_config(config, "torture-srcu-plain"));
            inject_faults(config, |policy, faults| srcu.inject_faults(policy, faults));
            Flavor::SrcuPlain(srcu)
        }
        FlavorKind::Qsbr | FlavorKind::QsbrBusted => {
            let qsbr = QsbrDomain::new(domain_config(config, "torture-qsbr"));
            inject_faults(config, |policy, faults| qsbr.inject_faults(policy, faults));
            if config.flavor == FlavorKind::Qsbr {
                Flavor::Qsbr(qsbr)
            } else {
                // The readers' domain: nothing is ever retired on it or waits for it.
                let readers = QsbrDomain::new(DomainConfig::new().name("torture-qsbr-readers"));
                Flavor::QsbrBusted { readers, writers: qsbr }
            }
        }
    }
}

fn sample(shared: &Shared, start: Instant) -> Sample {
    let c = &shared.counters;
    let (domain_queued, domain_invoked, pending_bytes, fallbacks) =
        match (shared.flavor.stats(), shared.flavor.alloc_stats()) {
            (Some(s), Some(a)) => {
                let fallbacks = a.fallbacks.iter().map(|(_, _, n)| n).sum();
                (s.callbacks_queued, s.callbacks_invoked, s.pending_bytes, fallbacks)
            }
            _ => (0, 0, 0, 0),
        };
    Sample {
        elapsed: start.elapsed().as_secs_f64(),
        gps: shared.flavor.gp_completed(),
        reads: Counters::get(&c.reads),
        updates: Counters::get(&c.updates),
        domain_queued,
        domain_invoked,
        fallbacks,
        pending_bytes,
        errors: Counters::get(&c.errors),
        ages: c.age_histogram(),
    }
}

/// Runs a torture test as configured, calling `on_line` with each live report line.
pub fn run(config: Config, on_line: &mut dyn FnMut(&str)) -> Summary {
    assert!(!config.tokens.is_empty(), "rcutorture: give at least one token kind");
    assert!(
        config.flavor.is_sleepable() || !config.tokens.contains(&TokenKind::Section),
        "rcutorture: the section token belongs to the sleepable flavors (srcu, srcu-plain, \
         srcu-busted)"
    );
    let flavor = make_flavor(&config);
    // Enough elements for the pipeline of retired elements plus callback chains in flight.
    let arena = Arena::new(8 * PIPE_LEN as usize + 64);
    let initial = arena.alloc().expect("a fresh arena has free elements");
    let frees = Frees::new(&config);
    let shared = Arc::new(Shared {
        frees,
        config,
        flavor,
        arena,
        published: writer::published(initial),
        counters: Counters::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let tests = shared.config.tests;

    let mut threads = Vec::new();
    let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        threads
            .push(std::thread::Builder::new().name(name).spawn(f).expect("spawn torture thread"));
    };
    if shared.flavor.is_sleepable() {
        // The readers hand owned guards to each other: one thread scopes them. The rest of
        // the run starts once they are all reading (a second spawn away, they would start
        // after the writer on a loaded machine, and a short run could end before they do).
        let (s, st) = (shared.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        spawn("torture-readers".into(), Box::new(move || srcu_readers::run(&s, &st, ready_tx)));
        for _ in 0..shared.config.readers {
            if ready_rx.recv().is_err() {
                break; // a reader failed to start: the join reports it
            }
        }
    } else if shared.flavor.is_qsbr() {
        // As for the sleepable flavors, the rest of the run starts once every reader is
        // online (`qsbr-busted` must have them hold the first elements retired).
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for id in 0..shared.config.readers as u64 {
            let (s, st, ready) = (shared.clone(), stop.clone(), ready_tx.clone());
            spawn(
                format!("torture-reader-{id}"),
                Box::new(move || qsbr_readers::run(id, &s, &st, ready)),
            );
        }
        drop(ready_tx);
        for _ in 0..shared.config.readers {
            if ready_rx.recv().is_err() {
                break; // a reader failed to start: the join reports it
            }
        }
    } else {
        for id in 0..shared.config.readers as u64 {
            let (s, st) = (shared.clone(), stop.clone());
            spawn(
                format!("torture-reader-{id}"),
                Box::new(move || {
                    readers::run(id, &s.config, &s.flavor, &s.arena, &s.published, &s.counters, &st)
                }),
            );
        }
    }
    let start = Instant::now();
    {
        let (s, st) = (shared.clone(), stop.clone());
        spawn("torture-writer".into(), Box::new(move || writer::run(&s, &st)));
    }
    if tests.callbacks {
        for id in 0..shared.config.updaters as u64 {
            let (s, st) = (shared.clone(), stop.clone());
            spawn(format!("torture-updater-{id}"), Box::new(move || side::updater(id, &s, &st)));
        }
    }
    if tests.barrier {
        let (s, st) = (shared.clone(), stop.clone());
        spawn("torture-barrier".into(), Box::new(move || side::barrier_rounds(&s, &st)));
    }
    if tests.forward_progress {
        let (s, st) = (shared.clone(), stop.clone());
        spawn("torture-flood".into(), Box::new(move || side::forward_progress(&s, &st)));
    }
    if tests.stall {
        let s = shared.clone();
        spawn("torture-stall".into(), Box::new(move || side::stall(&s)));
    }
    if tests.map && shared.config.flavor != FlavorKind::Busted {
        let (s, st) = (shared.clone(), stop.clone());
        spawn("torture-map".into(), Box::new(move || map::run(&s, &st)));
    }

    let duration = shared.config.duration;
    let every = shared.config.report_every;
    let mut prev = sample(&shared, start);
    while start.elapsed() < duration {
        let step = if every.is_zero() { duration } else { every };
        std::thread::sleep(step.min(duration.saturating_sub(start.elapsed())));
        if !every.is_zero() {
            let now = sample(&shared, start);
            on_line(&now.line(&prev));
            prev = now;
        }
    }
    // Relaxed: a stop flag; the joins below order everything after it.
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if t.join().is_err() {
            shared.counters.fail("a torture thread panicked");
        }
    }
    finish(&shared, start)
}

/// After the threads: wait for all queued work, check the books, summarise.
fn finish(shared: &Arc<Shared>, start: Instant) -> Summary {
    let ctx = Sleepable::enter();
    let c = &shared.counters;
    for &target in shared.frees.targets() {
        side::barrier(shared, target, &ctx);
    }
    // Callback chains requeue themselves: each barrier moves them one grace period on.
    for _ in 0..4 * PIPE_LEN {
        if Counters::get(&c.chains) == 0 {
            break;
        }
        shared.flavor.barrier(&ctx);
    }
    if Counters::get(&c.chains) != 0 {
        c.fail_check(
            Check::Callbacks,
            format!("{} callback chains never finished", Counters::get(&c.chains)),
        );
    }
    let (queued, done) = (Counters::get(&c.cb_queued), Counters::get(&c.cb_done));
    if queued != done {
        c.fail_check(
            Check::Callbacks,
            format!("{queued} counted callbacks queued but {done} ran after rcu_barrier"),
        );
    }
    if let Some(stats) = shared.flavor.stats() {
        let pending = stats.callbacks_pending;
        if shared.flavor.is_private() && pending != 0 {
            c.fail_check(
                Check::Callbacks,
                format!("{pending} deferred items still pending after rcu_barrier"),
            );
        }
    }
    // The final barriers promise what the rounds' do; with the barrier test off, the
    // callbacks check (everything queued ran by the end) holds them to it.
    let qsbr = shared.flavor.qsbr_membarriers().map(|membarriers| QsbrFigures {
        quiescent_states: Counters::get(&c.quiescent_states),
        offline_periods: Counters::get(&c.offline_periods),
        membarriers,
    });
    if let Some(q) = qsbr.filter(|q| q.membarriers != 0) {
        c.fail_check(
            Check::Membarrier,
            format!(
                "the QSBR domain's grace periods issued {} membarrier(s): they must pair with \
                 readers by fences alone",
                q.membarriers
            ),
        );
    }
    let frees_check = if shared.config.tests.barrier { Check::Barrier } else { Check::Callbacks };
    shared.frees.judge_final(&shared.flavor, c, frees_check);
    shared.frees.judge_anomalies(c, Check::Callbacks);
    shared.frees.release();
    let last = sample(shared, start);
    Summary {
        flavor: shared.flavor.name(),
        seconds: last.elapsed,
        cb_queued: queued,
        cb_done: done,
        barriers: Counters::get(&c.barriers),
        handovers: Counters::get(&c.handovers),
        deferred_frees: shared.frees.report(&shared.flavor),
        stalls: Counters::get(&c.stalls),
        frees: shared.arena.frees(),
        messages: c.messages(),
        tests: shared.config.tests,
        check_errors: c.check_errors(),
        forced_fallbacks: shared.config.fault_rate > 0.0 || shared.config.small_blocks,
        qsbr,
        last,
    }
}
