#!/usr/bin/env bash
# Counters that safe code drives never overflow (tests/tests/counters.rs, issue 22): each test
# forgets its way to a counter's limit (2^32 - 1 scopes for rcu-ctx's read, atomic and
# no-reclaim depths and its root count; 65535 sections for a reader word of rcu-core) and
# checks the refusal (or the saturation) and the checks that read the counter afterwards.
#
# Optimized build: the 2^32 loops take seconds here and minutes unoptimized, so
# `cargo test --workspace` (debug) ignores them and this stage runs them. Release is also the
# build the defect showed in: with debug assertions the old unchecked `+ 1` trapped already.
# Each test runs alone and is timed; COUNTERS_BUDGET_S (default 60) fails a test that takes
# longer, so a loop the optimizer stops folding is noticed rather than slowing CI silently.
set -euo pipefail
cd "$(dirname "$0")/.."

budget="${COUNTERS_BUDGET_S:-60}"
run() { cargo test --release -q -p rcu-tests --test counters "$@"; }

run --no-run
tests=$(run -- --list 2>/dev/null | sed -n 's/: test$//p')
[ -n "$tests" ] || { echo "counters: no tests found"; exit 1; }

status=0
total_start=$(date +%s.%N)
for t in $tests; do
    start=$(date +%s.%N)
    if out=$(run -- --exact "$t" --include-ignored 2>&1); then
        result=ok
    else
        result=FAILED
        status=1
        echo "$out" | tail -n 40
    fi
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if awk -v e="$elapsed" -v b="$budget" 'BEGIN { exit !(e > b) }'; then
        result="$result, over the ${budget}s budget"
        status=1
    fi
    echo "counters: $t: $result (${elapsed}s)"
done
total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ "$status" -eq 0 ]; then
    echo "counters: PASS (${total}s; load average $(cut -d' ' -f1-3 /proc/loadavg))"
else
    echo "counters: FAIL (${total}s; load average $(cut -d' ' -f1-3 /proc/loadavg))"
fi
exit "$status"
