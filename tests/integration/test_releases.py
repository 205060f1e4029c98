"""Every door to Slurm on every release: sacct, slurmrestd over its UNIX socket
(local auth) and slurmrestd over HTTP with a JWT, on Slurm 22.05 (this machine's
Debian), 24.11 (Debian 13) and 26.05 (Debian sid; both in debootstrapped roots
under chroot). For each release the sources must store identical jobs and make
identical reports, and every source's figures must equal sreport's.

On 25.11 (compiled from its verified source: testcluster/slurmbuild.py) the pyslurm
door runs too, through pyslurm 25.11.2 built against that Slurm and installed into
this environment. pyslurm cannot ask slurmdbd for the earlier runs of a requeued job
(its JobFilter never sets JOBCOND_FLAG_DUP), so its store holds sacct's records
without those runs, and its reports equal those of the sacct store with them taken
out: every other figure is the same. Its live view (pyslurm.Jobs and pyslurm.Nodes
from slurmctld) equals squeue's and sinfo's. No pyslurm test runs on the other
releases.
"""

from __future__ import annotations

import calendar
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from testcluster import backfill
from testcluster.fixtures import LIVE_JOBS, live_workload
from testcluster.history import add_months
from testcluster.layout import Layout

from .conftest import BASE_PORT, assert_nothing_left, make_run_dir, run_cli, some_history
from .test_collector import gpu_usage, write_policy

pytestmark = pytest.mark.integration
RELEASES = ("22.05", "24.11", "25.11", "26.05")
SOURCES = ("sacct", "slurmrestd-socket", "slurmrestd-jwt")
PYSLURM = "25.11"   # the release pyslurm (PyPI: 25.11.x only) builds against


def sources_of(lay: Layout) -> tuple[str, ...]:
    return (*SOURCES, "pyslurm") if lay.slurm == PYSLURM else SOURCES


@pytest.fixture(scope="module", params=RELEASES)
def release(request, lay, cli_args):
    """(layout, closed months) of a cluster of this release with backfilled history:
    the session's 22.05 cluster, or a new one in the release's root."""
    if request.param == lay.slurm:
        spec = some_history(lay, cli_args)
        yield lay, _months(spec)
        return
    port = BASE_PORT + 200 * (RELEASES.index(request.param) + 1)
    other = Layout(make_run_dir(f"gpu-usage-it-{request.param}-"), port)
    args = ("--run-dir", str(other.run_dir), "--base-port", str(port))
    try:
        run_cli("cluster", "up", "--slurm", request.param, *args)
        assert other.slurm == request.param
        run_cli("cluster", "backfill", *args, "--months", "2", "--jobs", "3000", "--seed", "7")
        yield other, _months(backfill.recorded_spec(other))
    finally:
        run_cli("cluster", "down", *args)
        assert_nothing_left(other)
        shutil.rmtree(other.run_dir, ignore_errors=True)


def _months(spec) -> list[str]:
    return [time.strftime("%Y-%m", time.gmtime(add_months(spec.start, i)))
            for i in range(spec.months)]


def _config(lay: Layout, tmp: Path, source: str, start: int) -> Path:
    path = write_policy(tmp / source, start)
    text = path.read_text()
    if source == "slurmrestd-socket":
        text = text.replace('source = "sacct"', 'source = "slurmrestd"') + (
            f'\n[slurmrestd]\nurl = "unix:{lay.rest_socket}"\n')
    elif source == "pyslurm":
        text = text.replace('source = "sacct"', 'source = "pyslurm"')
    elif source == "slurmrestd-jwt":
        text = text.replace('source = "sacct"', 'source = "slurmrestd"') + (
            f'\n[slurmrestd]\nurl = "http://127.0.0.1:{lay.rest_port}"\nuser = "slurmrest"\n'
            f'token_file = "{lay.rest_token_file}"\n')
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def collected(release, tmp_path_factory):
    """One store per source, each collected from the same cluster."""
    lay, months = release
    tmp = tmp_path_factory.mktemp(f"sources-{lay.slurm}")
    start = backfill.recorded_spec(lay).start
    configs = {}
    if lay.slurm == PYSLURM:
        from testcluster import slurmbuild
        slurmbuild.install_pyslurm(PYSLURM)
    for source in sources_of(lay):
        (tmp / source).mkdir()
        configs[source] = _config(lay, tmp, source, start)
        out = gpu_usage(lay, "collect", "--config", str(configs[source])).stdout
        assert " new, " in out, out
    return lay, months, configs


