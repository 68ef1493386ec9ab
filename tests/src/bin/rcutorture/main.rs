//! rcutorture: stress the RCU runtime and verify it. Prints a live line per second, then a
//! summary ending in SUCCESS or FAILURE (exit code 1 on failure).
//!
//! `cargo run --release -p rcu-tests --bin rcutorture -- --duration 30s`

#[cfg(not(loom))]
mod cli;

/// Serves and counts the torture's tracked frees, so the barrier check sees deallocations.
#[cfg(not(loom))]
#[global_allocator]
static ALLOC: rcu_tests::torture::alloc::CountingAlloc = rcu_tests::torture::alloc::CountingAlloc;

#[cfg(not(loom))]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(loom)]
fn main() {}
