#!/usr/bin/env bash
# The compile_fail doctests are the executable spec of token misuse. On a stable compiler
# rustdoc does not check their error codes (E0277, E0502, ...), so a doctest could "fail to
# compile" for the wrong reason and still pass. With RUSTC_BOOTSTRAP=1 it does check them.
set -euo pipefail
cd "$(dirname "$0")/.."
# Built apart from the normal build, in a directory inside the target directory in use.
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/bootstrap" \
  cargo test --workspace --doc
echo "compile-fail-codes: every compile_fail doctest failed with its stated error code"
