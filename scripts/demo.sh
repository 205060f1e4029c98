#!/usr/bin/env bash
# The main job, from nothing: install, start a local Slurm cluster with GPU
# accounting, load a realistic history (3 months, ~30,000 jobs), run a live
# workload of real jobs, print what the cluster holds in Slurm's own numbers,
# then collect it into the store and print last month's usage report.
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
echo
eval "$($gpu cluster env)"   # SLURM_CONF: sacct and sacctmgr read this cluster
policy=testcluster/facility.toml
# The backfill replaced the history, so read all of it again (a plain collect is
# incremental: it reads only what is new since the last one).
$gpu collect --config "$policy" --from-scratch
echo
$gpu report --config "$policy" --month last
mkdir -p var/reports
for fmt in json csv md; do
  $gpu report --config "$policy" --month last --format "$fmt" --out "var/reports/last-month.$fmt"
done
