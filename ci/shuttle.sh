#!/usr/bin/env bash
# shuttle models of the whole staging / give-back / collection / rcu_barrier / thread-exit
# protocol (tests/tests/shuttle.rs): randomized (random and PCT) schedules, thousands each,
# over the real `Staging` on shuttle's atomics, and the broken variants each must catch.
#
# Builds with `--cfg shuttle` in its own target directory (`shuttle/` inside the one in use),
# so neither the normal build nor ci/loom.sh's is invalidated (CARGO_TARGET_DIR_SHUTTLE
# overrides it). Installs nothing but
# crates (shuttle, a dev-dependency of the tests package under cfg(shuttle)). Failing
# schedules are printed; replay one with `shuttle::replay`. SHUTTLE_RANDOM_SEED fixes the
# seed of every scheduler (shuttle reads it).
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg shuttle${RUSTFLAGS:+ $RUSTFLAGS}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_SHUTTLE:-${CARGO_TARGET_DIR:-$PWD/target}/shuttle}"
# shuttle warns once that it runs every atomic sequentially consistent; the models' docs say
# so (orderings are loom's part).
export SHUTTLE_SILENCE_WARNINGS=1
# The broken variants fail on purpose; their backtraces are noise.
export RUST_BACKTRACE=0

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -p rcu-tests --test shuttle --release "$@" -- --nocapture 2>&1 | tee "$log" || status=$?
elapsed=$(( $(date +%s) - start ))

result=$(grep -E '^test result:' "$log" | tail -n 1 || true)
if [ "$status" -eq 0 ]; then
    echo "shuttle: PASS (${elapsed}s): ${result:-no result line}"
else
    echo "shuttle: FAIL (${elapsed}s): ${result:-build failed}"
fi
exit "$status"
