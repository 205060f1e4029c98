"""The pyslurm door without pyslurm: its mapping fed with what pyslurm 25.11.2 gives.

`pyslurm-<window>.json` in every release folder is `pyslurm.db.Jobs.load(...).to_dict()`
for the recorded jobs: a dict keyed by job id of `pyslurm.db.Job.as_dict()`. It is
derived from the slurmrestd recordings of the same jobs by
tests/fixtures/make_pyslurm_fixture.py, not recorded (pyslurm builds only against
Slurm 25.11; see that script for the pyslurm sources each rule comes from).

Tests marked xfail(strict=True) state what the door should give and name why it does
not yet; they start failing (XPASS) when the door is fixed, so the mark must go then.
"""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import pyslurm_source
from collector.records import JobRecord
from collector.sacct_parser import parse_sacct

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASES = sorted(p for p in FIXTURES.glob("slurm-*") if (p / "pyslurm-workload.json").exists())
WINDOWS = ("workload", "month-boundary")
CLUSTER = "testai"

_spec = importlib.util.spec_from_file_location("make_pyslurm_fixture",
                                               FIXTURES / "make_pyslurm_fixture.py")
generator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generator)

# Why the door does not yet read pyslurm 25.11.2 right (checked against PySlurm/pyslurm at
# tag v25.11.2: pyslurm/db/job.pyx, db/tres.pyx, utils/uint.pyx, xcollections.pyx).
NO_TRES_ALLOC_STR = "door reads tres_alloc_str; pyslurm.db.Job has allocated_tres/gpus"
NO_HET_JOB_ID = "door reads het_job_id/offset; pyslurm.db.Job has heterogeneous_id/offset"
TASK_ZERO = "pyslurm gives array_task_id None for task 0; the door calls it a pending array"
ITERATES_KEYS = "door iterates Jobs.load(...), which yields job ids, not Job objects"
TRES_NOT_ITERABLE = "door iterates TrackableResources.load(), which is not iterable"
NOT_VALIDATED = "door accepts what sacct_parser and slurmrestd_parser reject"


def _params(windows=WINDOWS):
    return [pytest.param(r, w, id=f"{r.name}-{w}") for r in RELEASES for w in windows]


def _pyslurm(release: Path, window: str) -> dict[int, dict]:
    """The fixture as pyslurm returns it: int job ids (JSON keeps them as text)."""
    data = json.loads((release / f"pyslurm-{window}.json").read_text())
    return {int(job_id): job for job_id, job in data.items()}


def _tres_names(jobs: dict[int, dict]) -> dict[int, str]:
    """TRES id -> sacct name (`gres/gpu:h100`), as the door builds from the TRES table."""
    names = {}
    for job in jobs.values():
        for side in ("allocated_tres", "requested_tres"):
            tres = job[side] or {}
            for item in [*(tres.get("gres") or {}).values(),
                         *(v for v in tres.values() if isinstance(v, dict) and "id" in v)]:
                names[item["id"]] = item["type_and_name"]
    return names


def _newest_runs(release: Path, window: str) -> dict[int, JobRecord]:
    """sacct's records of the window, the newest run of each job id."""
    result = parse_sacct((release / f"sacct-{window}.txt").read_text(), CLUSTER)
    assert not result.rejected
    newest: dict[int, JobRecord] = {}
    for record in result.records:
        if record.job_id_raw not in newest or record.submit_s > newest[record.job_id_raw].submit_s:
            newest[record.job_id_raw] = record
    return newest


class FakeJob(types.SimpleNamespace):
    """A pyslurm.db.Job: its as_dict() keys are its attributes, nothing more."""

    def as_dict(self) -> dict:
        return dict(vars(self))


def _door(jobs: dict[int, dict]):
    """The door's mapping of a loaded collection (what PyslurmSource._load does with the
    Job objects, bypassing its iteration: see test_the_door_iterates_job_objects)."""
    return pyslurm_source.parse_jobs(
        [pyslurm_source._as_dict(FakeJob(**job)) for job in jobs.values()],
        _tres_names(jobs), CLUSTER)


# -- the fixture ------------------------------------------------------------------------

@pytest.mark.parametrize(("release", "window"), _params())
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
        # The names the door reads but pyslurm 25.11.2 does not have.
        assert not {"tres_alloc_str", "het_job_id", "het_job_offset"} & job.keys()


