"""A real Prometheus server (Debian's package) scrapes `gpu-usage exporter` running on
the test cluster's data, with the shipped alert rules loaded; its HTTP API must
return the report's numbers for the same month at the same moment, the live GPUs
of a job running now, and the alerts that the report's figures call for."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from collector import clock
from collector.config import load
from collector.engine import periods
from collector.engine.report import build_report
from collector.store.database import Store
from testcluster import workload
from testcluster.ports import free_port

from .conftest import slurm, some_history
from .test_collector import gpu_usage, write_policy

pytestmark = pytest.mark.integration
RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "gpu-usage-rules.yml"
H = 3600


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what: str, probe, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{what} not within {timeout_s:.0f} s (last: {last})")


@pytest.fixture(scope="module")
def spec(lay, cli_args):
    return some_history(lay, cli_args)


@pytest.fixture(scope="module")
def month_now(spec) -> int:
    """The exporter's "now" for its month figures: the last hour of the history's last
    month, so "this month" is a whole month of known history on any day the test runs
    (the live figures, from squeue and sinfo, stay real)."""
    return spec.end - H


@pytest.fixture(scope="module")
def policy(spec, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prometheus")
    path = write_policy(tmp, spec.start)
    text = path.read_text()
    assert "live_refresh_s = 30" in text
    path.write_text(text.replace("live_refresh_s = 30", "live_refresh_s = 1"))
    return path


@pytest.fixture(scope="module")
def running_job(lay):
    """A 2-GPU job of ehpc_llm01 (eu_science) running while Prometheus scrapes."""
    sub = workload.Submission("prom-live", "anna", "ehpc_llm01", ("--gpus=2",), "sleep 600")
    job_id = workload.submit(lay, sub)
    wait_for("the job to run", lambda: slurm(lay, "squeue", "-h", "-j", job_id, "-o", "%T")
             .strip() == "RUNNING", 60)
    yield job_id
    slurm(lay, "scancel", job_id)
    workload.wait_idle(lay)


@pytest.fixture(scope="module")
def prom(lay, policy, running_job, month_now, tmp_path_factory):
    """Collect (the running job included), start the exporter and Prometheus."""
    gpu_usage(lay, "collect", "--config", str(policy))
    tmp = tmp_path_factory.mktemp("prom-server")
    exporter_port, prom_port = free_port(), free_port()
    shutil.copy(RULES, tmp / RULES.name)
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{RULES.name}]\n"
        "scrape_configs:\n  - job_name: gpu-usage\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n")
    with open(tmp / "exporter.log", "w") as exporter_log, \
            open(tmp / "prometheus.log", "w") as prometheus_log:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "collector", "exporter", "--config", str(policy),
             "--address", "127.0.0.1", "--port", str(exporter_port)],
            env=dict(lay.env(), **{clock.ENV: str(month_now)}),
            stdout=subprocess.DEVNULL, stderr=exporter_log)
        server = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus",
             f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=prometheus_log)
        base = f"http://127.0.0.1:{prom_port}"
        try:
            wait_for("Prometheus to hold the exporter's figures",
                     lambda: query(base, "gpu_usage_month_available_gpu_seconds")
                     and query(base, 'gpu_usage_exporter_source_up{source="squeue"} == 1')
                     and query(base, "sum(gpu_usage_gpus_allocated) > 0"))
            yield base
        finally:
            for proc in (server, exporter):
                proc.terminate()
                proc.wait(timeout=30)


def query(base: str, promql: str) -> list[dict]:
    data = get_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert data["status"] == "success", data
    return data["data"]["result"]


def by(base: str, promql: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in query(base, promql)}


def one(base: str, promql: str) -> float:
    result = query(base, promql)
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def same_moment(prom, policy, month_now):
    """The report of the exporter's month at the moment its view was made."""
    settings = load(policy)
    until = one(prom, "gpu_usage_month_data_until_timestamp_seconds")
    assert until == month_now
    with Store.open_reader(settings.store.path) as store:
        period = periods.parse_month("this", settings.facility.timezone, until)
        return build_report(store, settings, period, now=until)


def exact(gpu_s: float):
    """The exporter serves the typed report's GPU-seconds as they are (no hours and
    back); Prometheus keeps a float64, so the same float comes back."""
    return pytest.approx(gpu_s, rel=1e-12, abs=1e-9)