def _jobs(config: Path) -> dict[tuple, tuple]:
    store = config.parent / "store" / "gpu-usage.sqlite"
    with sqlite3.connect(store) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
        keep = [c for c in cols if c != "collection_id"]
        rows = db.execute(f"SELECT {', '.join(keep)} FROM jobs").fetchall()
    return {row[:3]: row for row in rows}


def _earlier_runs(jobs: dict[tuple, tuple]) -> set[tuple]:
    """Keys of the earlier runs of requeued jobs (sacct names them REQUEUED)."""
    return {k for k, row in jobs.items() if row[14] == "REQUEUED"}


def without_earlier_runs(config: Path, tmp: Path) -> Path:
    """A copy of the sacct store without the earlier runs of requeued jobs (what pyslurm
    cannot read), its rollups rebuilt by the collector's own code."""
    from collector.collect import rebuild_rollups
    from collector.config import load
    from collector.engine.rollup import LocalDays
    from collector.store.database import Store

    (tmp / "store").mkdir(parents=True)
    with sqlite3.connect(config.parent / "store" / "gpu-usage.sqlite") as src, \
            sqlite3.connect(tmp / "store" / "gpu-usage.sqlite") as dst:
        src.backup(dst)
        assert dst.execute("DELETE FROM jobs WHERE state = 'REQUEUED'").rowcount > 0
    path = tmp / "facility.toml"
    path.write_text(config.read_text().replace(str(config.parent), str(tmp)))
    tz = load(path).facility.timezone
    with Store.open_writer(tmp / "store") as store, store.transaction():
        rebuild_rollups(store, LocalDays(tz), None)
    return path


def test_every_source_stores_identical_jobs(collected):
    lay, _, configs = collected
    reference = _jobs(configs["sacct"])
    assert len(reference) >= 2000
    if lay.slurm == PYSLURM:  # pyslurm: the same records but the earlier runs of requeues
        pyslurm = _jobs(configs["pyslurm"])
        earlier = _earlier_runs(reference)
        assert earlier and pyslurm.keys() == reference.keys() - earlier
        assert all(pyslurm[k] == reference[k] for k in pyslurm)
    for source in SOURCES[1:]:
        other = _jobs(configs[source])
        assert other.keys() == reference.keys(), (lay.slurm, source)
        differing = [k for k in reference if reference[k] != other[k]]
        assert not differing, (lay.slurm, source, [(reference[k], other[k])
                                                  for k in differing[:3]])


def test_every_source_makes_the_same_report(collected, tmp_path):
    lay, months, configs = collected
    configs = dict(configs)
    if lay.slurm == PYSLURM:
        configs["sacct-without-earlier-runs"] = without_earlier_runs(configs["sacct"],
                                                                     tmp_path / "reduced")
    for month in months:
        reports = {}
        for source, config in configs.items():
            text = gpu_usage(lay, "report", "--config", str(config), "--month", month,
                             "--format", "json").stdout
            report = json.loads(text)
            for key in ("generated_at", "last_collection"):
                report.pop(key)  # when each store was collected
            reports[source] = report
        assert reports["sacct"]["categories"], month
        for source in SOURCES[1:]:
            assert reports[source] == reports["sacct"], (lay.slurm, source, month)
        if lay.slurm == PYSLURM:  # every figure, the requeues' earlier runs taken out
            assert reports["pyslurm"] == reports["sacct-without-earlier-runs"], month
            assert reports["pyslurm"] != reports["sacct"], month  # those runs had GPU time


def test_every_source_equals_sreport(collected):
    lay, months, configs = collected
    for source in SOURCES:
        args = [a for m in months for a in ("--month", m)]
        out = gpu_usage(lay, "verify", "--config", str(configs[source]), *args).stdout
        assert out.count("0 differ by more than 1 GPU-minute") == len(months), (source, out)
        # Energy equals sacct's ConsumedEnergyRaw split by time; sreport -T energy is
        # equal or over by the known cause (the hourly rollup), never unexplained.
        assert out.count(" 0 accounts differ; sreport -T energy") == len(months), (source, out)
        assert "no known cause" not in out, (source, out)


