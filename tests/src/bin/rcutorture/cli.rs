//! Command-line interface of rcutorture.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use rcu_tests::torture::{self, Config, FlavorKind, Tests, TokenKind};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FlavorArg {
    Global,
    Custom,
    /// A deliberately broken fake RCU: the run must report FAILURE.
    Busted,
    /// A real domain whose rcu_barrier returns before the frees' deallocations: the barrier
    /// check must report FAILURE.
    BustedBarrier,
    /// A sleepable domain (SRCU), fast readers: sections sleep, owned guards move threads.
    Srcu,
    /// A sleepable domain (SRCU), plain readers.
    SrcuPlain,
    /// Readers on one sleepable domain, updates on another: the run must report FAILURE.
    SrcuBusted,
    /// A QSBR domain: readers stay online across batches of reads, announce quiescent
    /// states between them and go offline now and then; grace periods issue no membarrier.
    Qsbr,
    /// Readers online on one QSBR domain, updates on another: the run must report FAILURE.
    QsbrBusted,
}

impl FlavorArg {
    fn kind(self) -> FlavorKind {
        match self {
            FlavorArg::Global => FlavorKind::Global,
            FlavorArg::Custom => FlavorKind::Custom,
            FlavorArg::Busted => FlavorKind::Busted,
            FlavorArg::BustedBarrier => FlavorKind::BustedBarrier,
            FlavorArg::Srcu => FlavorKind::Srcu,
            FlavorArg::SrcuPlain => FlavorKind::SrcuPlain,
            FlavorArg::SrcuBusted => FlavorKind::SrcuBusted,
            FlavorArg::Qsbr => FlavorKind::Qsbr,
            FlavorArg::QsbrBusted => FlavorKind::QsbrBusted,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TokenArg {
    Sleepable,
    Noreclaim,
    Atomic,
    /// The token of a section of the tortured sleepable domain (sleepable flavors only).
    Section,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TestArg {
    Age,
    Polled,
    Callbacks,
    Barrier,
    ForwardProgress,
    Stall,
    Map,
}

/// Stress the RCU runtime and verify it: too-short grace periods, use after free, lost
/// callbacks, barrier (callbacks run, frees dropped and deallocated), forward progress and
/// stall detection.
#[derive(Debug, Parser)]
#[command(name = "rcutorture", version)]
struct Args {
    /// How long to run (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Reader threads.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Updater threads queueing counted callback traffic.
    #[arg(long, default_value_t = 1)]
    updaters: usize,
    /// What to torture.
    #[arg(long, value_enum, default_value = "custom")]
    flavor: FlavorArg,
    /// One read in N holds its section (QSBR: stays online without a quiescent state) for
    /// --long-delay (0: never).
    #[arg(long, default_value_t = 20_000)]
    long_delay_every: u32,
    /// The long reader delay.
    #[arg(long, default_value = "2ms", value_parser = parse_duration)]
    long_delay: Duration,
    /// One read in N spins briefly inside its section (0: never).
    #[arg(long, default_value_t = 50)]
    short_delay_every: u32,
    /// Sleepable flavors: the longest a reader sleeps in a section (half the sections sleep a
    /// random time up to it).
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    srcu_max_sleep: Duration,
    /// Probability that a block request fails by injection (custom, sleepable and QSBR
    /// flavors).
    #[arg(long, default_value_t = 0.01)]
    fault_rate: f64,
    /// Tokens the updaters use, comma-separated (default: sleepable,noreclaim,atomic, and
    /// section under the sleepable flavors).
    #[arg(long, value_enum, value_delimiter = ',')]
    tokens: Vec<TokenArg>,
    /// Run only these tests, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    tests: Vec<TestArg>,
    /// How long the forward-progress flood runs.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    flood: Duration,
    /// Stall timeout of the stall test.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// Pending-memory budget of the run's own domain (custom, sleepable and QSBR flavors),
    /// MiB.
    #[arg(long, default_value_t = 8)]
    budget_mib: usize,
    /// Tiny blocks in the run's own domain, so rare allocation paths run constantly.
    #[arg(long)]
    small_blocks: bool,
    /// Seed of delays and fault injection.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Print the summary as JSON (the live report still goes to stderr).
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("'{s}': expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" | "" => value,
        "m" => value * 60.0,
        "us" => value / 1e6,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use us, ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

pub(crate) fn main() -> i32 {
    let args = Args::parse();
    let tests = if args.tests.is_empty() {
        Tests::ALL
    } else {
        let has = |t| args.tests.contains(&t);
        Tests {
            age: has(TestArg::Age),
            polled: has(TestArg::Polled),
            callbacks: has(TestArg::Callbacks),
            barrier: has(TestArg::Barrier),
            forward_progress: has(TestArg::ForwardProgress),
            stall: has(TestArg::Stall),
            map: has(TestArg::Map),
        }
    };
    let flavor = args.flavor.kind();
    let tokens: Vec<TokenKind> = if args.tokens.is_empty() {
        TokenKind::defaults(flavor)
    } else {
        args.tokens
            .iter()
            .map(|t| match t {
                TokenArg::Sleepable => TokenKind::Sleepable,
                TokenArg::Noreclaim => TokenKind::NoReclaim,
                TokenArg::Atomic => TokenKind::Atomic,
                TokenArg::Section => TokenKind::Section,
            })
            .collect()
    };
    if tokens.contains(&TokenKind::Section) && !flavor.is_sleepable() {
        eprintln!(
            "rcutorture: --tokens section needs a sleepable flavor (srcu, srcu-plain, srcu-busted)"
        );
        return 2;
    }
    let config = Config {
        readers: args.readers,
        updaters: args.updaters,
        duration: args.duration,
        flavor,
        long_delay_every: args.long_delay_every,
        long_delay: args.long_delay,
        short_delay_every: args.short_delay_every,
        fault_rate: args.fault_rate,
        srcu_max_sleep: args.srcu_max_sleep,
        tokens,
        tests,
        flood: args.flood,
        stall_timeout: args.stall_timeout,
        budget: args.budget_mib << 20,
        small_blocks: args.small_blocks,
        report_every: Duration::from_secs(1),
        seed: args.seed,
    };
    rcu_core::raw::barrier::init();
    eprintln!(
        "rcutorture: {} flavor, {} readers, {} updaters, {:?}, tokens {:?}, read side: {}, \
         waits: {}",
        args.flavor.to_possible_value().expect("no variant is skipped").get_name().to_owned(),
        config.readers,
        config.updaters,
        config.duration,
        config.tokens,
        // Which reader protocol this run exercises (membarrier, or the fallback's fence).
        if flavor.is_qsbr() {
            "a load; a store per quiescent state, a fence going online (grace periods fence, \
             no membarrier)"
        } else if rcu_core::raw::barrier::uses_membarrier() {
            "compiler barrier (grace periods use membarrier)"
        } else {
            "fence (no membarrier: the fallback)"
        },
        // Which sleep/wake backend (the futex, or the park table other Unixes use).
        rcu_sys::futex::BACKEND
    );
    let json = args.json;
    let summary = torture::run(config, &mut |line| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    });
    if json {
        println!("{}", summary.json());
    } else {
        println!("{}", summary.text());
    }
    i32::from(!summary.success())
}
