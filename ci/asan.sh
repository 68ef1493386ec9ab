#!/usr/bin/env bash
# AddressSanitizer over the integration tests and a short torture run: use-after-free,
# double free and buffer overflows in the runtime's unsafe code (blocks, intrusive lists,
# type-erased entries). Stable compiler with RUSTC_BOOTSTRAP=1; std itself is not
# instrumented (rust-src cannot be fetched here), which costs coverage, not correctness.
# ASan's allocator is not fork-safe against a thread exiting at the fork (its fallback mutex
# is not held across fork()), so the fork storm keeps its domains here (tests/tests/fork_storm.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer --cfg rcu_sanitizer=\"address\""
export RUSTDOCFLAGS="$RUSTFLAGS"
# Its own directory inside the target directory in use: the flags rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/asan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
target=x86_64-unknown-linux-gnu
cargo test --target "$target" -p rcu-tests --tests -- --test-threads 2
cargo run --target "$target" --release -p rcu-tests --bin rcutorture -- --duration 10s --small-blocks --fault-rate 0.05
echo "asan: clean"
