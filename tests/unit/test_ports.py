"""Test-cluster ports: outside the ephemeral range, checked free before a daemon
starts (naming who holds a taken one), and errors that carry a command's output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testcluster import ports, processes
from testcluster.layout import DEFAULT_BASE_PORT, Layout
from testcluster.processes import ClusterError, Daemon


def range_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ip_local_port_range"
    path.write_text(text)
    return path


def test_the_range_is_read_from_proc_or_defaults(tmp_path):
    assert ports.ephemeral_range(range_file(tmp_path, "40000\t50000\n")) == (40000, 50000)
    assert ports.ephemeral_range(tmp_path / "absent") == ports.DEFAULT_EPHEMERAL
    assert ports.ephemeral_range(range_file(tmp_path, "garbage")) == ports.DEFAULT_EPHEMERAL


def test_a_base_port_inside_the_range_is_refused_with_the_range_and_the_fix(tmp_path):
    path = range_file(tmp_path, "32768 60999")
    with pytest.raises(ClusterError) as err:
        ports.check_outside_ephemeral(Layout(tmp_path, 46800).ports, "the cluster", path)
    msg = str(err.value)
    assert "46806" in msg and "ephemeral port range 32768-60999" in msg
    assert str(path) in msg and "--base-port" in msg
    # One derived port over the edge is enough to refuse.
    with pytest.raises(ClusterError, match="32768"):
        ports.check_outside_ephemeral(Layout(tmp_path, 32768 - 101).ports, "x", path)


@pytest.mark.parametrize("base", [DEFAULT_BASE_PORT, 26800, 26800 + 200 * 4, 26800 + 1200])
def test_the_demo_and_test_clusters_ports_are_below_the_default_range(tmp_path, base):
    ports.check_outside_ephemeral(Layout(tmp_path, base).ports, "cluster",
                                  range_file(tmp_path, "32768 60999"))
    assert max(Layout(tmp_path, base).ports) < ports.POOL[0]


def test_free_ports_are_below_the_range_and_never_handed_out_twice():
    low = ports.ephemeral_range()[0]
    got = [ports.free_port() for _ in range(5)]
    assert len(set(got)) == 5
    assert all(ports.POOL[0] <= p < min(ports.POOL[1] + 1, low) for p in got)


def test_a_taken_port_names_the_process_that_holds_it():
    port = ports.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert not ports.is_free(port)
        me = Path("/proc/self/comm").read_text().strip()
        assert ports.holder(port) == f"pid {os.getpid()} ({me})"
        with pytest.raises(ClusterError, match=rf"port {port} for slurmdbd is taken by pid "
                                               rf"{os.getpid()} "):
            ports.ensure_free([port], "slurmdbd")
    assert ports.is_free(port) and ports.holder(port) is None


def test_a_daemon_whose_port_is_taken_is_not_started(tmp_path):
    port = ports.free_port()
    for d in ("pid", "log"):
        (tmp_path / d).mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        daemon = Daemon("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                        dict(os.environ), (port,))
        with pytest.raises(ClusterError, match=f"port {port} for sleeper"):
            processes.start(daemon, tmp_path, tmp_path / "pid", tmp_path / "log")
    assert not (tmp_path / "pid" / "sleeper.pid").exists()
    assert processes.marked_processes(tmp_path) == set()


def test_a_failed_command_shows_its_stdout_and_stderr():
    # mariadb-install-db explains a host name that does not resolve on stdout only.
    proc = subprocess.run([sys.executable, "-c", "import sys; print('Neither host x nor "
                           "localhost could be looked up'); print('hint', file=sys.stderr); "
                           "sys.exit(1)"], capture_output=True, text=True, check=False)
    msg = str(processes.failed("mariadb-install-db", proc))
    assert msg.startswith("mariadb-install-db failed (exit 1)")
    assert "stdout:\n  Neither host x nor localhost could be looked up" in msg
    assert "stderr:\n  hint" in msg
    silent = subprocess.CompletedProcess(["x"], 3, "", "")
    assert str(processes.failed("x", silent)) == "x failed (exit 3)\nno output"
