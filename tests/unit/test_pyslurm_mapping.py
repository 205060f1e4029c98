"""The pyslurm door without pyslurm: its mapping fed with what pyslurm 25.11.2 gives.

`pyslurm-<window>.json` in every release folder is what `pyslurm.db.Jobs.load(...)` gives
for the recorded jobs: a dict keyed by job id of each `pyslurm.db.Job`'s attributes.
For Slurm 25.11 it is recorded from the real pyslurm 25.11.2 (`python -m testcluster
record-fixtures` on a 25.11 test cluster: the attributes the door reads, and `gpus` and
`gres`); for the other releases it is derived from the slurmrestd recordings of the
same jobs by tests/fixtures/make_pyslurm_fixture.py (pyslurm builds only against Slurm
25.11; see that script for the pyslurm sources each rule comes from).

The door reads attributes of `pyslurm.db.Job` objects, so each fixture job is turned
back into a stand-in object (`_job`): its TRES into `TrackableResources`-like objects
whose `gres` maps names to `GPU`-like objects, as pyslurm/db/tres.pyx builds them.
Associations are stand-ins built per pyslurm/db/assoc.pyx from the slurmrestd
recording of the same slurmdbd associations (pyslurm 25.11.2 has no Accounts).
"""

from __future__ import annotations

import importlib.util
import json
import os
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.slurm import pyslurm_source
from collector.slurm.pyslurm_source import JOB_FIELDS
from collector.slurm.records import JobRecord
from collector.slurm.sacctmgr_parser import parse_accounts
from testcluster.fixtures import read_recorded_sacct

from .fakeslurm import FAKE_BIN

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASES = sorted(p for p in FIXTURES.glob("slurm-*") if (p / "pyslurm-workload.json").exists())
WINDOWS = ("workload", "month-boundary")
CLUSTER = "testai"
NO_VAL = 4294967294

_spec = importlib.util.spec_from_file_location("make_pyslurm_fixture",
                                               FIXTURES / "make_pyslurm_fixture.py")
generator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generator)


def _recorded(release: Path) -> bool:
    """True for a folder recorded from a real pyslurm (Slurm 25.11), not derived."""
    return bool(json.loads((release / "manifest.json").read_text()).get("pyslurm_version"))


def _params(windows=WINDOWS, derived_only=False):
    return [pytest.param(r, w, id=f"{r.name}-{w}") for r in RELEASES for w in windows
            if not (derived_only and _recorded(r))]


def _pyslurm(release: Path, window: str) -> dict[int, dict]:
    """The fixture as pyslurm returns it: int job ids (JSON keeps them as text)."""
    data = json.loads((release / f"pyslurm-{window}.json").read_text())
    return {int(job_id): job for job_id, job in data.items()}


def _newest_runs(release: Path, window: str) -> dict[int, JobRecord]:
    """sacct's records of the window, the newest run of each job id."""
    result = read_recorded_sacct(release / f"sacct-{window}.txt", CLUSTER)
    assert not result.rejected
    newest: dict[int, JobRecord] = {}
    for record in result.records:
        if record.job_id_raw not in newest or record.submit_s > newest[record.job_id_raw].submit_s:
            newest[record.job_id_raw] = record
    return newest


# -- stand-ins for pyslurm 25.11.2's objects ---------------------------------------------

class FakeJob(types.SimpleNamespace):
    """A pyslurm.db.Job: its properties are attributes. as_dict() computes every
    property of a real Job (steps, environment, uid lookups): the door must not call it."""

    def as_dict(self) -> dict:
        raise AssertionError("the door reads JOB_FIELDS, not as_dict()")


