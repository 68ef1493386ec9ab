#!/usr/bin/env bash
# valgrind memcheck over a short torture run: invalid reads/writes and definite leaks.
# Under valgrind membarrier is unavailable, so this also exercises the fence fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release -p rcu-tests --bin rcutorture
valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --fair-sched=yes \
  target/release/rcutorture --duration 5s --readers 2 --updaters 1 --flood 1s

# The hostile programs (leaked and forgotten guards, thread-local destructors, dropped
# domains, blocking stall handlers): no invalid read or write. Leak checking is off here:
# these programs leak on purpose (a leaked root's guard must stay valid for ever).
hostile_tests=(--test thread_exit --test leaked_global_guard --test no_hang)
mapfile -t bins < <(cargo test -p rcu-tests "${hostile_tests[@]}" --no-run 2>&1 \
    | grep -oE 'target/debug/deps/[a-z_]+-[0-9a-f]+')
[ "${#bins[@]}" -eq 3 ] || { echo "valgrind: expected 3 test binaries, found: ${bins[*]}"; exit 1; }
for bin in "${bins[@]}"; do
  valgrind -q --error-exitcode=1 --leak-check=no --fair-sched=yes "$bin" --test-threads 2
done
echo "valgrind: clean"
