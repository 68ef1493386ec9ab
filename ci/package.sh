#!/usr/bin/env bash
# crates.io readiness of every library crate (rcu-sys is a dependency of rcu-alloc and
# rcu-core, so it is published too): each one packages, its package holds what its build
# and docs need (the files it includes with include_str!, licences, README, CHANGELOG), its
# manifest has the metadata crates.io and docs.rs use, and the packaged sources compile
# against each other: cargo verifies the set together, resolving the workspace siblings from
# the packages it has just made, not from crates.io.
#
# The crates checked are the workspace members that can be published (`publish` not false)
# and have a library target, read from `cargo metadata`; `covered` below must name the same
# set, so a crate added to the workspace fails here until someone decides it is covered.
#
# Offline first: everything comes from the registry cache the build filled. Only if that
# cache lacks something does it retry online (a fresh machine).
#
# MSRV: `rust-version` is declared in the workspace Cargo.toml but only rustc 1.95 can be
# had here, so it is not verified on that compiler; clippy's `incompatible_msrv` lint (denied
# in the workspace lints, tests included by clippy.toml, run by the clippy stage) rejects std
# APIs newer than it. Language features newer than it are not checked by anything.
set -euo pipefail
cd "$(dirname "$0")/.."

covered=(rcu-ctx rcu-sys rcu-alloc rcu-core rcu-collections)

# Uncommitted changes are allowed so that the script also runs in a work tree.
dirty=(--allow-dirty)

# One line per publishable library crate: its name, its directory, and the manifest fields
# it lacks (crates.io shows description, licence, repository, readme, keywords and
# categories; docs.rs reads [package.metadata.docs.rs]).
meta=$(cargo metadata --offline --no-deps --format-version 1 2>/dev/null ||
       cargo metadata --no-deps --format-version 1)
mapfile -t found < <(python3 -c '
import json, os, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["id"] not in m["workspace_members"] or p["publish"] == []:
        continue
    if not any("lib" in t["kind"] for t in p["targets"]):
        continue
    lacks = [f for f in ("description", "license", "repository", "readme", "keywords",
                         "categories", "rust_version") if not p.get(f)]
    if not (p.get("metadata") or {}).get("docs", {}).get("rs"):
        lacks.append("package.metadata.docs.rs")
    print(p["name"], os.path.dirname(p["manifest_path"]), ",".join(lacks) or "-")
' <<<"$meta")

crates=()
declare -A dir=() lacks=()
for line in "${found[@]}"; do
  read -r name path missing <<<"$line"
  crates+=("$name")
  dir[$name]=$path
  lacks[$name]=$missing
done
for c in "${crates[@]}"; do
  [[ " ${covered[*]} " == *" $c "* ]] || {
    echo "package.sh: $c is a publishable library crate but not covered: add it to \`covered\`" \
      "in ci/package.sh (with README.md, CHANGELOG.md, LICENSE-MIT, LICENSE-APACHE and the" \
      "manifest fields), or set \`publish = false\` in its Cargo.toml" >&2
    exit 1
  }
done
for c in "${covered[@]}"; do
  [ -n "${dir[$c]:-}" ] || {
    echo "package.sh: $c is covered but is not a publishable library crate of the workspace" >&2
    exit 1
  }
done
for c in "${crates[@]}"; do
  [ "${lacks[$c]}" = - ] || { echo "package.sh: $c's Cargo.toml lacks ${lacks[$c]}" >&2; exit 1; }
done
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done

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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/package-verify"
rm -rf "$CARGO_TARGET_DIR"

for c in "${crates[@]}"; do
  list=$(cargo package --offline "${dirty[@]}" --list -p "$c" 2>/dev/null ||
         cargo package "${dirty[@]}" --list -p "$c")
  need=(Cargo.toml src/lib.rs README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE)
  # What the sources include (the crate docs, built by docs.rs), as paths inside the crate:
  # a path that leaves the crate is not packaged, and verification fails on it.
  while IFS=: read -r file included; do
    path=$(realpath -ms --relative-to="${dir[$c]}" "$(dirname "$file")/$included")
    case "$path" in
      ../*) echo "package.sh: $file includes $included, outside $c: not packaged" \
              "(link it into the crate, as rcu-core/docs/ does)" >&2; exit 1 ;;
    esac
    need+=("$path")
    # A doc the crate carries is the top-level one (a symlink), not a copy that can drift.
    top="docs/$(basename "$path")"
    if [[ "$path" == docs/* && -e "$top" ]] && ! cmp -s "$top" "${dir[$c]}/$path"; then
      echo "package.sh: ${dir[$c]}/$path differs from $top" >&2
      exit 1
    fi
  done < <(grep -roE --include='*.rs' -H 'include_(str|bytes)!\("[^"]+"\)' "${dir[$c]}/src" |
           sed -E 's/include_(str|bytes)!\("([^"]+)"\)$/\2/')
  for f in "${need[@]}"; do
    grep -qx "$f" <<<"$list" || { echo "package.sh: $c's package lacks $f" >&2; exit 1; }
  done
  included=("${need[@]:6}")
  echo "package.sh: $c: $(wc -l <<<"$list") files${included[*]:+, included: ${included[*]}}"
done

if ! cargo package --offline "${dirty[@]}" "${args[@]}"; then
  echo "package.sh: offline packaging failed; retrying with the registry reachable" >&2
  cargo package "${dirty[@]}" "${args[@]}"
fi
echo "package.sh: ${crates[*]} package and build from their packages"
echo "package.sh: MSRV $(grep -m1 '^rust-version' Cargo.toml | cut -d'"' -f2) declared, not verified (only rustc $(rustc --version | cut -d' ' -f2) here; clippy checks std APIs, not language features)"