def _tres(value):
    """TrackableResources from its to_dict(recursive=True): TrackableResource / GPU
    objects, and the fs/gres/license/interconnect/other dicts of them by name."""
    if not isinstance(value, dict):
        return value  # None (nothing allocated) or a hostile value, as it is
    out = {}
    for key, item in value.items():
        if isinstance(item, dict) and "count" in item:
            out[key] = types.SimpleNamespace(**item)
        elif isinstance(item, dict):
            out[key] = {name: types.SimpleNamespace(**i) if isinstance(i, dict) else i
                        for name, i in item.items()}
        else:
            out[key] = item
    return types.SimpleNamespace(**out)


def _job(job: dict) -> FakeJob:
    """A fixture job (or a changed one) as the pyslurm.db.Job the door is given."""
    objects = {k: _tres(job[k]) for k in ("allocated_tres", "requested_tres", "tres")
               if k in job}
    for k in ("gres", "gpus"):
        if isinstance(job.get(k), dict):
            objects[k] = {n: types.SimpleNamespace(**g) if isinstance(g, dict) else g
                          for n, g in job[k].items()}
    return FakeJob(**{**job, **objects})


def _door(jobs: dict[int, dict]):
    """The door's mapping of a loaded collection's `.values()`."""
    return pyslurm_source.parse_jobs([_job(job) for job in jobs.values()], CLUSTER)


# -- the fixture ------------------------------------------------------------------------

@pytest.mark.parametrize(("release", "window"), _params(derived_only=True))
def test_the_fixture_is_what_the_generator_derives_from_the_recordings(release, window):
    assert (release / f"pyslurm-{window}.json").read_text() == generator.render(
        release, window), "stale: run python tests/fixtures/make_pyslurm_fixture.py"


@pytest.mark.parametrize(("release", "window"), _params())
def test_the_fixture_has_pyslurm_names_and_types(release, window):
    jobs = _pyslurm(release, window)
    assert jobs
    for job_id, job in jobs.items():
        assert job["id"] == job_id and job["cluster"] == CLUSTER
        assert isinstance(job["submit_time"], int)
        for name in ("eligible_time", "start_time", "end_time", "array_id", "array_task_id",
                     "heterogeneous_id", "heterogeneous_offset"):
            assert job[name] is None or isinstance(job[name], int), name
        assert isinstance(job["state"], str) and " " not in job["state"]
        assert isinstance(job["cpus"], int) and isinstance(job["num_nodes"], int)
        assert job["allocated_tres"] is None or isinstance(job["allocated_tres"]["gres"], dict)
        assert set(job["gpus"]) <= set(job["gres"])
        assert set(JOB_FIELDS) <= job.keys()
        # Names an earlier door read, which pyslurm 25.11.2 does not have.
        assert not {"tres_alloc_str", "het_job_id", "het_job_offset"} & job.keys()


@pytest.mark.parametrize(("release", "window"), _params())
def test_pyslurm_gives_the_newest_run_of_each_job_sacct_lists(release, window):
    """A documented difference: pyslurm 25.11.2's JobFilter has no duplicates option
    (JOBCOND_FLAG_DUP is never set) and Jobs.load keys jobs by (cluster, id), so the
    earlier runs of a requeued job are not there."""
    jobs = _pyslurm(release, window)
    newest = _newest_runs(release, window)
    assert jobs.keys() == newest.keys()
    assert all(jobs[i]["submit_time"] == newest[i].submit_s for i in jobs)
    every = read_recorded_sacct(release / f"sacct-{window}.txt", CLUSTER).records
    missing = [r for r in every if r not in newest.values()]
    assert all(r.state == "REQUEUED" for r in missing)
    if window == "workload":
        manifest = json.loads((release / "manifest.json").read_text())
        requeued = int(manifest["workload"]["requeued"]["job_id"])
        assert [r.job_id_raw for r in missing] == [requeued]
        assert jobs[requeued]["state"] == "COMPLETED"
        result = _door(jobs)
        assert [r.state for r in result.records if r.job_id_raw == requeued] == ["COMPLETED"]


# -- the mapping, per release ----------------------------------------------------------

