"""History jobs become job-table rows the way Slurm 22.05 writes them."""

from testcluster import backfill, history
from testcluster.backfill import JOB_COLUMNS, Ids

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
