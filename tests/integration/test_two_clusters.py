"""A facility of two clusters on one slurmdbd: the test cluster's second cluster
(testai2: its own slurmctld and four slurmd nodes, registered with testai's slurmdbd)
beside testai. `gpu-usage` collects both into one store; each cluster's figures equal
sreport's for that cluster, and the facility's are their sum."""

from __future__ import annotations

import json
import time

import pytest

from testcluster import backfill, history
from testcluster.policy import policy_text

from .conftest import run_cli, slurm, some_history
from .test_collector import assert_accounts_equal_sreport, gpu_usage

pytestmark = pytest.mark.integration
CLUSTERS = ("testai", "testai2")


@pytest.fixture(scope="module")
def two(lay, cli_args, tmp_path_factory):
    """Both clusters up, testai2 backfilled over testai's months, both collected."""
    first = some_history(lay, cli_args)
    run_cli("cluster", "up", *cli_args, "--second-cluster")
    start = time.strftime("%Y-%m", time.gmtime(first.start))
    run_cli("cluster", "backfill", *cli_args, "--second-cluster", "--start", start,
            "--months", str(first.months), "--jobs", "3000", "--seed", "5")
    assert backfill.recorded_spec(lay.second).start == first.start
    path = tmp_path_factory.mktemp("two") / "facility.toml"
    text = policy_text(first.start, path.parent / "store", "UTC")
    assert 'cluster = "testai"' in text
    path.write_text(text.replace('cluster = "testai"', 'clusters = ["testai", "testai2"]'))
    out = gpu_usage(lay, "collect", "--quiet", "--config", str(path)).stdout
    assert "collected testai:" in out and "collected testai2: " in out
    return path, first


def _months(spec) -> list[tuple[str, str, str]]:
    return [(time.strftime("%Y-%m", time.gmtime(history.add_months(spec.start, i))),
             history.day(history.add_months(spec.start, i)),
             history.day(history.add_months(spec.start, i + 1))) for i in range(spec.months)]


def _report(lay, policy, month: str, *cluster: str) -> dict:
    return json.loads(gpu_usage(lay, "report", "--config", str(policy), "--month", month,
                                "--format", "json", *(("--cluster", *cluster) if cluster
                                                      else ())).stdout)


def _sreport_accounts(lay, cluster: str, start: str, end: str) -> dict[str, int]:
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "AccountUtilizationByUser", f"start={start}", f"end={end}",
                f"cluster={cluster}")
    minutes = {}
    for line in out.splitlines():
        name, account, login, _, _, used = line.split("|")
        assert name == cluster
        if not login:
            minutes[account] = int(used)
    return minutes


def _sreport_down(lay, cluster: str, start: str, end: str) -> int:
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "utilization", f"start={start}", f"end={end}", f"cluster={cluster}")
    name, _, _allocated, down, *_ = out.strip().split("|")
    assert name == cluster
    return int(down)


def test_each_cluster_equals_sreport_and_the_facility_is_their_sum(lay, two):
    policy, spec = two
    for month, start, end in _months(spec):
        whole = _report(lay, policy, month)
        per = {c: _report(lay, policy, month, c) for c in CLUSTERS}
        for cluster, got in per.items():
            assert got["cluster"] == cluster
            reported = _sreport_accounts(lay, cluster, start, end)
            assert reported["root"] > 0, (cluster, month)
            assert_accounts_equal_sreport(got, reported)
            assert abs(got["capacity"]["down_gpu_hours"] * 60
                       - _sreport_down(lay, cluster, start, end)) <= 1
        assert per["testai"]["capacity"]["allocated_gpu_hours"] != \
            per["testai2"]["capacity"]["allocated_gpu_hours"]       # two different histories
        for key in ("allocated_gpu_hours", "available_gpu_hours", "nominal_gpu_hours",
                    "down_gpu_hours", "gpus"):
            assert whole["capacity"][key] == pytest.approx(
                sum(p["capacity"][key] for p in per.values()), abs=0.002), key
        for i, category in enumerate(whole["categories"]):
            parts = [p["categories"][i] for p in per.values()]
            assert category["gpu_hours"] == pytest.approx(
                sum(p["gpu_hours"] for p in parts), abs=0.002), category["category"]
            assert category["quota_gpu_hours"] == pytest.approx(
                sum(p["quota_gpu_hours"] for p in parts), abs=0.002), category["category"]
        assert [c["cluster"] for c in whole["clusters"]] == list(CLUSTERS)
        assert [c["gpus"] for c in whole["clusters"]] == [16, 16]


def test_verify_checks_each_cluster_against_its_own_sreport(lay, two):
    policy, spec = two
    month = _months(spec)[0][0]
    out = gpu_usage(lay, "verify", "--config", str(policy), "--month", month).stdout
    for cluster in CLUSTERS:
        assert f"{month} on {cluster}: " in out
    assert out.count("0 differ by more than 1 GPU-minute") == 2


def test_each_clusters_nodes_are_its_own(lay, two):
    """The collection read each cluster's nodes from its own slurmctld (sinfo -M)."""
    from collector.config import load
    from collector.store import reads
    from collector.store.database import Store

    policy, _ = two
    with Store.open_reader(load(policy).store.path) as store:
        assert sorted(reads.node_gpus(store, "testai")) == lay.nodes
        assert sorted(reads.node_gpus(store, "testai2")) == lay.second.nodes