@pytest.mark.parametrize(("release", "window"), _params())
def test_the_door_gives_sacct_records(release, window):
    newest = _newest_runs(release, window)
    result = _door(_pyslurm(release, window))
    assert result.rejected == [] and result.pending_arrays == []
    assert {r.job_id_raw: r for r in result.records} == newest


@pytest.mark.parametrize(("release", "window"), _params())
def test_gpu_counts_equal_sacct(release, window):
    newest = _newest_runs(release, window)
    result = _door(_pyslurm(release, window))
    assert any(r.gpus for r in newest.values())
    assert {r.job_id_raw: (r.gpus, r.gpu_types) for r in result.records} == {
        i: (newest[i].gpus, newest[i].gpu_types) for i in (r.job_id_raw for r in result.records)}


def test_a_job_that_never_ran_has_no_gpus_though_pyslurm_gpus_lists_the_request():
    """Job.gpus / gres / tres fall back to requested_tres when nothing was allocated;
    sacct's AllocTRES is empty then, so the door reads allocated_tres only."""
    jobs = _pyslurm(RELEASES[0], "month-boundary")
    never = [j for j in jobs.values() if j["allocated_tres"] is None and j["gpus"]]
    assert never
    by_id = {r.job_id_raw: r for r in _door(jobs).records}
    assert all(by_id[j["id"]].gpus == 0 and not by_id[j["id"]].started for j in never)


@pytest.mark.parametrize(("release", "window"), _params(("workload",)))
def test_heterogeneous_components_are_named_as_sacct_names_them(release, window):
    newest = _newest_runs(release, window)
    het = {i: r for i, r in newest.items() if r.het_job_id is not None}
    assert het
    jobs = _pyslurm(release, window)
    # pyslurm 25.11.2: offset 0 reads None; a job that is not heterogeneous has NO_VAL.
    assert any(jobs[i]["heterogeneous_offset"] is None for i in het)
    assert all(j["heterogeneous_offset"] == NO_VAL for i, j in jobs.items() if i not in het)
    by_id = {r.job_id_raw: r for r in _door(jobs).records}
    assert {i: (by_id[i].job_id, by_id[i].het_job_id, by_id[i].het_job_offset) for i in het} \
        == {i: (r.job_id, r.het_job_id, r.het_job_offset) for i, r in het.items()}
    assert all(by_id[i].het_job_offset is None for i in jobs if i not in het)


@pytest.mark.parametrize(("release", "window"), _params(("workload",)))
def test_array_task_zero_is_a_record_not_a_pending_array(release, window):
    jobs = _pyslurm(release, window)
    assert any(j["array_id"] and j["array_task_id"] is None for j in jobs.values())
    result = _door(jobs)
    assert result.pending_arrays == []
    assert any(r.array_task_id == 0 and r.job_id.endswith("_0") for r in result.records)


def test_a_pending_array_is_told_apart_from_task_zero_by_its_waiting_tasks():
    task0 = next(j for j in _pyslurm(RELEASES[-1], "workload").values()
                 if j["array_id"] and j["array_task_id"] is None)
    pending = {**task0, "id": task0["array_id"], "array_tasks_waiting": "0-9",
               "start_time": None, "end_time": None, "allocated_tres": None,
               "nodelist": "None assigned", "state": "PENDING"}
    result = pyslurm_source.parse_jobs([_job(task0), _job(pending)], CLUSTER)
    assert [r.job_id for r in result.records] == [f"{task0['array_id']}_0"]
    assert result.pending_arrays == [f"{task0['array_id']}_[0-9]"]


