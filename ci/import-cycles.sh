#!/usr/bin/env bash
# No import cycle inside any crate, between modules or between folders: lists every module's
# `use crate::` edges of rcu-ctx, rcu-sys, rcu-alloc, rcu-core and rcu-collections, fails
# naming any cycle or folder back edge, and prints the folders' order (ci/lib/import_cycles.py).
# Its self-test runs first: tiny crates with a known verdict each (ci/lib/test_import_cycles.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 ci/lib/test_import_cycles.py
python3 ci/lib/import_cycles.py rcu-ctx rcu-sys rcu-alloc rcu-core rcu-collections
