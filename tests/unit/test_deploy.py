"""The files in deploy/: Prometheus config and rules pass promtool (and the rules'
own unit tests), every metric the rules and the Grafana dashboard query is one the
exporter serves, and the systemd units pass `systemd-analyze verify`, are sandboxed
to an exposure of at most 3.0 (`systemd-analyze security`), and call gpu-usage with
arguments it accepts. promtool (Debian's prometheus package) and systemd-analyze are
installed by the README's test command; their absence fails."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.cli import main
from collector.collect import collect

from . import fakeslurm
from .test_exporter import FIXTURES, NOW, exporter_for

DEPLOY = Path(__file__).parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
SYSTEMD = DEPLOY / "systemd"
METRIC = re.compile(r"\bgpu_usage_[a-z0-9_]+")


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} not found: run scripts/setup-debian.sh (it installs it)")
    return path


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[str]:
    """Every sample name of a full scrape (store, squeue and sinfo all answering)."""
    tmp = tmp_path_factory.mktemp("served")
    settings, env = fakeslurm.make(tmp, *fakeslurm.gpu_use_jobs())   # GPU use from steps
    data = Path(env["FAKE_SLURM_DIR"])
    shutil.copy(FIXTURES / "squeue-live.txt", data / "squeue.txt")
    shutil.copy(FIXTURES / "sinfo-live.txt", data / "sinfo.txt")
    collect(settings, now=NOW, env=env)
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    text = generate_latest(registry).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_promtool_accepts_the_config_and_the_rules():
    promtool = need("promtool")
    for argv in (["check", "config", "prometheus.yml"],
                 ["check", "rules", "gpu-usage-rules.yml"]):
        proc = run([promtool, *argv], cwd=PROMETHEUS)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_fires_when_it_should_and_not_before():
    proc = run([need("promtool"), "test", "rules", "gpu-usage-rules.test.yml"], cwd=PROMETHEUS)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def rule_metrics() -> set[str]:
    text = (PROMETHEUS / "gpu-usage-rules.yml").read_text()
    exprs = [line for line in text.splitlines() if not line.strip().startswith("#")]
    return set(METRIC.findall("\n".join(exprs)))


def test_the_rules_query_only_metrics_the_exporter_serves(served):
    used = rule_metrics()
    assert {"gpu_usage_category_quota_used_ratio", "gpu_usage_allocation_consumed_ratio",
            "gpu_usage_collection_last_success_timestamp_seconds"} <= used
    assert used - served == set()


def test_every_alert_the_issue_asks_for_is_there():
    text = (PROMETHEUS / "gpu-usage-rules.yml").read_text()
    alerts = set(re.findall(r"- alert: (\w+)", text))
    assert {"GpuUsageCategoryOverQuota", "GpuUsageAllocationNearlyUsedUp",
            "GpuUsageAllocationProjectedUnused", "GpuUsageCollectorStale",
            "GpuUsageUtilisationLow"} <= alerts


def grafana_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "gpu-usage-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_the_grafana_dashboard_queries_only_metrics_the_exporter_serves(served):
    exprs = grafana_exprs()
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert len(exprs) >= 15 and len(used) >= 15
    assert used - served == set()


def test_the_grafana_dashboard_covers_quota_allocations_gpus_now_utilisation_and_health():
    text = " ".join(grafana_exprs())
    for metric in ("category_quota_used_ratio", "gpus_allocated", "allocation_consumed_ratio",
                   "month_utilisation_ratio", "collection_last_success_timestamp_seconds",
                   "exporter_source_up"):
        assert f"gpu_usage_{metric}" in text, metric


def units() -> list[Path]:
    return sorted([*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")])


def test_systemd_units_verify(tmp_path):
    analyze = need("systemd-analyze")
    gpu_usage = shutil.which("gpu-usage") or str(Path(__file__).parents[2] / ".venv" / "bin" /
                                                 "gpu-usage")
    for unit in units():
        text = unit.read_text().replace("/opt/gpu-usage/bin/gpu-usage", gpu_usage)
        text = text.replace("/etc/gpu-usage/gpu-usage.env", str(SYSTEMD / "gpu-usage.env"))
        text = re.sub(r"^(User|Group)=.*$", "", text, flags=re.M)  # no such user here
        (tmp_path / unit.name).write_text(text)
    proc = run([analyze, "verify", *(str(tmp_path / u.name) for u in units())])
    assert proc.returncode == 0, proc.stderr
    assert "ignoring" not in proc.stderr, proc.stderr


# `systemd-analyze security`: 0 is fully sandboxed, 10 fully exposed; the units
# shipped before the sandbox scored 8.5.
MAX_EXPOSURE = 3.0
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+(?:\.\d+)?)")
MEMORY_MAX = {"gpu-usage-collect.service": "2G", "gpu-usage-dashboard.service": "2G",
              "gpu-usage-exporter.service": "1G", "gpu-usage-report.service": "1G"}
LOOPBACK_ONLY = {"gpu-usage-dashboard.service", "gpu-usage-exporter.service"}


def services() -> list[Path]:
    return sorted(SYSTEMD.glob("*.service"))


def test_every_service_is_sandboxed_to_an_exposure_of_3_or_lower():
    # --offline reads the unit file alone: no running systemd, user or ExecStart needed.
    # --threshold is in tenths; above it the command exits 1.
    analyze = need("systemd-analyze")
    scores: dict[str, float] = {}
    problems = []
    for unit in services():
        proc = run([analyze, "security", "--offline=yes",
                    f"--threshold={round(MAX_EXPOSURE * 10)}", str(unit)])
        found = EXPOSURE.search(proc.stdout)
        assert found is not None and found[1] == unit.name, proc.stdout[-3000:] + proc.stderr
        scores[unit.name] = float(found[2])
        if proc.returncode != 0 or "ignoring" in proc.stderr:
            problems.append(f"{unit.name} exit {proc.returncode}: {proc.stderr.strip()}")
    table = ", ".join(f"{name} {score:.1f}" for name, score in scores.items())
    assert set(scores) == set(MEMORY_MAX), table
    assert max(scores.values()) <= MAX_EXPOSURE and not problems, (
        f"overall exposure (at most {MAX_EXPOSURE}): {table}; " + "; ".join(problems))


def directives(unit: Path) -> dict[str, list[str]]:
    """Every value of each key (a key may repeat, as SystemCallFilter= does)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_services_keep_their_files_private_and_slurm_reachable():
    for unit in services():
        name, d = unit.name, directives(unit)
        # The store and the reports hold every user's jobs.
        assert d.get("UMask") == ["0077"] and d.get("StateDirectoryMode") == ["0750"], name
        assert d.get("User") == ["gpu-usage"], name
        assert d.get("WorkingDirectory") == ["/var/lib/gpu-usage"], name
        assert d.get("MemoryMax") == [MEMORY_MAX[name]], name
        # munge's UNIX socket; slurmctld and slurmdbd over TCP.
        assert d.get("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"], name
        if name in LOOPBACK_ONLY:  # they listen on loopback
            assert d.get("IPAddressDeny") == ["any"], name
            assert d.get("IPAddressAllow") == ["localhost"], name
        else:  # slurmdbd and slurmctld may be on other hosts
            assert "IPAddressDeny" not in d and "IPAddressAllow" not in d, name
    assert directives(SYSTEMD / "gpu-usage-collect.service").get("SuccessExitStatus") == ["75"]