def _from_sacct(record: JobRecord) -> FakeJob:
    """The pyslurm.db.Job of a sacct record, built per pyslurm 25.11.2's source without
    the fixture generator: u32_parse turns 0 into None, offsets of non-het jobs are NO_VAL."""
    def gpu(name, count, tid):
        return types.SimpleNamespace(count=count, id=tid, type=name[4:] or None, name=name,
                                     type_and_name=f"gres/{name}")
    gres = {"gpu": gpu("gpu", record.gpus, 1001)} if record.gpus else {}
    gres |= {f"gpu:{t}": gpu(f"gpu:{t}", n, 1002) for t, n in record.gpu_types}
    alloc = types.SimpleNamespace(
        cpu=types.SimpleNamespace(type="cpu", name=None, id=1, count=record.cpus),
        node=types.SimpleNamespace(type="node", name=None, id=4, count=record.nodes),
        gres=gres, fs={}, license={}, interconnect={}, other={}) if record.nodes else None
    return FakeJob(
        id=record.job_id_raw, cluster=CLUSTER, submit_time=record.submit_s,
        array_id=record.array_job_id, array_task_id=record.array_task_id or None,
        array_tasks_waiting=None, heterogeneous_id=record.het_job_id,
        heterogeneous_offset=(record.het_job_offset or None) if record.het_job_id else NO_VAL,
        user_name=record.user, account=record.account, partition=record.partition,
        qos=record.qos, wckey=("*" if record.wckey_is_default else "") + record.wckey or None,
        state=record.state, eligible_time=record.eligible_s, start_time=record.start_s,
        end_time=record.end_s, allocated_tres=alloc, num_nodes=record.nodes, cpus=record.cpus,
        nodelist=record.nodelist or "None assigned", name=record.name or None)


@pytest.mark.parametrize(("release", "window"), _params())
def test_jobs_built_from_sacct_lines_map_back_to_the_same_records(release, window):
    newest = list(_newest_runs(release, window).values())
    result = pyslurm_source.parse_jobs([_from_sacct(r) for r in newest], CLUSTER)
    assert result.rejected == [] and result.records == newest


# -- the door's own loop, with stand-ins for pyslurm 25.11.2's collections --------------

class FakeCollection:
    """A MultiClusterMap (pyslurm.db.Jobs, Associations): iterating yields ids."""

    def __init__(self, by_cluster: dict[str, dict[int, object]]):
        self.data = by_cluster

    def __iter__(self):
        return (key for items in self.data.values() for key in items)

    def values(self):
        return [item for items in self.data.values() for item in items.values()]


def _no_tres_table():
    raise AssertionError("Jobs.load resolves TRES ids itself: the door needs no TRES table")


def _fake_pyslurm(jobs: dict[int, dict] | None = None, assocs: list | None = None,
                  filters: list | None = None) -> types.SimpleNamespace:
    def load(db_filter=None):
        if filters is not None:
            filters.append(db_filter)
        return FakeCollection({CLUSTER: {i: _job(job) for i, job in (jobs or {}).items()}})
    by_cluster: dict[str, dict[int, object]] = {}
    for assoc in assocs or []:
        by_cluster.setdefault(assoc.cluster, {})[assoc.id] = assoc
    db = types.SimpleNamespace(
        Jobs=types.SimpleNamespace(load=load), JobFilter=lambda **kw: kw,
        TrackableResources=types.SimpleNamespace(load=_no_tres_table),
        Associations=types.SimpleNamespace(load=lambda *a: FakeCollection(by_cluster)))
    return types.SimpleNamespace(db=db, RPCError=RuntimeError, __version__="25.11.2")


def test_the_door_iterates_job_objects_and_needs_no_tres_table():
    jobs = _pyslurm(RELEASES[-1], "workload")
    filters: list = []
    source = pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=_fake_pyslurm(jobs,
                                                                          filters=filters))
    result = source.window(1_790_000_000, 1_800_000_000)
    assert {r.job_id_raw: r for r in result.records} == _newest_runs(RELEASES[-1], "workload")
    assert filters == [{"clusters": [CLUSTER], "start_time": 1_790_000_000,
                        "end_time": 1_800_000_000}]