@pytest.mark.parametrize(("release", "window"), _params())
def test_pyslurm_gives_the_newest_run_of_each_job_sacct_lists(release, window):
    """A documented difference: JobFilter never asks slurmdbd for duplicates and
    Jobs.load keys jobs by id, so the earlier runs of a requeued job are not there."""
    jobs = _pyslurm(release, window)
    newest = _newest_runs(release, window)
    assert jobs.keys() == newest.keys()
    assert all(jobs[i]["submit_time"] == newest[i].submit_s for i in jobs)
    every = parse_sacct((release / f"sacct-{window}.txt").read_text(), CLUSTER).records
    missing = [r for r in every if r not in newest.values()]
    assert all(r.state == "REQUEUED" for r in missing)
    if window == "workload":
        manifest = json.loads((release / "manifest.json").read_text())
        requeued = int(manifest["workload"]["requeued"]["job_id"])
        assert [r.job_id_raw for r in missing] == [requeued]
        assert jobs[requeued]["state"] == "COMPLETED"


# -- the mapping, per release ----------------------------------------------------------

# Fields the door reads from names pyslurm has; the others are the xfails below.
READ_FIELDS = ("cluster", "job_id_raw", "submit_s", "array_job_id", "user", "account",
               "partition", "qos", "wckey", "wckey_is_default", "state", "eligible_s",
               "start_s", "end_s", "nodes", "cpus", "nodelist", "name")


@pytest.mark.parametrize(("release", "window"), _params())
def test_the_door_reads_ids_accounts_users_times_and_states_as_sacct_does(release, window):
    jobs = _pyslurm(release, window)
    newest = _newest_runs(release, window)
    result = _door(jobs)
    assert result.rejected == []
    assert len(result.records) + len(result.pending_arrays) == len(jobs)
    unread = jobs.keys() - {r.job_id_raw for r in result.records}
    assert all(jobs[i]["array_id"] and jobs[i]["array_task_id"] is None for i in unread)
    for record in result.records:
        want = newest[record.job_id_raw]
        got = {f: getattr(record, f) for f in READ_FIELDS}
        assert got == {f: getattr(want, f) for f in READ_FIELDS}, want.job_id


@pytest.mark.xfail(strict=True, reason=f"{NO_TRES_ALLOC_STR}; {NO_HET_JOB_ID}; {TASK_ZERO}")
@pytest.mark.parametrize(("release", "window"), _params())
def test_the_door_gives_sacct_records(release, window):
    newest = _newest_runs(release, window)
    result = _door(_pyslurm(release, window))
    assert result.pending_arrays == []
    assert {r.job_id_raw: r for r in result.records} == newest


@pytest.mark.xfail(strict=True, reason=NO_TRES_ALLOC_STR)
@pytest.mark.parametrize(("release", "window"), _params())
def test_gpu_counts_equal_sacct(release, window):
    newest = _newest_runs(release, window)
    result = _door(_pyslurm(release, window))
    assert any(r.gpus for r in newest.values())
    assert {r.job_id_raw: (r.gpus, r.gpu_types) for r in result.records} == {
        i: (newest[i].gpus, newest[i].gpu_types) for i in (r.job_id_raw for r in result.records)}


@pytest.mark.xfail(strict=True, reason=NO_HET_JOB_ID)
@pytest.mark.parametrize(("release", "window"), _params(("workload",)))
def test_heterogeneous_components_are_named_as_sacct_names_them(release, window):
    newest = _newest_runs(release, window)
    het = {i: r for i, r in newest.items() if r.het_job_id is not None}
    assert het
    by_id = {r.job_id_raw: r for r in _door(_pyslurm(release, window)).records}
    assert {i: (by_id[i].job_id, by_id[i].het_job_id, by_id[i].het_job_offset) for i in het} \
        == {i: (r.job_id, r.het_job_id, r.het_job_offset) for i, r in het.items()}


@pytest.mark.xfail(strict=True, reason=TASK_ZERO)
@pytest.mark.parametrize(("release", "window"), _params(("workload",)))
def test_array_task_zero_is_a_record_not_a_pending_array(release, window):
    result = _door(_pyslurm(release, window))
    assert result.pending_arrays == []
    assert any(r.array_task_id == 0 for r in result.records)


