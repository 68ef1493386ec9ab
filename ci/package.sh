#!/usr/bin/env bash
# crates.io readiness of the four library crates (rcu-sys is a dependency of rcu-alloc and
# rcu-core, so it is published too): each one packages, its package holds what its build
# and docs need (the docs it includes, licences, README, CHANGELOG), and the packaged
# sources compile against each other: cargo verifies the set together, resolving the
# workspace siblings from the packages it has just made, not from crates.io.
#
# Offline first: everything comes from the registry cache the build filled. Only if that
# cache lacks something does it retry online (a fresh machine).
#
# MSRV: `rust-version` is declared in the workspace Cargo.toml but only rustc 1.95 can be
# had here, so it is not verified on that compiler; clippy's `incompatible_msrv` lint (run by
# the clippy stage) rejects std APIs newer than it. Language features are not checked.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(rcu-ctx rcu-sys rcu-alloc rcu-core)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done

# Uncommitted changes are allowed so that the script also runs in a work tree.
dirty=(--allow-dirty)

# The verification must compile the sources just packaged. cargo unpacks them into
# $CARGO_HOME/registry/src/<hash of this checkout's tmp-registry>/ but keeps a copy already
# unpacked there, and it treats a compiled registry crate of the same version as fresh: a run
# from the same checkout path after a sibling's API changed compiled (or reused) that
# sibling's stale sources ("could not find `owed` in `rcu_ctx`"). So: remove the unpacked
# copies of our own crates (only those of local registries: crates.io's live under
# index.crates.io-*), and verify in a target directory of its own, emptied first.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
if [ -d "$cargo_home/registry/src" ]; then
  for c in "${crates[@]}"; do
    find "$cargo_home/registry/src" -mindepth 2 -maxdepth 2 -type d -name "$c-[0-9]*" \
      -not -path '*/index.crates.io-*' -exec rm -rf {} +
  done
fi
export CARGO_TARGET_DIR="$PWD/target/package-verify"
rm -rf "$CARGO_TARGET_DIR"

for c in "${crates[@]}"; do
  list=$(cargo package --offline "${dirty[@]}" --list -p "$c" 2>/dev/null ||
         cargo package "${dirty[@]}" --list -p "$c")
  for need in Cargo.toml src/lib.rs README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE; do
    grep -qx "$need" <<<"$list" || { echo "package.sh: $c's package lacks $need" >&2; exit 1; }
  done
  echo "package.sh: $c: $(wc -l <<<"$list") files"
done
# The docs the crates include with include_str! (rustdoc builds them on docs.rs).
cargo package --offline "${dirty[@]}" --list -p rcu-ctx | grep -qx docs/contexts.md
for doc in guide.md migration.md which-token.md; do
  cargo package --offline "${dirty[@]}" --list -p rcu-core | grep -qx "docs/$doc"
done

if ! cargo package --offline "${dirty[@]}" "${args[@]}"; then
  echo "package.sh: offline packaging failed; retrying with the registry reachable" >&2
  cargo package "${dirty[@]}" "${args[@]}"
fi
echo "package.sh: rcu-ctx, rcu-sys, rcu-alloc and rcu-core package and build from their packages"
echo "package.sh: MSRV $(grep -m1 '^rust-version' Cargo.toml | cut -d'"' -f2) declared, not verified (only rustc $(rustc --version | cut -d' ' -f2) here)"
