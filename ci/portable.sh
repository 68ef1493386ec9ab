#!/usr/bin/env bash
# The code paths a platform without Linux's futex and membarrier takes, run on Linux:
# - `--cfg rcu_force_fence`: readers use the fence mode that they switch to, once at start-up,
#   where the kernel or a sandbox lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED (old kernels, gVisor,
#   strict seccomp profiles) and on every other OS;
# - `--cfg rcu_force_park`: sleeps and wakes use the park backend of `rcu_sys::futex` (a
#   table of parked threads) that every Unix but Linux and Android uses.
# The whole test suite (doctests included) and a torture run, so both are exercised on
# every CI run, not only where they are the default.
#
# Its own target directory inside the one in use: the flags rebuild everything.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg rcu_force_fence --cfg rcu_force_park${RUSTFLAGS:+ $RUSTFLAGS}"
# Doctests are built by rustdoc, which reads RUSTDOCFLAGS, not RUSTFLAGS.
export RUSTDOCFLAGS="--cfg rcu_force_fence --cfg rcu_force_park${RUSTDOCFLAGS:+ $RUSTDOCFLAGS}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_PORTABLE:-${CARGO_TARGET_DIR:-$PWD/target}/portable}"

cargo test --workspace
log="$CARGO_TARGET_DIR/rcutorture-portable.log"
mkdir -p "$CARGO_TARGET_DIR"
cargo run --release -p rcu-tests --bin rcutorture -- --duration 20s 2>&1 | tee "$log"
# The header must say the run exercised what this script is for.
grep -q "read side: fence" "$log" || { echo "portable: readers were not in fence mode" >&2; exit 1; }
grep -q "waits: park" "$log" || { echo "portable: waits did not use the park backend" >&2; exit 1; }
echo "portable: the test suite and a torture run passed with readers in fence mode and waits on the park backend"
