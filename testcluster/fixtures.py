"""Records real Slurm output from the running test cluster as unit-test fixtures.

It runs the live workload, then asks sacct through the collector's own door (the
same field list and options the collector uses) for the workload's window and for
a window of the backfilled history across a month boundary, and writes the text as
Slurm printed it, with a manifest saying what was recorded and which job is which.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from collector import clock
from collector.slurm.commands import (
    new_delimiter,
    run_sacct,
    run_sacctmgr_accounts,
    run_sacctmgr_events,
    run_sacctmgr_reservations,
    run_sinfo,
    run_squeue,
    sacct_argv,
)
from collector.slurm.sacct_parser import SACCT_FIELDS, ParseResult, parse_sacct
from collector.slurm.slurmrestd_source import RestClient

from . import workload
from .backfill import recorded_spec
from .cluster import run_slurm
from .errors import ClusterError
from .history import add_months
from .layout import Layout


def slurm_version(lay: Layout) -> str:
    return run_slurm(lay, ["sinfo", "--version"]).stdout.split()[1]  # "slurm 22.05.8"


def recorded_delimiter(release_dir: Path) -> str:
    """The delimiter a release's sacct fixtures were recorded with (older ones: `|`)."""
    manifest = json.loads((release_dir / "manifest.json").read_text())
    return manifest.get("delimiter", "|")


def read_recorded_sacct(path: Path, cluster: str | None = None) -> ParseResult:
    """A recorded sacct file, read with the delimiter of its recording."""
    return parse_sacct(path.read_text(), cluster, recorded_delimiter(path.parent))


def record(lay: Layout, out_dir: Path, live_only: bool = False) -> Path:
    """Record fixtures into out_dir/slurm-<version>/ (with `live_only`, the live view
    alone: `record_live`); return that directory."""
    version = slurm_version(lay)
    target = out_dir / f"slurm-{version}"
    target.mkdir(parents=True, exist_ok=True)
    if live_only:
        record_live(lay, target)
        return target
    started = int(clock.now()) - 60
    submitted = workload.run(lay)
    ended = int(clock.now()) + 60
    files = {"sacct-workload.txt": (started, ended)}
    spec = recorded_spec(lay)
    if spec.months >= 2:
        boundary = add_months(spec.start, 1)
        files["sacct-month-boundary.txt"] = (boundary - 3600, boundary + 3600)
    delimiter = new_delimiter()  # as the collector asks: the manifest keeps it
    for name, (start, end) in files.items():
        (target / name).write_text(run_sacct(start, end, None, delimiter, env=lay.env()))
    rest_version = record_slurmrestd(lay, target, files)
    pyslurm_version = record_pyslurm(lay, target, files)
    manifest = {
        "slurm_version": version,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now())),
        "fields": list(SACCT_FIELDS),
        "delimiter": delimiter,
        "slurmrestd_version": rest_version,
        **({"pyslurm_version": pyslurm_version} if pyslurm_version else {}),
        "files": {name: {"argv": sacct_argv(s, e, None, delimiter), "window": [s, e]}
                  for name, (s, e) in files.items()},
        "workload": {sub.label: {"job_id": sub.job_id, "user": sub.user,
                                 "account": sub.account, "wckey": sub.wckey}
                     for sub in submitted},
        "history": spec.__dict__,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    record_sacctmgr(lay, target)
    record_live(lay, target)
    return target


def record_slurmrestd(lay: Layout, target: Path, files: dict[str, tuple[int, int]]) -> str:
    """The same windows and the account tree from slurmrestd (local auth socket), as
    the collector's slurmrestd door asks; returns the data-parser version used."""
    client = RestClient(f"unix:{lay.rest_socket}", timeout_s=120)
    for name, (start, end) in files.items():
        payload = client.jobs(start, end, lay.cluster, margin_s=0)
        out = target / name.replace("sacct-", "slurmrestd-").replace(".txt", ".json")
        out.write_text(json.dumps({"jobs": payload.get("jobs", [])}, indent=1) + "\n")
    for name, payload in (("associations", client.associations(lay.cluster)),
                          ("accounts", client.accounts())):
        keep = {name: payload.get(name, [])}
        (target / f"slurmrestd-{name}.json").write_text(json.dumps(keep, indent=1) + "\n")
    return client.discover()


