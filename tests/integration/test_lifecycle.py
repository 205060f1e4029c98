"""A second cluster comes up from nothing beside the first, keeps its data across
down/up, and `down` leaves no process behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from testcluster import ports, processes
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
        status = subprocess.run([sys.executable, "-m", "testcluster", "status", *args],
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


def test_a_failed_up_names_the_taken_port_and_stops_what_it_started(lay):
    """slurmdbd's port is held by another process: `up` fails at slurmdbd, names the
    port and the holder, and leaves no munged or MariaDB running; freed, `up` works."""
    other = Layout(make_run_dir("gpu-usage-fail-"), BASE_PORT + 1200)
    args = ("--run-dir", str(other.run_dir), "--base-port", str(other.base_port))
    holder = socket.socket()
    holder.bind(("127.0.0.1", other.slurmdbd_port))
    holder.listen()
    try:
        proc = subprocess.run([sys.executable, "-m", "testcluster", "up", *args],
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode != 0, proc.stdout
        assert f"port {other.slurmdbd_port} for slurmdbd is taken by pid {os.getpid()}" \
            in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert_nothing_left(other)   # munged and mariadbd were stopped again
        holder.close()
        run_cli("cluster", "up", *args)
        assert slurm(other, "scontrol", "ping").count("UP") == 1
    finally:
        holder.close()
        run_cli("cluster", "down", *args)
        assert_nothing_left(other)
        shutil.rmtree(other.run_dir, ignore_errors=True)


def test_a_base_port_in_the_ephemeral_range_is_refused_before_anything_starts(tmp_path):
    first, last = ports.ephemeral_range()
    run_dir = make_run_dir("gpu-usage-eph-")
    try:
        proc = subprocess.run([sys.executable, "-m", "testcluster", "up",
                               "--run-dir", str(run_dir), "--base-port", str(first + 100)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode != 0
        assert f"inside the ephemeral port range {first}-{last}" in proc.stderr, proc.stderr
        assert processes.marked_processes(run_dir) == set()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