def test_the_data_parser_version_is_discovered(collected):
    from collector.slurm.slurmrestd_source import RestClient
    lay, _, _ = collected
    version = RestClient(f"unix:{lay.rest_socket}").discover()
    expected = {"22.05": "v0.0.38", "24.11": "v0.0.42", "25.11": "v0.0.44",
                "26.05": "v0.0.44"}
    assert version == expected[lay.slurm]


# The product's live view of one configuration, in a process with the cluster's
# environment (pyslurm loads libslurm of the cluster's prefix).
_LIVE = """
import json, sys
from pathlib import Path
from collector import config
from collector.export.views import count_jobs, count_nodes, read_jobs_now, read_nodes_now
settings = config.load(Path(sys.argv[1]))
jobs, bad_jobs = read_jobs_now(settings)
nodes, bad_nodes = read_nodes_now(settings)
print(json.dumps({"jobs": sorted(jobs), "nodes": sorted(nodes), "rejected": bad_jobs + bad_nodes,
                  "holding": sorted(map(list, count_jobs(jobs).holding_gpus.items())),
                  "pending": sorted(map(list, count_jobs(jobs).pending_gpus.items())),
                  "gpus": count_nodes(nodes).gpus_by_type}))
"""


def _live(lay: Layout, config: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _LIVE, str(config)], env=lay.env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_live_view_is_the_same_through_every_door(collected):
    """Jobs running and pending on a cluster with a drained node, read as the exporter
    and the dashboard read them: squeue and sinfo, and on 25.11 pyslurm (slurmctld)."""
    lay, _, configs = collected
    with live_workload(lay) as live:
        views = {source: _live(lay, configs[source])
                 for source in ("sacct", *(("pyslurm",) if lay.slurm == PYSLURM else ()))}
    squeue = views["sacct"]
    gpu_type = next(iter(squeue["gpus"]))
    assert squeue["rejected"] == 0
    assert {a: g for (a, _, _), g in squeue["holding"] if g} == {
        "ehpc_llm01": 2, "nl_ind_chip": 4, "com_acme": 1, "nl_tud_vision": 3}
    assert {a: g for (a, _), g in squeue["pending"] if g} == {
        "nl_uva_nlp": 8, "nl_rug_astro": 2, "ehpc_llm01": 4 * 4}   # 4 waiting array tasks
    assert squeue["gpus"] == {gpu_type: [16, 12]}     # 4 nodes of 4 GPUs, one drained
    assert set(live) == {sub.label for sub in LIVE_JOBS}
    if lay.slurm == PYSLURM:
        assert _steady(views["pyslurm"]) == _steady(squeue)


def _steady(view: dict) -> dict:
    """The backfill scheduler's "planned" mark on a node (sinfo's "-" suffix, "planned"
    for an idle node) comes and goes between two reads; everything else must agree."""
    nodes = [[n[0], n[1].rstrip("-").replace("planned", "idle"), *n[2:]] for n in view["nodes"]]
    return {**view, "nodes": nodes}


GPU_USE_RELEASES = ("24.11", "25.11", "26.05")  # 23.02+: gres/gpuutil and gres/gpumem


