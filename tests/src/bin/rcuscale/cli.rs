//! Command line, run order and output files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::child;
use crate::report::{self, json_str, Row};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Workload {
    W1,
    W3,
    W4,
    W5,
    W6,
    W7,
}

/// Benchmarks rcu-ctx against crossbeam-epoch and seize: same workloads, repetitions
/// interleaved (W3 and W5: one process per run); reports medians and ratios ours/peer
/// against the targets.
#[derive(Debug, Parser)]
#[command(name = "rcuscale", version)]
struct Args {
    /// A smoke run (well under 30 s): small sizes, short durations, 3 repetitions.
    #[arg(long)]
    quick: bool,
    /// Repetitions per system (default 5; 3 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Run only these workloads, comma-separated (W1,W3,W4,W5,W6,W7).
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
    only: Vec<Workload>,
    /// Directory for table.md, results.csv, results.json and ratios.svg.
    #[arg(long, default_value = "rcuscale-out")]
    out: PathBuf,
    /// W1: read sections per run (default 100 M; 2 M with --quick).
    #[arg(long)]
    w1_n: Option<u64>,
    /// W3: seconds per run (default 2; 0.3 with --quick).
    #[arg(long)]
    w3_secs: Option<f64>,
    /// W4: synchronize calls per thread in the sharing test (default 2000; 200 with --quick).
    #[arg(long)]
    w4_k: Option<usize>,
    /// W5: deferred frees per run (default 5 M; 200 k with --quick).
    #[arg(long)]
    w5_n: Option<u64>,
    /// W6: seconds the reader stalls (default 3; 0.5 with --quick).
    #[arg(long)]
    w6_stall_secs: Option<f64>,
    /// W6: budget of the domain, MiB.
    #[arg(long, default_value_t = 4)]
    w6_budget_mib: usize,
    /// W7a: read sections per run (default 50 M; 2 M with --quick).
    #[arg(long)]
    w7_n: Option<u64>,
    /// W7d: tasks per run, each holding an owned guard across awaits (default 10000).
    #[arg(long)]
    w7_tasks: Option<usize>,
    /// W7e: owned-guard reads per thread per run (default 10 M; 500 k with --quick).
    #[arg(long)]
    w7_reads: Option<u64>,
    /// Internal: run one W3/W5 job in this process and print its result line (child.rs).
    #[arg(long, hide = true, value_name = "JOB")]
    child: Option<String>,
}

/// Sizes and durations of one run.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) reps: usize,
    pub(crate) w1_n: u64,
    pub(crate) w3_duration: Duration,
    /// Time budget for the latency samples of one system in one repetition.
    pub(crate) w4_budget: Duration,
    pub(crate) w4_max_samples: usize,
    pub(crate) w4_k: usize,
    pub(crate) w5_n: u64,
    pub(crate) w6_stall: Duration,
    pub(crate) w6_budget: usize,
    pub(crate) w6_atomic_n: u64,
    pub(crate) w7_n: u64,
    /// W7b and W7c: time budget for the latency samples of one phase in one repetition.
    pub(crate) w7_budget: Duration,
    pub(crate) w7_max_samples: usize,
    pub(crate) w7_tasks: usize,
    pub(crate) w7_reads: u64,
}

impl Config {
    fn from(args: &Args) -> Self {
        let q = args.quick;
        Config {
            reps: args.reps.unwrap_or(if q { 3 } else { 5 }).max(1),
            w1_n: args.w1_n.unwrap_or(if q { 2_000_000 } else { 100_000_000 }),
            w3_duration: Duration::from_secs_f64(args.w3_secs.unwrap_or(if q { 0.3 } else { 2.0 })),
            w4_budget: Duration::from_millis(if q { 150 } else { 1000 }),
            w4_max_samples: if q { 200 } else { 2000 },
            w4_k: args.w4_k.unwrap_or(if q { 200 } else { 2000 }),
            w5_n: args.w5_n.unwrap_or(if q { 200_000 } else { 5_000_000 }),
            w6_stall: Duration::from_secs_f64(args.w6_stall_secs.unwrap_or(if q {
                0.5
            } else {
                3.0
            })),
            w6_budget: args.w6_budget_mib << 20,
            w6_atomic_n: if q { 100_000 } else { 1_000_000 },
            w7_n: args.w7_n.unwrap_or(if q { 2_000_000 } else { 50_000_000 }),
            w7_budget: Duration::from_millis(if q { 150 } else { 1000 }),
            w7_max_samples: if q { 1000 } else { 20_000 },
            w7_tasks: args.w7_tasks.unwrap_or(10_000).max(1),
            w7_reads: args.w7_reads.unwrap_or(if q { 500_000 } else { 10_000_000 }),
        }
    }
}

fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// /proc/loadavg's 1-, 5- and 15-minute figures: this machine is shared, and a table read
/// without the load it was measured under misleads.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (cpus, kernel)
}

