"""GPUs per node from the node inventory, on a real cluster of mixed node types: two
4-GPU nodes (gpu01, gpu02) and two 8-GPU nodes (gpu03, gpu04), 24 GPUs.

A maintenance reservation on gpu03, which has no down event, counts its own 8 GPUs
(before, the cluster's average of 6), and a down event on gpu01 counts its 4 GPUs and
still equals sreport's down time. The events and the reservation go into slurmdbd's
tables as the backfill writes them, and slurmdbd rolls them up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collector import clock
from collector.config import load
from collector.engine import periods
from collector.engine.report import build_report
from collector.store.database import Store
from testcluster import backfill
from testcluster.history import NODE_DOWN, History, Maintenance, NodeOutage
from testcluster.layout import Layout
from testcluster.policy import policy_text

from .conftest import BASE_PORT, make_run_dir, running_cluster, slurm
from .test_collector import gpu_usage, sreport_utilization

pytestmark = pytest.mark.integration
H, DAY = 3600, 86400


@pytest.fixture(scope="module")
def mixed():
    with running_cluster(Layout(make_run_dir("gpu-usage-mixed-"), BASE_PORT + 1400),
                         "--node-gpus", "4,4,8,8") as lay:
        yield lay


@pytest.fixture(scope="module")
def window(mixed):
    """Two whole UTC days before today: gpu01 down 02:00-08:00 on the first, gpu03 in
    maintenance 06:00-16:00 on the second."""
    now = int(clock.now())
    start = now - now % DAY - 2 * DAY
    outage = NodeOutage("gpu01", start + 2 * H, start + 8 * H, NODE_DOWN, "test: PSU")
    maint = Maintenance("maint-gpu03", start + DAY + 6 * H, start + DAY + 16 * H,
                        nodes="gpu03")
    backfill.write(mixed, History(start, start + 2 * DAY, outages=[outage],
                                  maintenance=[maint]), lambda *_: None)
    return start, start + 2 * DAY


@pytest.fixture(scope="module")
def collected(mixed, window, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    path = tmp / "facility.toml"
    path.write_text(policy_text(window[0], tmp / "store", "UTC"))
    gpu_usage(mixed, "collect", "--config", str(path))
    return load(path)


def test_the_nodes_have_their_own_gpus(mixed):
    out = slurm(mixed, "sinfo", "--noheader", "--Node", "-O", "NodeList:|,Gres:")
    gres = dict(line.split("|")[:2] for line in out.split())
    assert gres == {"gpu01": "gpu:h100:4", "gpu02": "gpu:h100:4", "gpu03": "gpu:h100:8",
                    "gpu04": "gpu:h100:8"}


def test_the_collection_records_the_node_inventory(collected):
    from collector.store import reads
    with Store.open_reader(collected.store.path) as store:
        inventory = reads.node_gpus(store, collected.slurm.clusters[0])
    assert {n: [g for _, _, g in seen] for n, seen in inventory.items()} == {
        "gpu01": [4], "gpu02": [4], "gpu03": [8], "gpu04": [8]}


def test_maintenance_on_an_8_gpu_node_counts_8_gpus_and_down_equals_sreport(
        mixed, window, collected):
    start, end = window
    first = datetime.fromtimestamp(start, UTC).date()
    last = datetime.fromtimestamp(end - 1, UTC).date()
    period = periods.custom(first, last, "UTC")
    with Store.open_reader(collected.store.path) as store:
        rep = build_report(store, collected, period, now=clock.now())
    cap = rep.capacity
    assert cap.gpus == 24 and cap.nominal_s == 24 * 2 * DAY
    assert cap.planned_down_s == 8 * 10 * H          # gpu03's own GPUs, not the average 6
    assert cap.down_s == 4 * 6 * H                   # gpu01's 4 GPUs
    assert cap.available_s == cap.nominal_s - cap.down_s - cap.planned_down_s
    assert rep.data_quality.nodes_without_inventory == ()
    fmt = "%Y-%m-%dT%H:%M:%S"
    theirs = sreport_utilization(mixed, datetime.fromtimestamp(start, UTC).strftime(fmt),
                                 datetime.fromtimestamp(end, UTC).strftime(fmt))
    assert theirs["down"] == cap.down_s // 60 and theirs["reported"] == cap.nominal_s // 60
