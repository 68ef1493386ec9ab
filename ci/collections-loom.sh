#!/usr/bin/env bash
# loom models of rcu-collections' resize protocol (rcu-collections/tests/loom.rs): publish,
# migrate, unpublish, and the broken variants each model must catch.
#
# Builds the crate's raw layer on loom's atomics (`--cfg loom`) in its own target directory
# (`loom-collections/` inside the one in use), so neither the normal build nor ci/loom.sh's
# is invalidated (CARGO_TARGET_DIR_COLLECTIONS_LOOM overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="--cfg loom${RUSTFLAGS:+ $RUSTFLAGS}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_COLLECTIONS_LOOM:-${CARGO_TARGET_DIR:-$PWD/target}/loom-collections}"

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -p rcu-collections --test loom --release "$@" 2>&1 | tee "$log" || status=$?
elapsed=$(( $(date +%s) - start ))

result=$(grep -E '^test result:' "$log" | tail -n 1 || true)
if [ "$status" -eq 0 ]; then
    echo "collections loom: PASS (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${elapsed}s): ${result:-no result line}"
else
    echo "collections loom: FAIL (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${elapsed}s): ${result:-build failed}"
fi
exit "$status"