# -- the door's own loop, with a stand-in for pyslurm 25.11.2's collections -------------

class FakeJobs:
    """pyslurm.db.Jobs (a MultiClusterMap): iterating yields job ids, like a dict."""

    def __init__(self, jobs: dict[int, dict]):
        self.data = {CLUSTER: {i: FakeJob(**job) for i, job in jobs.items()}}

    def __iter__(self):
        return (job_id for jobs in self.data.values() for job_id in jobs)

    def values(self):
        return [job for jobs in self.data.values() for job in jobs.values()]


def _fake_pyslurm(jobs: dict[int, dict], tres: object = None) -> types.SimpleNamespace:
    db = types.SimpleNamespace(Jobs=types.SimpleNamespace(load=lambda *a, **k: FakeJobs(jobs)),
                               JobFilter=lambda **kw: kw,
                               TrackableResources=types.SimpleNamespace(load=lambda: tres))
    return types.SimpleNamespace(db=db, RPCError=RuntimeError, __version__="25.11.2")


@pytest.mark.xfail(strict=True, raises=AttributeError, reason=ITERATES_KEYS)
def test_the_door_iterates_job_objects():
    jobs = _pyslurm(RELEASES[-1], "workload")
    source = pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=_fake_pyslurm(jobs),
                                          _tres=_tres_names(jobs))
    result = source.window(0, 1)
    assert len(result.records) + len(result.pending_arrays) == len(jobs)


@pytest.mark.xfail(strict=True, raises=TypeError, reason=TRES_NOT_ITERABLE)
def test_the_door_reads_the_tres_table():
    jobs = _pyslurm(RELEASES[-1], "workload")
    names = _tres_names(jobs)

    def resource(tid):
        kind, _, name = names[tid].partition("/")
        return types.SimpleNamespace(id=tid, type=kind, name=name or None, count=1)
    table = types.SimpleNamespace(  # TrackableResources: attributes, no __iter__
        _id_map={tid: resource(tid) for tid in names},
        gres={names[t][5:]: resource(t) for t in names if names[t].startswith("gres/")},
        **{names[t]: resource(t) for t in names if "/" not in names[t]})
    source = pyslurm_source.PyslurmSource(CLUSTER, _pyslurm=_fake_pyslurm(jobs, table))
    assert source._tres_names() == names


# -- hostile and malformed values --------------------------------------------------------

BASE = _pyslurm(RELEASES[-1], "workload")
GOOD = next(job for job in BASE.values() if job["gpus"] and job["array_id"] is None)
TRES = _tres_names(BASE)
FORGED = "|".join(["999999", "999999", CLUSTER, "mallory", "ehpc_llm01", "gpu", "normal",
                   "pretrain", "COMPLETED", *["2026-10-01T00:00:00"] * 4,
                   "cpu=8,gres/gpu=8,node=1", "1", "8", "gpu01", "forged"])


def _read(*jobs):
    return pyslurm_source.parse_jobs(list(jobs), TRES, CLUSTER)


def _other(job_id=4_999_999):
    return {**GOOD, "id": job_id}


def test_a_name_with_newline_and_delimiter_stays_one_record_and_whole():
    """A documented difference: sacct's text splits such a name (the line after the
    newline is rejected); pyslurm gives the name as one value."""
    name = "eval|ablation\nv2|" + FORGED
    result = _read({**GOOD, "name": name})
    assert result.rejected == [] and [r.name for r in result.records] == [name]


def test_a_comment_holding_a_forged_sacct_line_adds_no_record():
    result = _read({**GOOD, "comment": "\n" + FORGED + "\n", "admin_comment": FORGED})
    assert [r.job_id_raw for r in result.records] == [GOOD["id"]]


def test_an_unknown_state_is_kept_and_marked_as_sacct_does():
    [record] = _read({**GOOD, "state": "WARPED_BY_26.05"}).records
    assert record.state == "WARPED_BY_26.05" and not record.state_known


@pytest.mark.parametrize(("name", "field", "empty"), [
    ("account", "account", ""), ("user_name", "user", ""), ("partition", "partition", ""),
    ("qos", "qos", ""), ("wckey", "wckey", ""), ("name", "name", ""),
    ("eligible_time", "eligible_s", None), ("start_time", "start_s", None),
    ("end_time", "end_s", None)])
