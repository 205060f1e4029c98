#!/usr/bin/env bash
# The main job, from nothing: install, start a local Slurm cluster with GPU
# accounting, load a realistic history (3 months, ~30,000 jobs), run a live
# workload of real jobs, print what the cluster holds in Slurm's own numbers,
# then collect it into the store, check it against sreport, print last month's usage
# report (and write it as JSON, CSV, Markdown, PDF and Excel), and start the
# Prometheus exporter and the dashboard on it.
# The cluster, the exporter and the dashboard keep running; stop them with:
#   kill "$(cat var/exporter.pid)" "$(cat var/dashboard.pid)"; .venv/bin/python -m testcluster down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh testcluster,dashboard
gpu=.venv/bin/gpu-usage
testcluster=".venv/bin/python -m testcluster"   # the test cluster: outside the product
echo
$testcluster up
echo
$testcluster backfill --months "${DEMO_MONTHS:-3}" --jobs "${DEMO_JOBS:-30000}"
echo
$testcluster workload
echo
$testcluster summary
echo
eval "$($testcluster env)"   # SLURM_CONF: sacct and sacctmgr read this cluster
# The facility policy, its allocations placed on the backfilled months (so the demo
# shows the same active, new and ended projects on whatever day it runs).
policy=var/facility.toml
$testcluster policy --out "$policy"
# The backfill replaced the history, so read all of it again (a plain collect is
# incremental: it reads only what is new since the last one).
$gpu collect --config "$policy" --from-scratch
echo
$gpu verify --config "$policy" --month last   # every account against sreport
echo
$gpu report --config "$policy" --month last
mkdir -p var/reports
for fmt in json csv md pdf xlsx; do
  $gpu report --config "$policy" --month last --format "$fmt" --out "var/reports/last-month.$fmt"
done

echo
# The exporter serves /metrics from the same store (address and port: [exporter] in
# the policy file); an earlier demo's exporter is stopped first.
if [ -f var/exporter.pid ] && kill -0 "$(cat var/exporter.pid)" 2>/dev/null; then
  kill "$(cat var/exporter.pid)"; sleep 1
fi
setsid nohup $gpu exporter --config "$policy" > var/exporter.log 2>&1 < /dev/null &
echo $! > var/exporter.pid
url=$(.venv/bin/python - "$policy" <<'PY'
import sys, time, urllib.request
from pathlib import Path
from collector.config import load
cfg = load(Path(sys.argv[1])).exporter
host = "localhost" if cfg.address in ("", "0.0.0.0", "::") else cfg.address
url = f"http://{host}:{cfg.port}/metrics"
for _ in range(120):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit(f"the exporter did not answer at {url}; see var/exporter.log")
series = sum(1 for line in body.splitlines() if line.startswith("gpu_usage_"))
print(f"{url} ({series} series)")
PY
)

# The dashboard ([dashboard] in the policy file: 127.0.0.1:8501), same store.
if [ -f var/dashboard.pid ] && kill -0 "$(cat var/dashboard.pid)" 2>/dev/null; then
  kill "$(cat var/dashboard.pid)"; sleep 1
fi
setsid nohup $gpu dashboard --config "$policy" > var/dashboard.log 2>&1 < /dev/null &
echo $! > var/dashboard.pid
dash=$(.venv/bin/python - "$policy" <<'PY'
import sys, time, urllib.request
from pathlib import Path
from collector.config import load
cfg = load(Path(sys.argv[1])).dashboard
url = f"http://{cfg.address}:{cfg.port}"
for _ in range(120):
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            if r.read() == b"ok":
                break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit(f"the dashboard did not answer at {url}; see var/dashboard.log")
print(url)
PY
)
echo "exporter:  $url  (pid $(cat var/exporter.pid), log var/exporter.log)"
echo "dashboard: $dash  (pid $(cat var/dashboard.pid), log var/dashboard.log)"
echo "reports:   var/reports/last-month.{json,csv,md,pdf,xlsx}"
echo "stop:      kill \$(cat var/exporter.pid) \$(cat var/dashboard.pid); $testcluster down"
