"""Faults on the real test cluster: slurmdbd stopped in the middle of a collection,
slurmdbd not answering (SIGSTOP, a query beyond the timeout), MariaDB stopped and
restarted, two collectors at once, and the collector SIGKILLed at random points.

Each failed collection must exit non-zero with a message naming the problem, leave
the store exactly as it was, be counted by the running exporter (which keeps
serving), and the first run after recovery must catch up: the jobs that ran during
the outage arrive once, and the store then equals a collection from scratch.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import clock
from collector.store.database import db_path
from testcluster import cluster, workload
from testcluster.browser import free_port

from .conftest import some_history
from .test_collector import write_policy

pytestmark = pytest.mark.integration
KILLS = 30


def cli(lay, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", *args], env=lay.env(),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def start_cli(lay, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "collector", *args], env=lay.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def policy_file(tmp: Path, start: int, extra: str = "") -> Path:
    path = write_policy(tmp, start)
    text = path.read_text().replace("[slurm]\n", "[slurm]\ntimeout_s = 8\n", 1)
    text = re.sub(r"store_poll_s = \d+", "store_poll_s = 1", text)
    path.write_text(text + extra)
    return path


def month_report(lay, policy: Path, month: str) -> dict:
    proc = cli(lay, "report", "--config", str(policy), "--month", month, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    for key in ("generated_at", "last_collection"):
        rep.pop(key)
    rep["data_quality"].pop("last_collection_status")
    return rep


def stored_jobs(store: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{db_path(store)}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT cluster, job_id_raw, submit_s, state, start_s, end_s, "
                            "gpus, account, user FROM jobs ORDER BY 1, 2, 3").fetchall()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {s.name + (str(sorted(s.labels.items())) if s.labels else ""): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def wait_for_scrape(port: int, name: str, value: float, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        got = scrape(port)
        if got.get(name) == value or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


@pytest.fixture(scope="module")
def site(lay, cli_args, tmp_path_factory):
    spec = some_history(lay, cli_args)
    tmp = tmp_path_factory.mktemp("faults")
    policy = policy_file(tmp, spec.start)
    proc = cli(lay, "collect", "--config", str(policy))
    assert proc.returncode == 0, proc.stderr
    month = time.strftime("%Y-%m", time.gmtime(spec.start))
    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "collector", "exporter", "--config",
                                 str(policy), "--address", "127.0.0.1", "--port", str(port)],
                                env=lay.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the exporter did not start"
                time.sleep(0.3)
        yield {"policy": policy, "store": tmp / "store", "month": month, "port": port,
               "tmp": tmp, "spec": spec}
    finally:
        exporter.terminate()
        exporter.wait(timeout=20)


def outage_jobs(lay, n: int = 3) -> list[str]:
    """GPU jobs that run and end while the fault lasts (slurmctld keeps their records
    until slurmdbd can take them)."""
    sub = workload.Submission("outage", "anna", "ehpc_llm01", ("--gpus=1",),
                              command="sleep 1")
    ids = [workload.submit(lay, sub) for _ in range(n)]
    workload.wait_idle(lay, timeout_s=120)
    return ids


def wait_in_sacct(lay, ids: list[str], timeout_s: float = 120) -> None:
    """Until slurmdbd has the outage's jobs whole: a time-window query (as the collector
    makes) shows them COMPLETED with an end time. `sacct -j` shows them seconds
    earlier, with no eligible time yet, and a window query skips them until it is
    filled in; slurmctld's late records can also say COMPLETED a moment before the end
    time lands (End=Unknown; seen once in CI), and a collection then rightly stores the
    job as still open."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(clock.now() - 3600))
    deadline = time.monotonic() + timeout_s
    while True:
        proc = subprocess.run(["sacct", "-n", "-X", "-P", "-a", "-o", "JobID,State,End",
                               "-S", since, "-E", "now"], env=lay.env(),
                              capture_output=True, text=True, check=False)
        done = {f[0] for f in (ln.split("|") for ln in proc.stdout.splitlines())
                if len(f) == 3 and f[1] == "COMPLETED" and f[2] not in ("Unknown", "")}
        if done >= set(ids):
            return
        assert time.monotonic() < deadline, f"jobs {ids} never reached sacct: {proc.stdout}"
        time.sleep(1)