def test_a_missing_optional_field_reads_as_sacct_reads_an_empty_one(name, field, empty):
    [record] = _read({k: v for k, v in GOOD.items() if k != name}).records
    assert record.job_id_raw == GOOD["id"] and getattr(record, field) == empty


REJECT = [
    ("no id", lambda j: {k: v for k, v in j.items() if k != "id"}, "id"),
    ("no submit_time", lambda j: {k: v for k, v in j.items() if k != "submit_time"},
     "submit_time"),
    ("no state", lambda j: {k: v for k, v in j.items() if k != "state"}, "state"),
    ("empty", lambda j: {}, "id"),
    ("not a dict", lambda j: "junk", ""),
    ("None", lambda j: None, ""),
    ("id as text", lambda j: {**j, "id": "5000017"}, "id"),
    ("state not text", lambda j: {**j, "state": 7}, ""),
    ("submit_time not a time", lambda j: {**j, "submit_time": "yesterday"}, ""),
    ("cpus not a count", lambda j: {**j, "cpus": "abc"}, ""),
    ("negative gres/gpu in tres_alloc_str", lambda j: {**j, "tres_alloc_str": "1001=-4"},
     "gres/gpu"),
    ("huge gres/gpu in tres_alloc_str", lambda j: {**j, "tres_alloc_str": "1001=" + "9" * 30},
     "gres/gpu"),
    ("tres_alloc_str item without an id", lambda j: {**j, "tres_alloc_str": "gpu=4"}, "id=count"),
]
UNCHECKED = [
    ("negative id", lambda j: {**j, "id": -5}),
    ("huge id", lambda j: {**j, "id": 10**20}),
    ("bool id", lambda j: {**j, "id": True}),
    ("negative submit_time", lambda j: {**j, "submit_time": -3}),
    ("negative cpus", lambda j: {**j, "cpus": -1}),
    ("huge num_nodes", lambda j: {**j, "num_nodes": 10**30}),
    ("negative array_task_id", lambda j: {**j, "array_id": 5, "array_task_id": -1}),
    ("start_time not a time", lambda j: {**j, "start_time": "yesterday"}),
    ("end_time before start_time", lambda j: {**j, "end_time": j["start_time"] - 100}),
    ("nodelist not text", lambda j: {**j, "nodelist": 5}),
    ("name not text", lambda j: {**j, "name": ["a"]}),
    ("negative GPUs in allocated_tres", lambda j: {**j, "allocated_tres": {
        **j["allocated_tres"], "gres": {"gpu": {**j["gpus"]["gpu"], "count": -4}}}}),
]


@pytest.mark.parametrize(("case", "change", "reason"), REJECT, ids=[c[0] for c in REJECT])
def test_a_job_that_cannot_be_read_is_rejected_like_the_other_doors_reject(case, change,
                                                                           reason):
    bad = change(GOOD)
    result = _read(_other(1), bad, _other(2))
    assert [r.job_id_raw for r in result.records] == [1, 2]
    [rejected] = result.rejected
    assert rejected.line_no == 2 and reason in rejected.reason
    assert rejected.line == json.dumps(bad, default=str, ensure_ascii=False)[:2000]


@pytest.mark.xfail(strict=True, reason=NOT_VALIDATED)
@pytest.mark.parametrize(("case", "change"), UNCHECKED, ids=[c[0] for c in UNCHECKED])
def test_values_the_other_doors_reject_are_rejected(case, change):
    result = _read(_other(1), change(GOOD), _other(2))
    assert [r.job_id_raw for r in result.records] == [1, 2]
    assert [r.line_no for r in result.rejected] == [2]


@pytest.mark.xfail(strict=True, raises=OverflowError,
                   reason="int(float('inf')) escapes parse_jobs' except clause")
def test_a_float_time_is_rejected_not_raised():
    result = _read({**GOOD, "submit_time": float("inf")})
    assert len(result.rejected) == 1


_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                   st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(sorted(GOOD)), _VALUE, max_size=6),
                max_size=8))
def test_any_values_are_read_or_rejected_never_crash_or_multiply(changes):
    jobs = [{**GOOD, **change} for change in changes]
    result = _read(*jobs)
    assert len(result.records) + len(result.rejected) + len(result.pending_arrays) == len(jobs)
