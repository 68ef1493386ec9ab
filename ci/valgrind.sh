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
echo "valgrind: clean"