# Runs in a process of its own, with the cluster's environment (libslurm of the prefix),
# followed by _PYSLURM_JOBS or _PYSLURM_LIVE.
_PYSLURM_RECORDER = """
import json, sys
import pyslurm
from collector.slurm.pyslurm_source import JOB_FIELDS, LIVE_JOB_FIELDS, NODE_FIELDS

TRES_KEYS = ("billing", "cpu", "energy", "fs", "gres", "interconnect", "license", "mem",
             "node", "other", "pages", "vmem")
ITEM_KEYS = ("count", "id", "name", "type", "type_and_name")


def item(value):
    return {k: getattr(value, k, None) for k in ITEM_KEYS}


def plain(value):
    # pyslurm's own to_dict(recursive=True) fails on these jobs (a TrackableResource
    # of no count), so its objects are written out attribute by attribute.
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) if isinstance(v, (str, int, list, dict)) or v is None
                else item(v) if hasattr(v, "count") else plain(v) for k, v in value.items()}
    if hasattr(value, "gres") and hasattr(value, "cpu"):   # TrackableResources
        return {k: plain(getattr(value, k, None)) for k in TRES_KEYS}
    if hasattr(value, "count"):
        return item(value)
    return str(value)


def write(data, out):
    with open(out, "w") as f:
        f.write(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\\n")
    print(pyslurm.__version__)
"""
_PYSLURM_JOBS = """
start, end, cluster, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jobs = pyslurm.db.Jobs.load(pyslurm.db.JobFilter(clusters=[cluster], start_time=max(start, 1),
                                                 end_time=end))
write({str(job.id): {name: plain(getattr(job, name)) for name in (*JOB_FIELDS, "gpus", "gres")}
       for job in jobs.values()}, out)
"""
_PYSLURM_LIVE = """
jobs, nodes = pyslurm.Jobs.load(), pyslurm.Nodes.load()
write({"jobs": {str(j.id): {n: plain(getattr(j, n)) for n in LIVE_JOB_FIELDS}
                for j in jobs.values()},
       "nodes": {n.name: {f: plain(getattr(n, f)) for f in NODE_FIELDS}
                 for n in nodes.values()}}, sys.argv[1])
"""


