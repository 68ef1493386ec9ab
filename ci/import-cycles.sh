#!/usr/bin/env bash
# No import cycle inside any crate: lists every module's `use crate::` edges of rcu-ctx,
# rcu-sys, rcu-alloc, rcu-core and rcu-collections and fails naming any cycle (ci/lib/import_cycles.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 ci/lib/import_cycles.py rcu-ctx rcu-sys rcu-alloc rcu-core rcu-collections
