#!/usr/bin/env bash
# ThreadSanitizer over the integration tests and a short torture run. TSan cannot see the
# ordering membarrier provides, so `--cfg rcu_force_fence` makes readers use the fence
# pairing instead (see docs/design.md). std is not instrumented (no rust-src here), so
# synchronization inside std's own locks is invisible to TSan: the suppressions file lists
# what that produces, by std symbol only, never the runtime's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer --cfg rcu_sanitizer=\"thread\" --cfg rcu_force_fence"
export RUSTDOCFLAGS="$RUSTFLAGS"
# Its own directory inside the target directory in use: the flags rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/tsan"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/ci/tsan.supp"
target=x86_64-unknown-linux-gnu
cargo test --target "$target" -p rcu-tests --tests -- --test-threads 2
cargo run --target "$target" --release -p rcu-tests --bin rcutorture -- --duration 10s
echo "tsan: clean"
