#!/usr/bin/env bash
# loom models of the reader/grace-period protocol and of the staging protocol
# (tests/tests/loom.rs), and of the sleepable (SRCU) counting protocol (tests/tests/loom_srcu.rs).
#
# Builds rcu-core's raw layer on loom's atomics (`--cfg loom`) in its own target directory
# (`loom/` inside the one in use; CARGO_TARGET_DIR_LOOM overrides it), so the normal build
# is not invalidated, and explores every interleaving up to
# LOOM_MAX_PREEMPTIONS preemptions (default 2; loom reads the variable itself).
set -euo pipefail
cd "$(dirname "$0")/.."

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="--cfg loom${RUSTFLAGS:+ $RUSTFLAGS}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_LOOM:-${CARGO_TARGET_DIR:-$PWD/target}/loom}"

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -p rcu-tests --test loom --test loom_srcu --release "$@" 2>&1 | tee "$log" || status=$?
elapsed=$(( $(date +%s) - start ))

result=$(grep -E '^test result:' "$log" | tr '\n' ' ' || true)
if [ "$status" -eq 0 ]; then
    echo "loom: PASS (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${elapsed}s): ${result:-no result line}"
else
    echo "loom: FAIL (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${elapsed}s): ${result:-build failed}"
fi
exit "$status"
