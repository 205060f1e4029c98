"""The test cluster runs, and real jobs are accounted with their GPUs, account and WCKey."""

from __future__ import annotations

import pytest

from testcluster import processes
from testcluster.cluster import daemon_names

from .conftest import run_cli, slurm

pytestmark = pytest.mark.integration


def test_sinfo_shows_four_nodes_with_sixteen_gpus(lay):
    out = slurm(lay, "sinfo", "-h", "-N", "-o", "%N|%G|%t")
    rows = [line.split("|") for line in out.splitlines()]
    assert sorted(r[0] for r in rows) == ["gpu01", "gpu02", "gpu03", "gpu04"]
    gpus = sum(int(r[1].rsplit(":", 1)[1]) for r in rows)
    assert gpus == 16 and all(r[1].startswith("gpu:h100:") for r in rows)
    assert all(r[2] in ("idle", "mix", "alloc") for r in rows)


def test_up_again_changes_nothing(lay, cli_args):
    before = {n: processes.pid_of(lay.pid_dir, n, lay.run_dir) for n in daemon_names(lay)}
    assert all(before.values())
    out = run_cli("cluster", "up", *cli_args).stdout
    after = {n: processes.pid_of(lay.pid_dir, n, lay.run_dir) for n in daemon_names(lay)}
    assert after == before
    assert "0 associations and 0 Unix users created now" in out


def test_status_lists_every_daemon_running(lay, cli_args):
    out = run_cli("cluster", "status", *cli_args).stdout
    for name in daemon_names(lay):
        assert f"{name}" in out
    assert out.count("running, pid") == len(daemon_names(lay))


def test_account_tree_has_pools_categories_projects_and_budgets(lay):
    out = slurm(lay, "sacctmgr", "-n", "-P", "show", "assoc", f"cluster={lay.cluster}",
                "format=account,user,parentname,grptresmins")
    parent = {}
    budget = {}
    for line in out.splitlines():
        account, user, par, grp = line.split("|")
        if not user:
            parent[account] = par
            budget[account] = grp
    assert parent["eurohpc"] == "root" and parent["national"] == "root"
    assert parent["commercial"] == "eurohpc" and parent["sme"] == "national"
    assert parent["ehpc_llm01"] == "eu_science" and parent["nl_uva_nlp"] == "science"
    assert budget["ehpc_llm01"] == "gres/gpu=540000"


@pytest.fixture(scope="module")
def workload(lay, cli_args):
    out = run_cli("cluster", "workload", *cli_args).stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].isdigit():
            jobs[parts[1]] = parts[0]
    assert len(jobs) == 13, out
    return jobs


def _sacct(lay, job_id):
    out = slurm(lay, "sacct", "-a", "-X", "-D", "-P", "-n", "-j", job_id,
                "-o", "jobid,user,account,wckey,state,alloctres")
    return [line.split("|") for line in out.splitlines()]


@pytest.mark.parametrize("label,gpus,wckey", [
    ("single-gpu", 1, "pretrain"),
    ("gres-whole-node", 4, "finetune"),
    ("multi-node", 8, "pretrain"),
    ("gpus-per-task", 2, "*other"),
    ("commercial-inference", 2, "inference"),
])
def test_gpu_job_is_accounted_with_account_and_wckey(lay, workload, label, gpus, wckey):
    from testcluster.workload import SUBMISSIONS

    sub = next(s for s in SUBMISSIONS if s.label == label)
    [row] = _sacct(lay, workload[label])
    _, user, account, got_wckey, state, tres = row
    assert (user, account, got_wckey, state) == (sub.user, sub.account, wckey, "COMPLETED")
    assert f"gres/gpu={gpus}" in tres.split(",")
    assert f"gres/gpu:h100={gpus}" in tres.split(",")


def test_array_tasks_failures_cancellations_requeues_and_het_jobs(lay, workload):
    array = _sacct(lay, workload["array"])
    assert sorted(r[0] for r in array) == [f"{workload['array']}_{i}" for i in range(4)]
    [failed] = _sacct(lay, workload["failing"])
    assert failed[4] == "FAILED"
    [cancelled] = _sacct(lay, workload["cancel-running"])
    assert cancelled[4].startswith("CANCELLED by ") and "gres/gpu=1" in cancelled[5]
    requeued = _sacct(lay, workload["requeued"])
    assert [r[4] for r in requeued] == ["REQUEUED", "COMPLETED"]
    het = _sacct(lay, workload["hetjob"])
    assert [r[0] for r in het] == [f"{workload['hetjob']}+0", f"{workload['hetjob']}+1"]
    assert "gres/gpu=1" in het[0][5] and "gres/gpu" not in het[1][5]
    [cpu] = _sacct(lay, workload["cpu-only"])
    assert "gres/gpu" not in cpu[5]


def test_hostile_job_name_survives_the_round_trip(lay, workload):
    out = slurm(lay, "sacct", "-X", "-P", "-n", "-j", workload["hostile-name"],
                "-o", "jobname,state")
    name, state = out.rstrip("\n").rsplit("|", 1)
    assert state == "COMPLETED"
    # sacct shows a double quote as a backquote (seen on 22.05); the rest is kept.
    assert name == 'eval|`quoted` <b>bold</b> ünï'
