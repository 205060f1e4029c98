"""The pyslurm door's live view without pyslurm: its mapping fed with what pyslurm
25.11.2 gave on the real Slurm 25.11 test cluster, at the moment squeue and sinfo were
recorded (`python -m testcluster record-fixtures --live-only`: jobs running and
pending, one node drained). `pyslurm-live.json` holds the attributes the mapping reads
of each `pyslurm.Job` (`pyslurm.Jobs.load()`) and `pyslurm.Node` (`pyslurm.Nodes.load()`);
each becomes a stand-in object again, its TRES as pyslurm/db/tres.pyx builds them.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.slurm import pyslurm_source
from collector.slurm.live_parser import SQUEUE_STATES, NodeGpus, parse_sinfo, parse_squeue
from collector.slurm.pyslurm_source import (
    LIVE_JOB_FIELDS,
    NODE_FIELDS,
    parse_live_jobs,
    parse_live_nodes,
    sinfo_state,
)

from .test_pyslurm_mapping import _tres

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASES = sorted(p.parent for p in FIXTURES.glob("slurm-*/pyslurm-live.json"))


def _objects(release: Path) -> tuple[list, list]:
    """(pyslurm.Job stand-ins, pyslurm.Node stand-ins) of the recording."""
    data = json.loads((release / "pyslurm-live.json").read_text())
    jobs = [types.SimpleNamespace(**{**job, "allocated_tres": _tres(job["allocated_tres"]),
                                     "requested_tres": _tres(job["requested_tres"])})
            for job in data["jobs"].values()]
    nodes = [types.SimpleNamespace(**node) for node in data["nodes"].values()]
    return jobs, nodes


def test_a_release_with_pyslurm_has_its_live_view_recorded():
    assert [r.name for r in RELEASES] == ["slurm-25.11.7"]


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_pyslurms_jobs_are_squeues(release):
    jobs, _ = _objects(release)
    live, rejected = parse_live_jobs(jobs)
    assert rejected == []
    squeue, bad = parse_squeue((release / "squeue-live.txt").read_text())
    assert bad == [] and squeue
    assert sorted(live) == sorted(squeue)
    assert {j.state for j in live} >= {"RUNNING", "PENDING"}
    assert any(j.gpus and j.state == "PENDING" for j in live)  # requested, not allocated


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_pyslurms_nodes_are_sinfos(release):
    _, nodes = _objects(release)
    live, rejected = parse_live_nodes(nodes)
    assert rejected == []
    sinfo, bad = parse_sinfo((release / "sinfo-live.txt").read_text())
    assert bad == [] and sinfo
    # The backfill scheduler's "planned" mark (sinfo's "-" suffix, or "planned" for an
    # idle node) comes and goes between two reads; everything else is the same.
    def steady(nodes):
        return sorted(n._replace(state=n.state.rstrip("-").replace("planned", "idle"))
                      for n in nodes)
    assert steady(live) == steady(sinfo)
    drained = json.loads((release / "live.json").read_text())["drained"]
    assert [n.node for n in live if not n.available] == [drained]


STATES = [  # (complete state, sinfo's long state, the node can run jobs)
    ("IDLE", "idle", True), ("MIXED", "mixed", True), ("ALLOCATED", "allocated", True),
    ("IDLE+DRAIN", "drained", False), ("MIXED+DRAIN", "draining", True),
    ("ALLOCATED+DRAIN", "draining", True), ("IDLE+DRAIN+COMPLETING", "draining", True),
    ("DOWN+DRAIN+NOT_RESPONDING", "drained*", False), ("DOWN", "down", False),
    ("DOWN+NOT_RESPONDING", "down*", False), ("IDLE+NOT_RESPONDING", "idle*", False),
    ("MIXED+PLANNED", "mixed-", True), ("IDLE+PLANNED", "planned", True),
    ("IDLE+RESERVED", "reserved", True), ("IDLE+MAINTENANCE", "maint", False),
    ("ALLOCATED+MAINTENANCE", "allocated$", True), ("IDLE+POWERED_DOWN", "idle~", True),
    ("IDLE+DRAIN+POWERED_DOWN", "drained~", False), ("IDLE+FAIL", "fail", False),
    ("MIXED+FAIL", "failing", False), ("IDLE+REBOOT_ISSUED", "reboot^", False),
    ("MIXED+REBOOT_REQUESTED", "mixed@", True), ("ALLOCATED+COMPLETING", "allocated+", True),
    ("IDLE+COMPLETING", "completing", True), ("FUTURE", "future", False),
    ("IDLE+INVALID_REG", "inval", False), ("UNKNOWN+POWERED_DOWN", "powered_down", False),
    ("UNKNOWN", "unknown", False), ("UNKNOWN+NOT_RESPONDING", "unknown*", False),
    ("UNKNOWN+RESERVED", "unknown", False),
]


@pytest.mark.parametrize(("complete", "long", "available"), STATES, ids=[s[0] for s in STATES])
def test_a_complete_node_state_reads_as_sinfo_prints_it(complete, long, available):
    assert sinfo_state(complete) == long
    assert NodeGpus("n", sinfo_state(complete), 4, "h100").available is available


def _gpu_tres(gpus: int, typed: dict[str, int]):
    return _tres({"gres": {"gpu": {"count": gpus}, **{f"gpu:{t}": {"count": c}
                                                      for t, c in typed.items()}}})


GOOD_JOB = {"id": 7, "state": "RUNNING", "account": "a", "partition": "gpu",
            "allocated_tres": _gpu_tres(2, {"h100": 2}), "requested_tres": None, "num_nodes": 1,
            "array_tasks_waiting": None}
GOOD_NODE = {"name": "gpu01", "state": "MIXED", "configured_gres": {"gpu:h100": 4},
             "partitions": ["gpu"]}


def _jobs(*jobs: dict):
    return parse_live_jobs([types.SimpleNamespace(**job) for job in jobs])


def _nodes(*nodes: dict):
    return parse_live_nodes([types.SimpleNamespace(**node) for node in nodes])


def test_a_pending_array_is_a_job_per_waiting_task_as_squeue_prints_it():
    array = {**GOOD_JOB, "id": 9, "state": "PENDING", "allocated_tres": None,
             "requested_tres": _gpu_tres(4, {}), "array_tasks_waiting": "1,3,5-7"}
    live, rejected = _jobs(array)
    assert rejected == [] and len(live) == 5
    assert {(j.job_id, j.gpus) for j in live} == {("9", 4)}
    _, [bad] = _jobs({**array, "array_tasks_waiting": "5-x"})
    assert "is not a task range" in bad.reason


def test_a_pending_job_counts_what_it_asked_for_and_an_ended_job_is_not_listed():
    pending = {**GOOD_JOB, "id": 8, "state": "PENDING", "allocated_tres": None,
               "requested_tres": _gpu_tres(8, {})}
    ended = {**GOOD_JOB, "id": 9, "state": "COMPLETED"}
    live, rejected = _jobs(GOOD_JOB, pending, ended)
    assert rejected == []
    assert [(j.job_id, j.state, j.gpus, j.gpu_type) for j in live] == [
        ("7", "RUNNING", 2, "h100"), ("8", "PENDING", 8, "")]


JOB_REJECTS = [
    ("no account", {k: v for k, v in GOOD_JOB.items() if k != "account"}, "has no account"),
    ("tres not TRES", {**GOOD_JOB, "allocated_tres": "gres/gpu=2"}, "not TRES with gres"),
    ("count not a number", {**GOOD_JOB, "allocated_tres": _tres({"gres": {"gpu": {"count": "2"}}})},
     "is not a number"),
    ("state empty", {**GOOD_JOB, "state": ""}, "state is empty"),
    ("id not a number", {**GOOD_JOB, "id": "7"}, "id '7' is not a number"),
    ("account not text", {**GOOD_JOB, "account": 5}, "account 5 is not text"),
]


@pytest.mark.parametrize(("case", "job", "reason"), JOB_REJECTS, ids=[c[0] for c in JOB_REJECTS])
def test_a_job_that_cannot_be_read_is_rejected_with_its_reason(case, job, reason):
    live, [rejected] = _jobs({**GOOD_JOB, "id": 1}, job)
    assert [j.job_id for j in live] == ["1"]
    assert rejected.line_no == 2 and reason in rejected.reason and rejected.line


NODE_REJECTS = [
    ("no partitions", {k: v for k, v in GOOD_NODE.items() if k != "partitions"},
     "has no partitions"),
    ("gres not a mapping", {**GOOD_NODE, "configured_gres": "gpu:h100:4"}, "not a mapping"),
    ("count not a number", {**GOOD_NODE, "configured_gres": {"gpu:h100": "4"}},
     "is not a number"),
    ("partitions not names", {**GOOD_NODE, "partitions": "gpu"}, "not a list of names"),
    ("no name", {**GOOD_NODE, "name": None}, "name or state is empty"),
]


@pytest.mark.parametrize(("case", "node", "reason"), NODE_REJECTS,
                         ids=[c[0] for c in NODE_REJECTS])
def test_a_node_that_cannot_be_read_is_rejected_with_its_reason(case, node, reason):
    live, [rejected] = _nodes(GOOD_NODE, node)
    assert [n.node for n in live] == ["gpu01"]
    assert rejected.line_no == 2 and reason in rejected.reason


def test_gres_with_indexes_and_other_gres_count_only_gpus():
    node = {**GOOD_NODE, "configured_gres": {"gpu:h100": {"count": 4, "indexes": "0-3"},
                                             "shard": 16}}
    [read], _ = _nodes(node)
    assert (read.gpus, read.gpu_type, read.state, read.partitions) == (4, "h100", "mixed",
                                                                       ("gpu",))


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12),
                   st.floats(), st.lists(st.text(max_size=4), max_size=2),
                   st.dictionaries(st.text(max_size=8), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(LIVE_JOB_FIELDS), _VALUE, max_size=4))
def test_any_job_values_are_read_rejected_or_not_listed_never_crash(change):
    job = {**GOOD_JOB, **change}
    live, rejected = _jobs(job)
    listed = isinstance(job["state"], str) and job["state"].split(" ")[0] in SQUEUE_STATES
    assert len(live) + len(rejected) == 1 or (not listed and not live)
    assert all(j.gpus >= 0 and j.nodes >= 0 for j in live)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(NODE_FIELDS), _VALUE, max_size=4))
def test_any_node_values_are_read_or_rejected_never_crash(change):
    live, rejected = _nodes({**GOOD_NODE, **change})
    assert len(live) + len(rejected) == 1
    assert all(n.gpus >= 0 and isinstance(n.available, bool) for n in live)


class _ByCluster(dict):
    """pyslurm's MultiClusterMap: iterating gives ids; values() gives every object."""

    def values(self):
        return [obj for objs in super().values() for obj in objs.values()]


def _fake_lib(fail: bool = False) -> types.SimpleNamespace:
    def collection(*objs: dict) -> types.SimpleNamespace:
        def load():
            if fail:
                raise RuntimeError("Failed to load information from slurmctld")
            return _ByCluster({"testai": {i: types.SimpleNamespace(**o)
                                          for i, o in enumerate(objs)}})
        return types.SimpleNamespace(load=load)
    return types.SimpleNamespace(Jobs=collection(GOOD_JOB), Nodes=collection(GOOD_NODE),
                                 RPCError=RuntimeError)


def test_the_source_reads_slurmctld_and_a_failure_is_a_slurm_error():
    source = pyslurm_source.PyslurmSource("testai", _pyslurm=_fake_lib())
    assert [j.job_id for j in source.jobs_now()[0]] == ["7"]
    assert [n.node for n in source.nodes_now()[0]] == ["gpu01"]
    broken = pyslurm_source.PyslurmSource("testai", _pyslurm=_fake_lib(fail=True))
    with pytest.raises(pyslurm_source.SlurmError, match="could not read jobs from slurmctld"):
        broken.jobs_now()
    with pytest.raises(pyslurm_source.SlurmError, match="could not read nodes from slurmctld"):
        broken.nodes_now()
