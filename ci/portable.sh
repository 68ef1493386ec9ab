#!/usr/bin/env bash
# The read side without membarrier: the fence mode that readers switch to, once at
# start-up, where the kernel or a sandbox lacks MEMBARRIER_CMD_PRIVATE_EXPEDITED (old
# kernels, gVisor, strict seccomp profiles). `--cfg rcu_force_fence` forces that mode here,
# so the integration tests and a torture run exercise it on every CI run, not only under
# ThreadSanitizer and valgrind (which also use it).
#
# Its own target directory inside the one in use: the flag rebuilds everything.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg rcu_force_fence${RUSTFLAGS:+ $RUSTFLAGS}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FENCE:-${CARGO_TARGET_DIR:-$PWD/target}/fence}"

cargo test -p rcu-tests --tests
cargo test -p rcu-collections --tests
cargo run --release -p rcu-tests --bin rcutorture -- --duration 20s
echo "fence: the integration tests and a torture run passed with readers in fence mode"