def test_by_ids_asks_for_the_ids_and_never_for_none():
    """JobFilter(ids=[]) sets no job list, and slurmdbd would then send today's jobs."""
    filters: list = []
    source = pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=_fake_pyslurm({}, filters=filters))
    assert source.by_ids([]).records == []
    source.by_ids([5, 7])
    assert filters == [{"clusters": [CLUSTER], "ids": [5, 7]}]


def test_a_window_from_the_epoch_is_not_read_as_no_start():
    """JobFilter's start_time 0 means "not set" (slurmdbd then starts at midnight)."""
    filters: list = []
    pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=_fake_pyslurm({}, filters=filters)
                                 ).window(0, 100)
    assert filters[0]["start_time"] == 1


def test_a_slurmdbd_error_is_a_slurm_error():
    def refuse(*args):
        raise RuntimeError("Failed to get Jobs from slurmdbd")
    lib = _fake_pyslurm({})
    lib.db.Jobs.load = refuse
    with pytest.raises(pyslurm_source.SlurmError, match="could not read jobs"):
        pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=lib).window(1, 2)


# -- the account tree -------------------------------------------------------------------

def _associations(release: Path) -> list[types.SimpleNamespace]:
    """pyslurm.db.Association stand-ins of the recorded slurmdbd associations (from
    slurmrestd's recording of them): empty strings read None (cstr.to_unicode), and
    group_tres_mins is a TrackableResources (None when unset)."""
    rest = json.loads((release / "slurmrestd-associations.json").read_text())["associations"]
    out = []
    for index, a in enumerate(rest, 1):
        minutes = ((a.get("max") or {}).get("tres") or {}).get("group", {}).get("minutes")
        gres = {i["name"]: types.SimpleNamespace(count=i["count"], id=i["id"],
                                                 type=i["name"][4:] or None)
                for i in minutes or [] if i["type"] == "gres"}
        out.append(types.SimpleNamespace(
            id=index, cluster=a["cluster"], account=a["account"], user=a.get("user") or None,
            parent_account=a.get("parent_account") or None, partition=a.get("partition") or None,
            group_tres_mins=types.SimpleNamespace(gres=gres) if minutes else None))
    return out


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_the_account_tree_is_sacctmgrs(release, tmp_path):
    """pyslurm 25.11.2 has no Accounts: parents, GPU-minute budgets and users come from
    its associations, organisations and descriptions from `sacctmgr show account` (the
    recorded output, through the stand-in sacctmgr); together they are sacctmgr's tree."""
    want, _ = parse_accounts((release / "sacctmgr-assoc.txt").read_text(),
                             (release / "sacctmgr-account.txt").read_text())
    assert any(a.grp_gpu_minutes for a in want) and any(a.organisation for a in want)
    (tmp_path / "sacctmgr-account.txt").write_text(
        (release / "sacctmgr-account.txt").read_text())
    env = dict(os.environ, PATH=f"{FAKE_BIN}:{os.environ['PATH']}",
               FAKE_SLURM_DIR=str(tmp_path))
    other = types.SimpleNamespace(id=999, cluster="other", account="ehpc_llm01", user="eve",
                                  parent_account=None, partition=None, group_tres_mins=None)
    lib = _fake_pyslurm(assocs=[*_associations(release), other])
    got = pyslurm_source.PyslurmSource(CLUSTER, env=env, _pyslurm=lib).accounts()
    assert got == (want, [])


def test_a_budget_that_is_not_a_count_is_an_error():
    assoc = types.SimpleNamespace(id=1, cluster=CLUSTER, account="a", user=None,
                                  parent_account="root", partition=None,
                                  group_tres_mins=types.SimpleNamespace(
                                      gres={"gpu": types.SimpleNamespace(count=-1)}))
    with pytest.raises(pyslurm_source.FieldError, match="GrpTRESMins"):
        pyslurm_source.account_tree([assoc], CLUSTER)