def _run_pyslurm(lay: Layout, body: str, *args: str) -> str:
    """A recorder in a process of its own with the cluster's environment; its pyslurm
    version."""
    proc = subprocess.run([sys.executable, "-c", _PYSLURM_RECORDER + body, *args],
                          env=lay.env(), capture_output=True, text=True, timeout=600,
                          check=False)
    if proc.returncode != 0:
        raise ClusterError(f"recording through pyslurm failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def record_pyslurm(lay: Layout, target: Path, files: dict[str, tuple[int, int]]) -> str | None:
    """The same windows through the real pyslurm (`Jobs.load(...)`; of each job the
    attributes the door reads, and `gpus` and `gres`, its objects written out as their
    attributes), where this release has one (Slurm 25.11); returns its version, None
    where there is none."""
    from . import slurmbuild

    if lay.slurm not in slurmbuild.PYSLURM:
        return None
    slurmbuild.install_pyslurm(lay.slurm)
    version = None
    for name, (start, end) in files.items():
        out = target / name.replace("sacct-", "pyslurm-").replace(".txt", ".json")
        version = _run_pyslurm(lay, _PYSLURM_JOBS, str(start), str(end), lay.cluster,
                               str(out))
    return version


def record_sacctmgr(lay: Layout, target: Path) -> None:
    """The account tree, events and reservations as the collector's door reads them."""
    since = recorded_spec(lay).start
    assoc, accounts = run_sacctmgr_accounts(lay.cluster, env=lay.env())
    (target / "sacctmgr-assoc.txt").write_text(assoc)
    (target / "sacctmgr-account.txt").write_text(accounts)
    (target / "sacctmgr-events.txt").write_text(
        run_sacctmgr_events(lay.cluster, since, env=lay.env()))
    (target / "sacctmgr-reservations.txt").write_text(
        run_sacctmgr_reservations(lay.cluster, since, env=lay.env()))


# Jobs that hold GPUs (or wait for them) while squeue is recorded: every GPU
# spelling, an array, a job pending for resources and one held, an array whose tasks
# all wait (one record in slurmctld, a line per task in squeue), on a drained node.
LIVE_JOBS: tuple[workload.Submission, ...] = (
    workload.Submission("live-gpus", "anna", "ehpc_llm01", ("--gpus=2",), "sleep 300"),
    workload.Submission("live-multi-node", "bram", "nl_ind_chip",
                        ("-N", "2", "--gpus-per-node=2"), "sleep 300"),
    workload.Submission("live-gres", "jasper", "com_acme", ("--gres=gpu:h100:1",), "sleep 300"),
    workload.Submission("live-array", "quinn", "nl_tud_vision", ("--array=0-2", "--gpus=1"),
                        "sleep 300"),
    workload.Submission("live-pending", "maria", "nl_uva_nlp", ("-N", "2", "--gpus=8"),
                        "sleep 300"),
    workload.Submission("live-held", "omar", "nl_rug_astro", ("-H", "--gpus-per-task=1", "-n",
                                                              "2"), "sleep 300"),
    workload.Submission("live-cpu", "opsbot", "staff_ops", ("-c", "2"), "sleep 300"),
    workload.Submission("live-array-pending", "anna", "ehpc_llm01", ("--array=0-3",
                                                                    "--gpus=4"), "sleep 300"),
)


@contextlib.contextmanager
def live_workload(lay: Layout) -> Iterator[dict[str, str]]:
    """`LIVE_JOBS` running and pending, with the last node drained, until the block
    ends: then everything is cancelled and the node resumed. Yields label -> job id."""
    drained = lay.nodes[-1]
    run_slurm(lay, ["scontrol", "update", f"NodeName={drained}", "State=DRAIN",
                    "Reason=fixture"])
    ids = []
    try:
        ids = [workload.submit(lay, sub) for sub in LIVE_JOBS]
        deadline = time.monotonic() + 90
        seen, steady = "", 0
        while time.monotonic() < deadline and steady < 3:
            # 3 jobs and 3 array tasks running, and the queue unchanged for 3 s: the
            # scheduler has placed what it can, so two reads in a row agree.
            now = run_squeue(lay.cluster, env=lay.env())
            steady = steady + 1 if now == seen and now.count("RUNNING") >= 6 else 0
            seen = now
            time.sleep(1)
        yield {sub.label: job_id for sub, job_id in zip(LIVE_JOBS, ids, strict=True)}
    finally:
        if ids:
            run_slurm(lay, ["scancel", *ids])
        run_slurm(lay, ["scontrol", "update", f"NodeName={drained}", "State=RESUME"])
        workload.wait_idle(lay)


def record_live(lay: Layout, target: Path) -> None:
    """squeue and sinfo as the exporter's door reads them, with jobs running and
    pending and one node drained (`live_workload`), and on Slurm 25.11 the same moment
    through pyslurm (`pyslurm.Jobs.load()`, `pyslurm.Nodes.load()`: the attributes
    the live mapping reads) into pyslurm-live.json."""
    from . import slurmbuild

    with live_workload(lay) as live:
        (target / "squeue-live.txt").write_text(run_squeue(lay.cluster, env=lay.env()))
        (target / "sinfo-live.txt").write_text(run_sinfo(lay.cluster, env=lay.env()))
        if lay.slurm in slurmbuild.PYSLURM:
            slurmbuild.install_pyslurm(lay.slurm)
            _run_pyslurm(lay, _PYSLURM_LIVE, str(target / "pyslurm-live.json"))
        (target / "live.json").write_text(json.dumps({"jobs": live, "drained": lay.nodes[-1]},
                                                     indent=2) + "\n")