def _leaf(args: list[str]) -> tuple[click.Command, list[str]]:
    cmd: click.Command = main
    while isinstance(cmd, click.Group):
        name, args = args[0], args[1:]
        cmd = cmd.get_command(click.Context(cmd), name)
        assert cmd is not None, name
    return cmd, args


def test_units_call_gpu_usage_with_arguments_it_accepts_and_name_the_config_once():
    calls = 0
    for unit in units():
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        text = unit.read_text()
        # ExecStart may repeat (oneshot); configparser keeps the last, so read them by hand.
        for line in re.findall(r"^ExecStart=(.*)$", text, flags=re.M):
            argv = shlex.split(line)
            assert argv[0] == "/opt/gpu-usage/bin/gpu-usage"
            cmd, args = _leaf(argv[1:])
            cmd.make_context(cmd.name, list(args))  # raises on an unknown option or value
            assert "--config" not in args  # the path lives in gpu-usage.env only
            calls += 1
        if unit.suffix == ".service":
            parser.read_string(text)
            assert parser["Service"]["EnvironmentFile"] == "/etc/gpu-usage/gpu-usage.env"
    assert calls == 9  # collect, five report formats, verify, exporter, dashboard
    env = (SYSTEMD / "gpu-usage.env").read_text()
    assert "GPU_USAGE_CONFIG=/etc/gpu-usage/facility.toml" in env
