#!/usr/bin/env bash
# The integration tests, several runs in a row (default 5) with a CPU hog on every core
# beside them: a test that depends on the scheduler being kind (a timing, an overlap that
# "usually" happens) fails here sooner or later. Any failure fails the stage.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${REPEAT_RUNS:-5}"
cargo test -p rcu-tests --tests --no-run
hogs=()
for _ in $(seq "$(nproc)"); do
  ( while :; do :; done ) &
  hogs+=("$!")
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
log=$(mktemp)
for i in $(seq "$runs"); do
  start=$(date +%s)
  if ! cargo test -p rcu-tests --tests >"$log" 2>&1; then
    grep -E '^test .* FAILED|panicked at|^failures:' "$log" || true
    tail -n 60 "$log"
    echo "repeat: run $i of $runs FAILED under load"
    exit 1
  fi
  passed=$(grep -E '^test result: ok' "$log" | awk '{s += $4} END {print s}')
  echo "repeat: run $i of $runs: $passed passed under load ($(( $(date +%s) - start ))s)"
done
rm -f "$log"
echo "repeat: $runs runs passed with $(nproc) CPU hogs beside them"