def sacct_gpu_use_by_account(lay: Layout, start_s: int, end_s: int, history_start: int
                             ) -> tuple[dict[str, list[float]], int]:
    """(allocated, busy, idle) GPU-seconds per account in [start, end), recomputed from
    sacct's TRESUsageInTot and step times without the collector's code: sacct asked
    over the whole history (it shows only the steps that overlap its window), each
    finished GPU job's figures split by its time inside [start, end). And the jobs."""
    from .conftest import slurm
    out = slurm(lay, "sacct", "-a", "-D", "-n", "-P", "--noconvert",
                "-S", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(history_start - 7 * 86400)),
                "-E", "now", "--format=JobIDRaw,Account,Start,End,AllocTRES,TRESUsageInTot")
    jobs: list[dict] = []
    for line in out.splitlines():
        raw, account, begun, ended, alloc, usage = line.split("|")
        gpus = dict(i.split("=", 1) for i in alloc.split(",") if "=" in i).get("gres/gpu")
        times = [calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%S"))
                 if "T" in t else None for t in (begun, ended)]
        if "." not in raw:
            jobs.append({"account": account, "gpus": int(gpus or 0), "times": times,
                         "steps": []})
            continue
        figures = dict(i.split("=", 1) for i in usage.split(",") if "=" in i)
        if None not in times and "gres/gpuutil" in figures:
            jobs[-1]["steps"].append((raw.split(".", 1)[1], *times, int(gpus or 0),
                                      int(figures["gres/gpuutil"])))
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    counted = 0
    for job in jobs:
        (a, b), gpus = job["times"], job["gpus"]
        if a is None or b is None or b <= a or not gpus or not job["steps"]:
            continue  # never ran, running, no GPUs, or no GPU figures (no data)
        inside = min(b, end_s) - max(a, start_s)
        if inside <= 0:
            continue
        # Second by second would do; segments between step edges are the same sums.
        work = [(max(a, s), min(b, e), g, u) for name, s, e, g, u in job["steps"]
                if name != "extern" and u > 0 and g > 0 and min(b, e) > max(a, s)]
        edges = sorted({a, b, *(w[0] for w in work), *(w[1] for w in work)})
        in_use = sum((hi - lo) * min(gpus, sum(g for s, e, g, _ in work if s <= lo and e >= hi))
                     for lo, hi in pairwise(edges))
        busy = min(in_use, sum(min((e - s) * u // 100, (e - s) * g) for s, e, g, u in work))
        share = inside / (b - a)
        cell = sums[job["account"]]
        cell[0] += gpus * inside
        cell[1] += busy * share
        cell[2] += (gpus * (b - a) - in_use) * share
        counted += 1
    return sums, counted


def test_gpu_use_equals_a_recomputation_from_sacct(collected):
    """Busy and idle-allocated GPU-hours per category equal a recomputation from sacct's
    TRESUsageInTot and step times (24.11, 25.11, 26.05); on 22.05, which has no GPU
    figures, every report says "not recorded", never idle."""
    lay, months, configs = collected
    spec = backfill.recorded_spec(lay)
    for index, month in enumerate(months):
        got = json.loads(gpu_usage(lay, "report", "--config", str(configs["sacct"]),
                                   "--month", month, "--format", "json").stdout)
        eff = got["efficiency"]
        if lay.slurm not in GPU_USE_RELEASES:
            assert not eff["recorded"] and eff["total"]["busy_gpu_hours"] is None
            md = gpu_usage(lay, "report", "--config", str(configs["sacct"]), "--month", month,
                           "--format", "md").stdout
            assert "GPU efficiency: not recorded on this cluster" in md
            continue
        start, end = add_months(spec.start, index), add_months(spec.start, index + 1)
        sums, jobs = sacct_gpu_use_by_account(lay, start, end, spec.start)
        assert eff["recorded"] and jobs > 500
        category_of = {a["account"]: a["category"] for a in got["accounts"]}
        expected: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for account, values in sums.items():
            for i, v in enumerate(values):
                expected[category_of[account]][i] += v
        ours = {c["category"]: c for c in eff["categories"]}
        # Each job's split at the month's edges is whole seconds in the store: at most a
        # second per job apart, plus the 1/1000 GPU-h of the document's rounding.
        slack = 0.001 + jobs / 3600
        for category, (gpu_s, busy, idle) in expected.items():
            row = ours[category]
            assert abs(row["gpu_hours_with_gpu_data"] - gpu_s / 3600) <= slack, category
            assert abs(row["busy_gpu_hours"] - busy / 3600) <= slack, (month, category)
            assert abs(row["idle_allocated_gpu_hours"] - idle / 3600) <= slack, (month,
                                                                                  category)
        total = eff["total"]
        assert abs(total["busy_gpu_hours"] - sum(v[1] for v in expected.values()) / 3600) \
            <= slack
        assert 0.3 < total["busy_share"] < 0.95 and 0.02 < total["idle_share"] < 0.5
