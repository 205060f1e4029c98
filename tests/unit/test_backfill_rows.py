"""History jobs become job-table rows the way Slurm 22.05 writes them; the progress
record of a backfill made a month at a time."""

import json

import pytest

from testcluster import backfill, history
from testcluster.backfill import JOB_COLUMNS, Ids
from testcluster.processes import ClusterError

IDS = Ids(
    tres={"cpu": 1, "mem": 2, "energy": 3, "node": 4, "billing": 5, "gpu": 1001,
          "gpu:h100": 1002},
    assoc={("anna", "ehpc_llm01"): 34}, wckey={("anna", "pretrain"): 9, ("anna", "other"): 12},
    qos_normal=1, root_assoc=2, unix={"anna": (1001, 1001)},
)
NODE_INDEX = {"gpu01": 0, "gpu02": 1, "gpu03": 2, "gpu04": 3}


def _job(**kw):
    base = dict(job_id=1234, user="anna", account="ehpc_llm01", wckey="pretrain", name="a|b",
                state=history.COMPLETE, submit=100, eligible=100, start=200, end=500, gpus=8,
                cpus=8, nodes=("gpu02", "gpu03"), timelimit_min=60)
    base.update(kw)
    return history.HistoryJob(**base)


def _row(job):
    return dict(zip(JOB_COLUMNS, backfill.job_row(job, IDS, NODE_INDEX), strict=True))


def test_multi_node_gpu_job():
    row = _row(_job())
    joules = history.energy_j(_job())
    assert row["tres_alloc"] == f"1=8,2=64000,3={joules},4=2,5=8,1001=8,1002=8"
    assert row["nodelist"] == "gpu[02-03]" and row["node_inx"] == "1-2"
    assert row["nodes_alloc"] == 2 and row["id_assoc"] == 34 and row["id_wckey"] == 9
    assert row["id_array_task"] == backfill.NO_VAL and row["het_job_offset"] == backfill.NO_VAL
    assert row["kill_requid"] is None and row["job_name"] == "a|b"


def test_job_that_never_started_allocates_nothing():
    row = _row(_job(state=history.CANCELLED, start=300, end=300, nodes=(), killed_by_owner=True))
    assert row["tres_alloc"] == "" and row["nodelist"] == "None assigned"
    assert row["nodes_alloc"] == 0 and row["kill_requid"] == 1001
    assert "1001=8" in row["tres_req"]


def test_array_task_and_default_wckey():
    row = _row(_job(array_job_id=1230, array_task_id=4, wckey="*other", gpus=1, cpus=1,
                    nodes=("gpu01",)))
    assert (row["id_array_job"], row["id_array_task"]) == (1230, 4)
    assert row["wckey"] == "*other" and row["id_wckey"] == 12
    assert row["tres_alloc"].startswith("1=1,2=8000,3=")
    assert row["tres_alloc"].endswith(",4=1,5=1,1001=1,1002=1")


def test_cpu_only_job_has_no_gpu_tres():
    row = _row(_job(gpus=0, cpus=2, nodes=("gpu04",)))
    assert "1001" not in row["tres_alloc"] and row["node_inx"] == "3"


def test_energy_follows_the_use_phase_between_idle_and_full_power():
    hour = dict(start=0, end=3600, gpus=4, cpus=4, nodes=("gpu01",))
    pretrain = history.energy_j(_job(**hour, wckey="pretrain")) / 3.6e6
    inference = history.energy_j(_job(**hour, wckey="inference")) / 3.6e6
    assert 4 * 0.22 <= inference < pretrain <= 4 * 0.85   # kWh per GPU-hour bounds
    assert history.energy_j(_job(nodes=(), state=history.CANCELLED)) is None
    assert history.energy_j(_job(**{**hour, "gpus": 0})) == 3600 * 400


# -- the progress record of a backfill made a month at a time ------------------------

def _lay(tmp_path):
    from testcluster.layout import Layout
    lay = Layout(tmp_path, 26800)
    lay.etc_dir.mkdir(parents=True)
    return lay


def _state(**kw):
    spec = history.HistorySpec(start=1_751_328_000, months=12, jobs=10_000_000, seed=1)
    state = {"spec": spec.__dict__, "months_written": 12, "rollup_from": 1_751_328_000,
             "months_rolled_up": 4, "generate_s": 1.0, "write_s": 2.0, "rollup_s": 3.0,
             "step_rows": 0, "jobs": 10_000_000}
    return state | kw


def test_progress_record_round_trips_and_is_replaced_whole(tmp_path):
    lay = _lay(tmp_path)
    backfill.save_progress(lay, _state())
    backfill.save_progress(lay, _state(months_rolled_up=5))
    assert backfill.saved_progress(lay)["months_rolled_up"] == 5
    assert [p.name for p in lay.etc_dir.iterdir()] == [backfill.PROGRESS_FILE]


@pytest.mark.parametrize("content, says", [
    (None, "no interrupted backfill to resume"),
    ("{", "unusable backfill progress record"),
    (json.dumps({"months_written": 3}), "unusable backfill progress record"),
    (json.dumps(_state(spec={"start": 1, "months": 12, "jobs": 5, "colour": 1})),
     "unusable backfill progress record"),
    (json.dumps(_state(months_written=13, months_rolled_up=0)), "13 month(s) written"),
    (json.dumps(_state(months_written=6, months_rolled_up=2)), "6 month(s) written and 2"),
    (json.dumps(_state(months_rolled_up=-1)), "-1 rolled up"),
])
def test_a_progress_record_that_cannot_be_resumed_is_refused_by_name(tmp_path, content, says):
    lay = _lay(tmp_path)
    if content is not None:
        (lay.etc_dir / backfill.PROGRESS_FILE).write_text(content)
    with pytest.raises(ClusterError) as err:
        backfill.saved_progress(lay)
    assert says in str(err.value) and str(lay.etc_dir / backfill.PROGRESS_FILE) in str(err.value)


def test_resume_refuses_parameters_of_its_own():
    from click.testing import CliRunner

    from testcluster.cli import cluster
    got = CliRunner().invoke(cluster, ["backfill", "--resume", "--jobs", "500", "--seed", "3",
                                       "--start", "2026-01"])
    assert got.exit_code == 2
    assert "--resume takes the interrupted backfill's own parameters: drop --jobs, --seed, " \
        "--start" in got.output
