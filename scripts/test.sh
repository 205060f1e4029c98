#!/usr/bin/env bash
# Installs everything (Debian packages, .venv with the test extras) and runs all
# tests: lint, unit tests, and integration tests against a real Slurm cluster that
# the tests start from nothing and stop again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh testcluster,test
echo
echo "== lint (ruff)"
.venv/bin/ruff check collector dashboard testcluster tests
echo
echo "== tests (pytest)"
exec .venv/bin/python -m pytest tests "$@"
