"""A second cluster comes up from nothing beside the first, keeps its data across
down/up, and `down` leaves no process behind."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from testcluster.layout import Layout

from .conftest import BASE_PORT, assert_nothing_left, make_run_dir, run_cli, slurm

pytestmark = pytest.mark.integration


def test_up_down_up_keeps_data_and_down_leaves_nothing(lay):
    other = Layout(make_run_dir("gpu-usage-lc-"), BASE_PORT + 1000)
    args = ("--run-dir", str(other.run_dir), "--base-port", str(other.base_port))
    try:
        run_cli("cluster", "up", *args)
        job = subprocess.run(
            ["runuser", "-u", "anna", "--", "sbatch", "--parsable", "-A", "ehpc_llm01",
             "--gpus=1", "-t", "1", f"--chdir={other.jobs_dir}", "-o", "/dev/null",
             "--wait", "--wrap", "sleep 1"],
            env=other.env(), capture_output=True, text=True, timeout=120, check=True,
        ).stdout.strip()
        out = run_cli("cluster", "down", *args).stdout
        assert "processes stopped" in out
        assert_nothing_left(other)
        status = subprocess.run([sys.executable, "-m", "collector", "cluster", "status", *args],
                                capture_output=True, text=True, check=False)
        assert status.returncode == 3 and "running" not in status.stdout
        # The first cluster is untouched by the second one's down.
        assert slurm(lay, "scontrol", "ping").count("UP") == 1
        run_cli("cluster", "up", *args)
        out = slurm(other, "sacct", "-X", "-n", "-P", "-j", job, "-o", "state,alloctres")
        assert out.startswith("COMPLETED|") and "gres/gpu=1" in out
    finally:
        run_cli("cluster", "down", *args)
        assert_nothing_left(other)
        shutil.rmtree(other.run_dir, ignore_errors=True)