def test_month_capacity_and_utilisation_equal_the_report(prom, same_moment):
    cap = same_moment.capacity
    for key, value in (("nominal", cap.nominal_s), ("down", cap.down_s),
                       ("planned_down", cap.planned_down_s), ("available", cap.available_s),
                       ("allocated", cap.allocated_s)):
        assert one(prom, f"gpu_usage_month_{key}_gpu_seconds") == exact(value), key
    assert one(prom, "gpu_usage_month_utilisation_ratio") == exact(cap.utilisation)
    assert cap.allocated_s > 0


def test_categories_and_pools_against_quota_equal_the_report(prom, same_moment):
    used = by(prom, "gpu_usage_category_used_gpu_seconds", "category")
    quota = by(prom, "gpu_usage_category_quota_gpu_seconds", "category")
    ratio = by(prom, "gpu_usage_category_quota_used_ratio", "category")
    ytd = by(prom, "gpu_usage_category_year_used_gpu_seconds", "category")
    cats = {c.category: c for c in same_moment.categories}
    assert set(used) == set(cats) and len(cats) == 9
    for name, c in cats.items():
        assert used[name] == exact(c.used_s), name
        assert quota[name] == exact(c.quota_s), name
        if c.used_of_quota is not None:
            assert ratio[name] == exact(c.used_of_quota), name
        assert ytd[name] == exact(c.ytd_used_s), name
    assert sum(ytd.values()) >= sum(used.values()) > 0
    pools = by(prom, "gpu_usage_pool_used_gpu_seconds", "pool")
    assert pools == {p.pool: exact(p.used_s) for p in same_moment.pools}
    assert one(prom, "gpu_usage_commercial_share_of_pool_ratio") == \
        exact(same_moment.commercial.share_of_pool)


def test_allocations_equal_the_report(prom, same_moment):
    used = by(prom, "gpu_usage_allocation_used_gpu_seconds", "project")
    granted = by(prom, "gpu_usage_allocation_granted_gpu_seconds", "project")
    running = [a for a in same_moment.allocations if a.state in ("active", "new", "ended")]
    # The policy's allocations sit on the history (testcluster.policy): some run then.
    assert running and set(used) == {a.project for a in running}
    for a in running:
        assert used[a.project] == exact(a.used_total_s), a.project
        assert granted[a.project] == exact(a.granted_s), a.project


def test_gpus_now_come_from_the_running_cluster(prom):
    assert one(prom, "sum(gpu_usage_cluster_gpus)") == 16
    assert one(prom, "sum(gpu_usage_cluster_gpus_available)") == 16
    allocated = by(prom, "sum by (category) (gpu_usage_gpus_allocated)", "category")
    assert allocated["eu_science"] == 2 and sum(allocated.values()) == 2
    assert one(prom, 'gpu_usage_jobs_running{category="eu_science"}') == 1


def test_collector_health_is_scraped(prom, policy):
    assert one(prom, "gpu_usage_collections_total") >= 1
    assert one(prom, "gpu_usage_collection_errors_total") == 0
    assert one(prom, "gpu_usage_jobs_ingested_total") > 1000
    age = one(prom, "time() - gpu_usage_collection_last_success_timestamp_seconds")
    assert 0 <= age < 600


def test_the_shipped_rules_evaluate_and_alert_on_the_report_figures(prom, same_moment):
    groups = wait_for("the rules to be evaluated", lambda: [
        g for g in get_json(f"{prom}/api/v1/rules")["data"]["groups"]
        if all(r["lastEvaluation"] > "2000" for r in g["rules"])] or None)
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 12   # 2 recording rules, 10 alerts
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError"))
                                                     for r in rules if r["health"] != "ok"]
    expected = {a.project for a in same_moment.allocations
                if a.state in ("active", "new", "ended") and a.consumed > 0.9}
    over = {c.category for c in same_moment.categories if c.quota_state == "over"}
    # Pending alerts appear at the rule evaluation after the figures are scraped: ask
    # until they match (each rule is evaluated every second), then say what was seen.
    def alerting(name: str, label: str) -> set[str]:
        return {a["metric"][label] for a in query(prom, f'ALERTS{{alertname="{name}"}}')}
    deadline = time.monotonic() + 60
    while True:
        got = (alerting("GpuUsageAllocationNearlyUsedUp", "project"),
               alerting("GpuUsageCategoryOverQuota", "category"))
        if got == (expected, over) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert got == (expected, over)


def test_the_exporter_output_passes_promtool_check_metrics(prom, lay, policy):
    url = query(prom, 'up{job="gpu-usage"}')[0]["metric"]["instance"]
    with urllib.request.urlopen(f"http://{url}/metrics", timeout=10) as r:
        text = r.read()
    proc = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"],
                          input=text, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert b"anna" not in text  # no user names