# -- hostile and malformed values --------------------------------------------------------

BASE = _pyslurm(RELEASES[-1], "workload")
GOOD = next(job for job in BASE.values() if job["gpus"] and job["array_id"] is None)
FORGED = "|".join(["999999", "999999", CLUSTER, "mallory", "ehpc_llm01", "gpu", "normal",
                   "pretrain", "COMPLETED", *["2026-10-01T00:00:00"] * 4,
                   "cpu=8,gres/gpu=8,node=1", "1", "8", "gpu01", "forged"])


def _read(*jobs):
    return pyslurm_source.parse_jobs([_job(j) if isinstance(j, dict) else j for j in jobs],
                                     CLUSTER)


def _other(job_id=4_999_999):
    return {**GOOD, "id": job_id}


def _gpu_count(job, count):
    gres = {**job["allocated_tres"]["gres"], "gpu": {**job["gpus"]["gpu"], "count": count}}
    return {**job, "allocated_tres": {**job["allocated_tres"], "gres": gres}}


def test_a_name_with_newline_and_delimiter_stays_one_record_and_whole():
    """A documented difference: sacct's text splits such a name (the line after the
    newline is rejected); pyslurm gives the name as one value."""
    name = "eval|ablation\nv2|" + FORGED
    result = _read({**GOOD, "name": name})
    assert result.rejected == [] and [r.name for r in result.records] == [name]


def test_a_comment_holding_a_forged_sacct_line_adds_no_record():
    result = _read({**GOOD, "comment": "\n" + FORGED + "\n", "admin_comment": FORGED,
                    "wckey": "pretrain\n" + FORGED})
    assert [r.job_id_raw for r in result.records] == [GOOD["id"]]
    assert result.records[0].wckey == "pretrain\n" + FORGED


def test_an_unknown_state_is_kept_and_marked_as_sacct_does():
    [record] = _read({**GOOD, "state": "WARPED_BY_26.05"}).records
    assert record.state == "WARPED_BY_26.05" and not record.state_known


@pytest.mark.parametrize(("name", "field", "empty"), [
    ("account", "account", ""), ("user_name", "user", ""), ("partition", "partition", ""),
    ("qos", "qos", ""), ("wckey", "wckey", ""), ("name", "name", ""),
    ("eligible_time", "eligible_s", None), ("start_time", "start_s", None),
    ("end_time", "end_s", None)])
def test_an_empty_optional_field_reads_as_sacct_reads_an_empty_one(name, field, empty):
    """pyslurm.db.Job always has these attributes; empty text and time 0 read None."""
    [record] = _read({**GOOD, name: None}).records
    assert record.job_id_raw == GOOD["id"] and getattr(record, field) == empty