pub(crate) fn main() -> i32 {
    let args = Args::parse();
    if let Some(spec) = &args.child {
        return child_main(spec);
    }
    let cfg = Config::from(&args);
    let command = command_line();
    let (cpus, kernel) = machine();
    let membarrier = rcu_core::raw::barrier::membarrier_once();
    let load_start = loadavg();
    println!("$ {command}");
    println!(
        "rcuscale: {} repetitions interleaved per workload, {cpus} CPUs, kernel {kernel}, \
         load average {load_start}, membarrier {}; {} mode",
        cfg.reps,
        if membarrier { "in use" } else { "NOT in use (readers fence)" },
        if args.quick { "quick" } else { "full" }
    );
    let all = args.only.is_empty();
    let want = |w: Workload| all || args.only.contains(&w);
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut timings: Vec<(String, f64)> = Vec::new();
    let started = Instant::now();
    let mut stage = |name: &str, f: &mut dyn FnMut(&mut Vec<Row>, &mut Vec<String>)| {
        eprintln!("{name} ...");
        let t = Instant::now();
        f(&mut rows, &mut notes);
        let secs = t.elapsed().as_secs_f64();
        eprintln!("{name} done in {secs:.1} s");
        timings.push((name.to_string(), secs));
    };
    if want(Workload::W1) {
        stage("W1 read section", &mut |r, n| crate::w1::run(&cfg, r, n));
    }
    if want(Workload::W3) {
        stage("W3 reader + updater", &mut |r, n| crate::w3::run(&cfg, r, n));
    }
    if want(Workload::W4) {
        stage("W4 grace-period latency", &mut |r, n| crate::w4::run(&cfg, r, n));
    }
    if want(Workload::W5) {
        stage("W5 deferred-free flood", &mut |r, n| crate::w5::run(&cfg, r, n));
    }
    if want(Workload::W6) {
        stage("W6 budget under a stalled reader", &mut |r, n| crate::w6::run(&cfg, r, n));
    }
    if want(Workload::W7) {
        stage("W7 sleepable RCU (SRCU)", &mut |r, n| crate::w7::run(&cfg, r, n));
    }
    let total = started.elapsed().as_secs_f64();
    let load_end = loadavg();

    let table = report::table(&rows);
    let meta = vec![
        ("command".to_string(), json_str(&command)),
        ("quick".to_string(), args.quick.to_string()),
        ("reps".to_string(), cfg.reps.to_string()),
        ("cpus".to_string(), cpus.to_string()),
        ("kernel".to_string(), json_str(&kernel)),
        ("membarrier".to_string(), membarrier.to_string()),
        ("loadavg_start".to_string(), json_str(&load_start)),
        ("loadavg_end".to_string(), json_str(&load_end)),
        ("config".to_string(), json_str(&format!("{cfg:?}"))),
        ("total_seconds".to_string(), format!("{total:.3}")),
        (
            "stage_seconds".to_string(),
            format!(
                "{{{}}}",
                timings
                    .iter()
                    .map(|(k, v)| format!("{}: {v:.3}", json_str(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    let header = format!(
        "$ {command}\n\n{cpus} CPUs, kernel {kernel}, load average {load_start} at the start and \
         {load_end} at the end, {} repetitions, {total:.1} s\n",
        cfg.reps
    );
    // Files first: a closed stdout (e.g. `| head`) must not lose the results.
    let written = write_outputs(&args.out, &header, &table, &rows, &meta, &notes);
    println!();
    println!("{table}");
    for n in &notes {
        println!("note: {n}");
    }
    // Per target: a row may have several.
    let verdicts = |want: bool| {
        rows.iter().flat_map(move |r| {
            r.verdicts().into_iter().filter(move |&m| m == Some(want)).map(move |_| r)
        })
    };
    let met = verdicts(true).count();
    let missed: Vec<String> =
        verdicts(false).map(|r| format!("{} {}", r.workload, r.metric)).collect();
    println!(
        "targets: {met} met, {} not met{}",
        missed.len(),
        if missed.is_empty() { String::new() } else { format!(": {}", missed.join("; ")) }
    );
    println!("total {total:.1} s; load average at the end {load_end}");

    match written {
        Ok(()) => {
            println!(
                "wrote {}/{{table.md,results.csv,results.json,ratios.svg}}",
                args.out.display()
            );
            0
        }
        Err(e) => {
            eprintln!("rcuscale: cannot write to {}: {e}", args.out.display());
            1
        }
    }
}

/// This process is a child (child.rs): runs the one W3 or W5 job `spec` names.
fn child_main(spec: &str) -> i32 {
    let result = child::Job::parse(spec).and_then(|job| match job.workload {
        "w3" => crate::w3::child(job.variant, Duration::from_secs_f64(job.size()?)),
        "w5" => crate::w5::child(job.variant, job.size()?),
        other => Err(format!("no child workload {other:?}")),
    });
    child::respond(spec, result)
}

fn write_outputs(
    dir: &std::path::Path,
    header: &str,
    table: &str,
    rows: &[Row],
    meta: &[(String, String)],
    notes: &[String],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = format!("{header}\n{table}");
    for n in notes {
        md.push_str(&format!("\nnote: {n}\n"));
    }
    std::fs::write(dir.join("table.md"), md)?;
    std::fs::write(dir.join("results.csv"), report::csv(rows))?;
    std::fs::write(dir.join("results.json"), report::json(meta, rows, notes))?;
    std::fs::write(
        dir.join("ratios.svg"),
        report::svg(rows, "rcuscale: rcu-ctx vs crossbeam-epoch and seize (medians, one run)"),
    )?;
    Ok(())
}
