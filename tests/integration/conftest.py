"""A real Slurm test cluster for the integration tests, started from nothing.

It gets its own run directory and base port, so it runs beside a demo cluster.
Slurm, munge and MariaDB are not optional here: the README's test command
installs them, and their absence is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testcluster import processes
from testcluster.cluster import REQUIRED_PROGRAMS
from testcluster.layout import Layout

BASE_PORT = int(os.environ.get("GPU_USAGE_TEST_PORT", "26800"))


def run_cli(*args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    """Run `gpu-usage ARGS` (or, for `cluster ARGS`, the test cluster's own command
    `python -m testcluster ARGS`) as a separate process; fail with its output if it
    fails."""
    module = "collector"
    if args and args[0] == "cluster":
        module, args = "testcluster", args[1:]
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        pytest.fail(f"python -m {module} {' '.join(args)} exited {proc.returncode}:\n"
                    f"{proc.stdout}\n{proc.stderr}")
    return proc


def slurm(lay: Layout, *argv: str) -> str:
    env = dict(lay.env(), TZ="UTC")
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
    return proc.stdout


def make_run_dir(prefix: str) -> Path:
    # Job users must read slurm.conf and reach the munge socket: not a 0700 pytest dir.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def some_history(lay: Layout, cli_args: tuple[str, ...]):
    """The spec of the cluster's last backfill; a small one (1 month, 2,000 jobs) is
    made first when a test module runs alone."""
    from testcluster import backfill
    from testcluster.cluster import ClusterError
    try:
        return backfill.recorded_spec(lay)
    except ClusterError:
        run_cli("cluster", "backfill", *cli_args, "--months", "1", "--jobs", "2000")
        return backfill.recorded_spec(lay)


def assert_nothing_left(lay: Layout) -> None:
    left = processes.marked_processes(lay.run_dir)
    assert not left, f"processes left after down: {sorted(left)}"


@pytest.fixture(scope="session")
def lay() -> Iterator[Layout]:
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.fail(f"Slurm/MariaDB programs missing: {missing}; run scripts/setup-debian.sh")
    if os.geteuid() != 0:
        pytest.fail("the integration tests start daemons and create Unix users: run as root")
    with running_cluster(Layout(make_run_dir("gpu-usage-it-"), BASE_PORT)) as layout:
        yield layout


@contextmanager
def running_cluster(lay: Layout, *up_args: str) -> Iterator[Layout]:
    """The cluster of `lay` up (with `up_args`, e.g. --node-gpus), then down, checked to
    leave no process behind, and its run dir removed."""
    args = ("--run-dir", str(lay.run_dir), "--base-port", str(lay.base_port))
    try:
        run_cli("cluster", "up", *args, *up_args)
        yield lay
    finally:
        run_cli("cluster", "down", *args)
        assert_nothing_left(lay)
        shutil.rmtree(lay.run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cli_args(lay: Layout) -> tuple[str, ...]:
    return ("--run-dir", str(lay.run_dir), "--base-port", str(lay.base_port))