REJECT = [
    ("no id", lambda j: {k: v for k, v in j.items() if k != "id"}, "id"),
    ("no submit_time", lambda j: {k: v for k, v in j.items() if k != "submit_time"},
     "submit_time"),
    ("no state", lambda j: {k: v for k, v in j.items() if k != "state"}, "state"),
    ("no heterogeneous_offset (a renamed attribute)",
     lambda j: {k: v for k, v in j.items() if k != "heterogeneous_offset"},
     "heterogeneous_offset"),
    ("empty", lambda j: {}, "id"),
    ("not a job", lambda j: "junk", ""),
    ("None", lambda j: None, ""),
    ("id None", lambda j: {**j, "id": None}, "id"),
    ("id as text", lambda j: {**j, "id": "5000017"}, "id"),
    ("negative id", lambda j: {**j, "id": -5}, "id"),
    ("huge id", lambda j: {**j, "id": 10**20}, "id"),
    ("bool id", lambda j: {**j, "id": True}, "id"),
    ("submit_time None", lambda j: {**j, "submit_time": None}, "submit_time"),
    ("submit_time not a time", lambda j: {**j, "submit_time": "yesterday"}, "submit_time"),
    ("negative submit_time", lambda j: {**j, "submit_time": -3}, "submit_time"),
    ("start_time not a time", lambda j: {**j, "start_time": "yesterday"}, "start_time"),
    ("end_time before start_time", lambda j: {**j, "end_time": j["start_time"] - 100},
     "before"),
    ("state not text", lambda j: {**j, "state": 7}, "state"),
    ("state empty", lambda j: {**j, "state": ""}, "state"),
    ("cpus not a count", lambda j: {**j, "cpus": "abc"}, "cpus"),
    ("negative cpus", lambda j: {**j, "cpus": -1}, "cpus"),
    ("huge num_nodes", lambda j: {**j, "num_nodes": 10**30}, "num_nodes"),
    ("negative array_task_id", lambda j: {**j, "array_id": 5, "array_task_id": -1},
     "array_task_id"),
    ("array_tasks_waiting not text", lambda j: {**j, "array_id": 5,
                                                "array_tasks_waiting": [1]},
     "array_tasks_waiting"),
    ("het offset NO_VAL of a het job", lambda j: {**j, "heterogeneous_id": j["id"]},
     "offset"),
    ("nodelist not text", lambda j: {**j, "nodelist": 5}, "nodelist"),
    ("name not text", lambda j: {**j, "name": ["a"]}, "name"),
    ("user_name not text", lambda j: {**j, "user_name": 1007}, "user_name"),
    ("negative gres/gpu in allocated_tres", lambda j: _gpu_count(j, -4), "gres/gpu"),
    ("huge gres/gpu in allocated_tres", lambda j: _gpu_count(j, 10**30), "gres/gpu"),
    ("gres/gpu count not a number", lambda j: _gpu_count(j, "4"), "gres/gpu"),
    ("allocated_tres not TRES", lambda j: {**j, "allocated_tres": "1=8,1001=4"},
     "allocated_tres"),
    ("submit_time infinite", lambda j: {**j, "submit_time": float("inf")}, "submit_time"),
]


@pytest.mark.parametrize(("case", "change", "reason"), REJECT, ids=[c[0] for c in REJECT])
def test_a_job_that_cannot_be_read_is_rejected_like_the_other_doors_reject(case, change,
                                                                           reason):
    bad = change(GOOD)
    result = _read(_other(1), bad, _other(2))
    assert [r.job_id_raw for r in result.records] == [1, 2]
    [rejected] = result.rejected
    assert rejected.line_no == 2 and reason in rejected.reason
    assert 0 < len(rejected.line) <= 2000
    read = {k: bad[k] for k in JOB_FIELDS if k in bad} if isinstance(bad, dict) else {}
    if read:
        assert json.loads(rejected.line) == read  # what the door read, TRES as dicts


def test_a_float_time_is_rejected_not_raised():
    result = _read({**GOOD, "submit_time": float("inf")}, {**GOOD, "end_time": 1.5e9})
    assert len(result.rejected) == 2 and result.records == []


def test_a_pyslurm_property_that_raises_rejects_that_job_only():
    class Broken(FakeJob):
        @property
        def allocated_tres(self):  # e.g. GPU.from_tres on a name with two colons
            raise ValueError("too many values to unpack")
    fields = {k: v for k, v in _job(GOOD).__dict__.items() if k != "allocated_tres"}
    result = pyslurm_source.parse_jobs([_job(_other(1)), Broken(**fields)], CLUSTER)
    assert [r.job_id_raw for r in result.records] == [1]
    assert "too many values" in result.rejected[0].reason


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                   st.floats(), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(sorted(GOOD)), _VALUE, max_size=6),
                max_size=8))
def test_any_values_are_read_or_rejected_never_crash_or_multiply(changes):
    jobs = [{**GOOD, **change} for change in changes]
    result = _read(*jobs)
    assert len(result.records) + len(result.rejected) + len(result.pending_arrays) == len(jobs)
