//! rcuscale: the same workloads on this project (rcu-ctx), crossbeam-epoch and seize,
//! repetitions interleaved (A B C A B C ...), medians and ratios ours/peer; writes a table,
//! CSV, JSON and an SVG plot. W1, W4, W6 and W7 run in this process; every W3 and W5 run gets a
//! fresh child process (child.rs), so its peak RSS is its own. See docs/performance.md.
//!
//! `cargo run --release -p rcu-tests --bin rcuscale -- --quick`

#[cfg(not(loom))]
mod child;
#[cfg(not(loom))]
mod cli;
#[cfg(not(loom))]
mod common;
#[cfg(not(loom))]
mod liburcu;
#[cfg(not(loom))]
mod report;
#[cfg(not(loom))]
mod w1;
#[cfg(not(loom))]
mod w3;
#[cfg(not(loom))]
mod w4;
#[cfg(not(loom))]
mod w5;
#[cfg(not(loom))]
mod w6;
#[cfg(not(loom))]
mod w7;

#[cfg(not(loom))]
pub(crate) use cli::Config;

#[cfg(not(loom))]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(loom)]
fn main() {}
