#!/usr/bin/env bash
# valgrind memcheck over a short torture run: invalid reads/writes and definite leaks.
# membarrier works under this valgrind (3.19: rcutorture's header says "read side: compiler
# barrier"); the fence fallback is ci/portable.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }

# The executables of target kind $1 ("bin", "test") that `cargo ${@:2}` built, from its JSON
# messages (warnings still go to stderr): their paths depend on CARGO_TARGET_DIR, so they
# are never assumed.
executables() {
  local kind=$1
  shift
  cargo "$@" --message-format=json-render-diagnostics | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and sys.argv[1] in m["target"]["kind"]:
        print(m["executable"])' "$kind"
}

torture=$(executables bin build --release -p rcu-tests --bin rcutorture)
[ -n "$torture" ] || { echo "valgrind: cargo built no rcutorture"; exit 1; }
valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --fair-sched=yes \
  "$torture" --duration 5s --readers 2 --updaters 1 --flood 1s

# The hostile programs (leaked and forgotten guards, thread-local destructors, dropped
# domains, blocking stall handlers): no invalid read or write. Leak checking is off here:
# these programs leak on purpose (a leaked root's guard must stay valid for ever).
hostile_tests=(--test thread_exit --test leaked_global_guard --test no_hang)
mapfile -t bins < <(executables test test -p rcu-tests "${hostile_tests[@]}" --no-run)
[ "${#bins[@]}" -eq 3 ] || { echo "valgrind: expected 3 test binaries, found: ${bins[*]}"; exit 1; }
for bin in "${bins[@]}"; do
  valgrind -q --error-exitcode=1 --leak-check=no --fair-sched=yes "$bin" --test-threads 2
done
echo "valgrind: clean"
