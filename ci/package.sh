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
