"""squeue and sinfo parsing on output recorded from the real test cluster of every Slurm
release (`python -m testcluster record-fixtures`: jobs running and pending, one node
drained; one folder per release under tests/fixtures/) and on malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.slurm.live_parser import (
    NodeGpus,
    parse_gres_gpus,
    parse_sinfo,
    parse_squeue,
)

RELEASES = sorted((Path(__file__).parents[1] / "fixtures").glob("slurm-*"))


@pytest.fixture(scope="module", params=RELEASES, ids=lambda p: p.name)
def release(request):
    return request.param


@pytest.fixture(scope="module")
def live(release):
    return json.loads((release / "live.json").read_text())


@pytest.fixture(scope="module")
def jobs(release):
    parsed, rejected = parse_squeue((release / "squeue-live.txt").read_text())
    assert rejected == []
    return parsed


# The GPUs follow from each live submission's sbatch options (testcluster/fixtures.py
# LIVE_JOBS), the same on every release; live.json names each one's job id.
def test_running_jobs_hold_their_gpus_totalled_over_nodes(jobs, live):
    by_id = {j.job_id: j for j in jobs}
    two = by_id[live["jobs"]["live-gpus"]]
    assert (two.state, two.account, two.gpus, two.gpu_type, two.holding) == \
        ("RUNNING", "ehpc_llm01", 2, "h100", True)
    multi = by_id[live["jobs"]["live-multi-node"]]
    assert (multi.gpus, multi.nodes) == (4, 2)            # --gpus-per-node=2 on 2 nodes
    assert by_id[live["jobs"]["live-gres"]].gpus == 1     # --gres=gpu:h100:1


def test_array_tasks_each_count_and_pending_jobs_show_what_they_ask_for(jobs, live):
    by_id = {j.job_id: j for j in jobs}
    array = [j for j in jobs if j.account == by_id[live["jobs"]["live-array"]].account]
    assert len(array) == 3 and all(j.holding and j.gpus == 1 for j in array)
    pending = {label: by_id[live["jobs"][label]] for label in ("live-pending", "live-held")}
    assert all(j.state == "PENDING" for j in pending.values())
    cpu = by_id[live["jobs"]["live-cpu"]]   # CPU only: the backfill may start it
    assert cpu.gpus == 0 and cpu.state in ("PENDING", "RUNNING")
    if cpu.state == "PENDING":
        pending["live-cpu"] = cpu
    waiting = live["jobs"].get("live-array-pending")   # recorded since 25.11.7
    if waiting:   # --array=0-3 --gpus=4, all waiting: a line per task, the array's id
        tasks = [j for j in jobs if j.job_id == waiting]
        assert len(tasks) == 4 and all(j.state == "PENDING" and j.gpus == 4 for j in tasks)
    assert {j.job_id for j in jobs if j.state == "PENDING"} == {
        j.job_id for j in pending.values()} | ({waiting} if waiting else set())
    assert pending["live-pending"].gpus == 8              # waiting for resources
    assert pending["live-held"].gpus == 2                 # held; 2 tasks x 1 GPU
    assert not any(j.holding for j in pending.values())
    assert sum(j.gpus for j in jobs if j.holding) == 2 + 4 + 1 + 3


def test_nodes_are_counted_once_with_gpus_type_and_availability(release, live):
    nodes, rejected = parse_sinfo((release / "sinfo-live.txt").read_text())
    assert rejected == []
    assert [n.node for n in nodes] == ["gpu01", "gpu02", "gpu03", "gpu04"]
    assert all(n.gpus == 4 and n.gpu_type == "h100" and n.partitions == ("gpu",)
               for n in nodes)
    assert [n.node for n in nodes if not n.available] == [live["drained"]]


@pytest.mark.parametrize(("state", "available"), [
    ("idle", True), ("mixed", True), ("allocated", True), ("draining", True),
    ("drained", False), ("down*", False), ("idle*", False), ("maint", False),
    ("reserved", True), ("idle~", True), ("fail", False), ("mixed+drain", True),
    ("idle+drain", True), ("down+drain", False), ("planned", True), ("inval", False),
    ("reboot^", False), ("mixed^", True), ("reboot", True),
])
def test_node_states(state, available):
    assert NodeGpus("n1", state, 4, "h100").available is available


def test_a_node_in_two_partitions_is_one_node():
    text = "n1|gpu*|idle|gpu:a100:8(S:0-1)|\nn1|long|idle|gpu:a100:8(S:0-1)|\n"
    nodes, _ = parse_sinfo(text)
    assert nodes == [NodeGpus("n1", "idle", 8, "a100", ("gpu", "long"))]


@pytest.mark.parametrize(("gres", "expected"), [
    ("gpu:h100:4", (4, "h100")), ("gpu:4", (4, "")), ("gpu:h100:4(S:0-1)", (4, "h100")),
    ("gpu:a100:2,gpu:h100:2", (4, "")), ("(null)", (0, "")), ("", (0, "")),
    ("shard:8,gpu:h100:4", (4, "h100")),
])
def test_gres_gpus(gres, expected):
    assert parse_gres_gpus(gres) == expected


@pytest.mark.parametrize(("line", "reason"), [
    ("1|RUNNING|acct|gpu|gres/gpu=2|", "fields"),
    ("1|RUNNING|acct|gpu|gres/gpu=two|1|", "gres/gpu"),
    ("1|RUNNING|acct|gpu|gres/gpu=2|x|", "NumNodes"),
])
def test_malformed_squeue_lines_are_rejected_with_the_reason(line, reason):
    good = "2|RUNNING|acct|gpu|cpu=1,gres/gpu=1|1|"
    jobs, rejected = parse_squeue(f"{good}\n{line}\n")
    assert [j.job_id for j in jobs] == ["2"]
    assert len(rejected) == 1 and reason in rejected[0].reason and rejected[0].line_no == 2


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="\n\r\x0b\x0c\x1c\x1d"
                                                                    "\x1e\x85\u2028\u2029"),
                        max_size=60), max_size=20))
def test_any_squeue_or_sinfo_text_is_read_or_rejected_never_crashes(lines):
    text = "\n".join(lines)
    count = sum(1 for line in lines if line.strip())
    jobs, rejected = parse_squeue(text)
    assert len(jobs) + len(rejected) == count
    nodes, rejected = parse_sinfo(text)
    assert len(nodes) <= count - len(rejected)
