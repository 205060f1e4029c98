#!/usr/bin/env bash
# The main job, from nothing: install, start a local Slurm cluster with GPU
# accounting, load a realistic history (3 months, ~30,000 jobs), run a live
# workload of real jobs, and print what the cluster now holds.
# The cluster keeps running; stop it with: .venv/bin/gpu-usage cluster down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh testcluster
gpu=.venv/bin/gpu-usage
echo
$gpu cluster up
echo
$gpu cluster backfill --months "${DEMO_MONTHS:-3}" --jobs "${DEMO_JOBS:-30000}"
echo
$gpu cluster workload
echo
$gpu cluster summary
