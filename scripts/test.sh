#!/usr/bin/env bash
# Installs everything (Debian packages, .venv with the test extras) and runs all
# tests: lint, unit tests, and integration tests against a real Slurm cluster that
# the tests start from nothing and stop again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh testcluster,test
echo
echo "== lint (ruff)"
.venv/bin/ruff check collector dashboard testcluster tests scripts
echo
# The date-sensitive tests must hold on any day: run them (periods, the clock, the
# report, capacity and rollups, collection, the exporter, the dashboard's pages,
# verify, access) with "now" pinned (GPU_USAGE_NOW, the one clock) at the instants
# where calendars bite. Skipped when arguments pick tests.
dated=(periods clock report capacity rollup collect exporter dashboard verify access
       policy_placement)
if [ "$#" -eq 0 ]; then
  files=()
  for name in "${dated[@]}"; do files+=("tests/unit/test_$name.py"); done
  log=$(mktemp)
  for instant in 2026-12-01T00:05:00Z 2027-02-28T23:55:00Z 2026-10-25T01:30:00Z \
                 2027-01-01T00:05:00Z; do
    printf '== date-sensitive unit tests with GPU_USAGE_NOW=%s: ' "$instant"
    if ! GPU_USAGE_NOW="$instant" .venv/bin/python -m pytest -q -p no:cacheprovider \
         "${files[@]}" > "$log" 2>&1; then
      cat "$log"; echo "the unit tests failed with GPU_USAGE_NOW=$instant" >&2; exit 1
    fi
    tail -n 1 "$log" | tr -d '='
  done
  rm -f "$log"
  echo
fi
echo "== tests (pytest)"
exec .venv/bin/python -m pytest tests "$@"
