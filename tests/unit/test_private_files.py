"""Files that hold every user's jobs are private: the store directory, its database,
its lock and the written reports are created for their owner only, whatever umask
the operator's shell had."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from . import fakeslurm
from .dashboard_fixture import NOW, toml_of


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=lambda: os.umask(0o022))  # a shell's usual umask


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_lock_and_reports_are_owner_only(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    policy = tmp_path / "facility.toml"
    policy.write_text(toml_of({**fakeslurm.POLICY, "store": {"path": str(tmp_path / "store")}}))
    env = dict(env, GPU_USAGE_NOW=str(NOW))
    proc = run(env, "collect", "--quiet", "--config", str(policy))
    assert proc.returncode == 0, proc.stderr
    store = tmp_path / "store"
    assert mode(store) == 0o700
    files = [p for p in store.iterdir()]
    assert {p.name for p in files} >= {"gpu-usage.sqlite", "collect.lock"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    for fmt in ("json", "csv", "md", "pdf", "xlsx"):
        out = tmp_path / "reports" / f"2026-10.{fmt}"
        proc = run(env, "report", "--config", str(policy), "--month", "2026-10", "--format",
                   fmt, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert mode(out) == 0o600, fmt
    assert mode(tmp_path / "reports") == 0o700


def test_a_store_an_older_version_left_open_is_closed_to_others(tmp_path):
    from collector.store.database import Store

    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    store.chmod(0o755)
    (store / "gpu-usage.sqlite").write_bytes(b"")
    (store / "gpu-usage.sqlite").chmod(0o644)
    (store / "collect.lock").write_text("")
    (store / "collect.lock").chmod(0o664)
    with Store.open_writer(store):
        pass
    assert mode(store) == 0o700
    assert {p.name: mode(p) for p in store.iterdir() if p.is_file()} == \
        {p.name: 0o600 for p in store.iterdir() if p.is_file()}


def test_carriage_returns_from_slurm_stay_text(tmp_path):
    """No universal newlines on Slurm's output: a \\r in a job name is not a line end."""
    from collector.slurm.commands import _run

    script = tmp_path / "fake"
    script.write_text("#!/bin/sh\nprintf 'a\\rb\\r\\nc\\n'\n")
    script.chmod(0o755)
    assert _run([str(script)], "test", 10, dict(os.environ)) == "a\rb\r\nc\n"