def last_good(lay, site) -> tuple[dict, list, float]:
    """The month's report, the stored jobs and the exporter's error count before a fault."""
    return (month_report(lay, site["policy"], site["month"]), stored_jobs(site["store"]),
            scrape(site["port"]).get("gpu_usage_collection_errors_total", 0))


def assert_failed_cleanly(lay, site, proc, before: dict, jobs_before: list, errors: float,
                          pattern: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "collection failed, the store is unchanged" in proc.stderr
    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert month_report(lay, site["policy"], site["month"]) == before
    assert stored_jobs(site["store"]) == jobs_before
    got = wait_for_scrape(site["port"], "gpu_usage_collection_errors_total", errors + 1)
    assert got["gpu_usage_collection_errors_total"] == errors + 1, "the exporter missed it"
    assert got["gpu_usage_exporter_source_up[('source', 'store')]"] == 1


def assert_caught_up(lay, site, ids: list[str]) -> None:
    """The incremental store equals a collection from scratch into a new store, and
    holds each outage job exactly once."""
    proc = cli(lay, "collect", "--config", str(site["policy"]))
    assert proc.returncode == 0, proc.stderr
    assert "after a failed collection: this span is read again" in proc.stderr
    fresh_dir = site["tmp"] / f"fresh-{time.monotonic_ns()}"
    fresh_dir.mkdir()
    fresh = write_policy(fresh_dir, site["spec"].start)
    assert cli(lay, "collect", "--config", str(fresh)).returncode == 0
    ours, theirs = stored_jobs(site["store"]), stored_jobs(fresh_dir / "store")
    assert ours == theirs
    raw_ids = [int(i) for i in ids]
    assert sorted(j[1] for j in ours if j[1] in raw_ids) == sorted(raw_ids)
    assert month_report(lay, site["policy"], site["month"]) == \
        month_report(lay, fresh, site["month"])


BARRIER_SACCT = """#!/bin/sh
# sacct for the fault tests: while $BARRIER/hold exists, every call after the first
# says so ($BARRIER/waiting.PID) and waits for the test to remove it; then the real one.
mkdir -p "$BARRIER/calls" && : > "$BARRIER/calls/$$"
if [ -e "$BARRIER/hold" ] && [ "$(ls "$BARRIER/calls" | wc -l)" -ge 2 ]; then
  : > "$BARRIER/waiting.$$"
  i=0
  while [ -e "$BARRIER/hold" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
fi
exec {real} "$@"
"""


@contextlib.contextmanager
def sacct_barrier(lay, tmp: Path):
    """PATH with a sacct that holds a collection between two of its sacct calls."""
    tmp.mkdir()
    real = shutil.which("sacct", path=lay.env()["PATH"])
    (tmp / "bin").mkdir()
    wrapper = tmp / "bin" / "sacct"
    wrapper.write_text(BARRIER_SACCT.format(real=real))
    wrapper.chmod(0o755)
    (tmp / "hold").touch()
    env = dict(lay.env(), BARRIER=str(tmp), PATH=f"{tmp / 'bin'}:{lay.env()['PATH']}")
    try:
        yield env
    finally:
        (tmp / "hold").unlink(missing_ok=True)


@contextlib.contextmanager
def held_collection(lay, site):
    """A `collect --from-scratch` held at the sacct barrier (its first window read, the
    store's lock held); the barrier opens when the block ends."""
    gate = site["tmp"] / f"barrier-{time.monotonic_ns()}"
    with sacct_barrier(lay, gate) as env:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "collect", "--config", str(site["policy"]),
             "--from-scratch"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 120
        while not list(gate.glob("waiting.*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the collection never reached its 2nd sacct"
            time.sleep(0.1)
        yield proc


def test_slurmdbd_stopped_during_a_collection(lay, site):
    """The collection has read its first window (in its open transaction) and waits at
    the barrier before the next sacct call; slurmdbd is stopped there, then the call
    goes on against a slurmdbd that is gone."""
    before, jobs_before, errors = last_good(lay, site)
    with held_collection(lay, site) as running:
        cluster.stop_daemon(lay, "slurmdbd")
    try:
        out, err = running.communicate(timeout=120)
        proc = subprocess.CompletedProcess(running.args, running.returncode, out, err)
        assert_failed_cleanly(lay, site, proc, before, jobs_before, errors,
                              r"(sacct|sacctmgr) (exited 1|timed out)")
        ids = outage_jobs(lay)
    finally:
        cluster.start_daemon(lay, "slurmdbd")
    wait_in_sacct(lay, ids)
    assert_caught_up(lay, site, ids)


def test_slurmdbd_not_answering_is_a_timeout(lay, site):
    before, jobs_before, errors = last_good(lay, site)
    cluster.signal_daemon(lay, "slurmdbd", signal.SIGSTOP)
    try:
        started = time.monotonic()
        proc = cli(lay, "collect", "--config", str(site["policy"]))
        took = time.monotonic() - started
        ids = outage_jobs(lay)
    finally:
        cluster.signal_daemon(lay, "slurmdbd", signal.SIGCONT)
    assert took < 60, f"the 8 s timeout took {took:.0f} s"
    assert_failed_cleanly(lay, site, proc, before, jobs_before, errors,
                          r"timed out after 8 s .*slurmdbd")
    wait_in_sacct(lay, ids)
    assert_caught_up(lay, site, ids)


def test_mariadb_restarted(lay, site):
    before, jobs_before, errors = last_good(lay, site)
    cluster.stop_daemon(lay, "mariadb")
    try:
        proc = cli(lay, "collect", "--config", str(site["policy"]))
        ids = outage_jobs(lay)
    finally:
        cluster.start_daemon(lay, "mariadb")
    assert_failed_cleanly(lay, site, proc, before, jobs_before, errors,
                          r"(sacct|sacctmgr) (exited \d+|timed out)")
    wait_in_sacct(lay, ids, timeout_s=300)
    assert_caught_up(lay, site, ids)


def test_two_collectors_at_once_one_runs_one_exits_75(lay, site):
    """The first collection holds the store's lock and waits at the sacct barrier; the
    second starts only then, so the two overlap for certain."""
    with held_collection(lay, site) as first:
        second = cli(lay, "collect", "--config", str(site["policy"]), "--from-scratch",
                     timeout_s=60)
    _, err = first.communicate(timeout=300)
    assert (first.returncode, second.returncode) == (0, 75), (err, second.stderr)
    assert f"another collection (pid {first.pid}) is writing" in second.stderr
    assert "exits without changing anything" in second.stderr
    stored_jobs(site["store"])  # integrity_check ok


def test_sigkill_at_random_points_never_loses_or_doubles_anything(lay, site):
    """Kill collections (from scratch, so each one rewrites the whole store in one
    transaction) at random moments; the store stays readable with its last committed
    state, and a final rerun equals an uninterrupted run."""
    rng = random.Random(7)
    tmp = site["tmp"] / "kills"
    tmp.mkdir()
    # Day windows: many sacct calls and transactions' worth of writes per run.
    policy = policy_file(tmp, site["spec"].start, "")
    policy.write_text(policy.read_text().replace("[slurm]\n", "[slurm]\nwindow_hours = 24\n",
                                                 1))
    store = tmp / "store"
    assert cli(lay, "collect", "--config", str(policy)).returncode == 0
    good = month_report(lay, policy, site["month"])
    jobs = stored_jobs(store)
    started = time.monotonic()
    full = cli(lay, "collect", "--config", str(policy), "--from-scratch")
    duration = time.monotonic() - started
    assert full.returncode == 0, full.stderr
    killed_running = 0
    for _ in range(KILLS):
        proc = start_cli(lay, "collect", "--config", str(policy), "--from-scratch")
        time.sleep(rng.uniform(0.05, duration))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_running += 1
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        assert stored_jobs(store) == jobs
        assert month_report(lay, policy, site["month"]) == good
    assert killed_running >= KILLS * 2 // 3, f"only {killed_running} kills hit a running run"
    proc = cli(lay, "collect", "--config", str(policy))
    assert proc.returncode == 0, proc.stderr
    assert stored_jobs(store) == jobs
    assert month_report(lay, policy, site["month"]) == good
    print(f"SIGKILL: {killed_running} of {KILLS} kills hit a running collection of "
          f"{len(jobs):,} jobs (a full one takes {duration:.1f} s); the store was intact "
          "after each")
