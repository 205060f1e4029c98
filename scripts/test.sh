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
# The date-sensitive tests must hold on any day: run the unit tests (report, exporter
# and its rules, dashboard pages, periods) with "now" pinned (GPU_USAGE_NOW, the one
# clock) at the instants where calendars bite. Skipped when arguments pick tests.
if [ "$#" -eq 0 ]; then
  log=$(mktemp)
  for instant in 2026-12-01T00:05:00Z 2027-02-28T23:55:00Z 2026-10-25T01:30:00Z \
                 2027-01-01T00:05:00Z; do
    printf '== unit tests with GPU_USAGE_NOW=%s: ' "$instant"
    if ! GPU_USAGE_NOW="$instant" .venv/bin/python -m pytest tests/unit -q \
         -p no:cacheprovider > "$log" 2>&1; then
      cat "$log"; echo "the unit tests failed with GPU_USAGE_NOW=$instant" >&2; exit 1
    fi
    tail -n 1 "$log" | tr -d '='
  done
  rm -f "$log"
  echo
fi
echo "== tests (pytest)"
exec .venv/bin/python -m pytest tests "$@"
