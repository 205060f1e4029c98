"""After a backfill, sacct shows every history record and sreport's numbers equal
figures computed here, independently, from the generated history."""

from __future__ import annotations

import json
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from collector import clock
from collector.slurm.commands import new_delimiter, run_sacct
from collector.slurm.sacct_parser import parse_sacct
from testcluster import backfill, history
from testcluster.processes import ClusterError

from .conftest import run_cli, slurm

pytestmark = pytest.mark.integration
MONTHS, JOBS, SEED = 2, 4000, 11


@pytest.fixture(scope="module")
def hist(lay, cli_args):
    run_cli("cluster", "backfill", *cli_args, "--months", str(MONTHS), "--jobs", str(JOBS),
            "--seed", str(SEED))
    spec = backfill.recorded_spec(lay)
    assert (spec.months, spec.jobs, spec.seed) == (MONTHS, JOBS, SEED)
    return history.generate(spec, lay.nodes)


def _day(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _parents(lay) -> dict[str, str]:
    out = slurm(lay, "sacctmgr", "-n", "-P", "show", "assoc", f"cluster={lay.cluster}",
                "format=account,user,parentname")
    return {a: p for a, u, p in (line.split("|") for line in out.splitlines()) if not u}


def _expected_gpu_seconds(hist, parents, start, end) -> Counter:
    """GPU-seconds per account in [start, end), parents including their children."""
    per_account: Counter = Counter()
    for job in hist.jobs:
        overlap = min(job.end, end) - max(job.start, start)
        if job.nodes and job.gpus and overlap > 0:
            per_account[job.account] += job.gpus * overlap
    total: Counter = Counter()
    for account, seconds in per_account.items():
        while account:
            total[account] += seconds
            account = parents.get(account, "")
    return total


def test_sacct_returns_every_history_record(lay, hist):
    out = slurm(lay, "sacct", "-a", "-X", "-D", "-P", "-n", "-S", _day(hist.start), "-E", "now",
                "-o", "jobidraw")
    got = Counter(int(x) for x in out.split() if int(x) < 5_000_000)
    assert got == Counter(j.job_id for j in hist.jobs)


@pytest.mark.parametrize("month", range(MONTHS))
def test_sreport_account_gpu_minutes_equal_the_history(lay, hist, month):
    start, end = history.add_months(hist.start, month), history.add_months(hist.start, month + 1)
    expected = _expected_gpu_seconds(hist, _parents(lay), start, end)
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "AccountUtilizationByUser", f"start={_day(start)}", f"end={_day(end)}")
    reported = {}
    for line in out.splitlines():
        _, account, login, _, tres, used = line.split("|")
        assert tres == "gres/gpu"
        if not login:
            reported[account] = int(used)
    assert set(reported) >= {a for a, s in expected.items() if s >= 60}
    assert expected["root"] > 100_000 * 60  # a realistic month, not an empty one
    for account in set(reported) | set(expected):
        assert abs(reported.get(account, 0) - expected[account] / 60) <= 1, account


@pytest.mark.parametrize("month", range(MONTHS))
def test_sreport_capacity_and_outages_equal_the_history(lay, hist, month):
    start, end = history.add_months(hist.start, month), history.add_months(hist.start, month + 1)
    out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                "utilization", f"start={_day(start)}", f"end={_day(end)}")
    _, tres, allocated, down, planned_down, idle, _, reported = out.strip().split("|")
    expected = _expected_gpu_seconds(hist, {}, start, end)
    outage_s = sum(4 * max(0, min(o.end, end) - max(o.start, start)) for o in hist.outages)
    assert int(reported) == 16 * (end - start) // 60
    assert abs(int(allocated) - sum(expected.values()) / 60) <= 1
    # Down and drained nodes both count as down. A 22.05 maintenance reservation
    # records CPUs only, so sreport shows no GPU planned-down for it, except where
    # it overlaps a node that is down anyway (that time moves to planned-down).
    assert abs(int(down) + int(planned_down) - outage_s / 60) <= 1
    assert int(allocated) + int(down) + int(planned_down) + int(idle) == int(reported)


def test_summary_prints_each_backfilled_month_with_sreport_totals(lay, cli_args, hist):
    out = run_cli("cluster", "summary", *cli_args, "--months", str(MONTHS)).stdout
    parents = _parents(lay)
    for month in range(MONTHS):
        start = history.add_months(hist.start, month)
        end = history.add_months(hist.start, month + 1)
        label = time.strftime("%Y-%m", time.gmtime(start))
        row = next(line for line in out.splitlines() if f" {label} " in line)
        root_h = _expected_gpu_seconds(hist, parents, start, end)["root"] / 3600
        # The month's row: month, jobs, allocated GPU-hours (rounded), ...
        cells = [c.strip() for c in row.replace("│", "|").split("|") if c.strip()]
        assert cells[0] == label
        assert abs(int(cells[2].replace(",", "")) - root_h) <= 1, (label, root_h, row)


def test_collector_door_and_parser_read_every_history_record_as_written(lay, hist):
    d = new_delimiter()
    result = parse_sacct(run_sacct(hist.start, int(clock.now()), None, d, env=lay.env()),
                         None, d)
    assert result.rejected == [] and result.pending_arrays == []
    got = {(r.job_id_raw, r.submit_s): r for r in result.records if r.job_id_raw < 5_000_000}
    assert len(got) == len(hist.jobs)
    for job in hist.jobs:
        rec = got[(job.job_id, job.submit)]
        assert (rec.user, rec.account, rec.eligible_s, rec.end_s) == \
            (job.user, job.account, job.eligible, job.end)
        assert rec.started == job.ran and rec.array_task_id == job.array_task_id
        assert (rec.wckey, rec.wckey_is_default) == (job.wckey.lstrip("*"),
                                                      job.wckey.startswith("*"))
        if job.ran:
            assert (rec.gpus, rec.nodes, rec.start_s) == (job.gpus, len(job.nodes), job.start)
        else:
            assert (rec.gpus, rec.nodes) == (0, 0)
        if job.name.isascii() and '"' not in job.name:
            assert rec.name == job.name


def test_backfill_again_replaces_the_history_and_its_usage(lay, cli_args, hist):
    """A different history replaces the first one: no job and no rolled-up usage of
    the first survives (slurmdbd would otherwise keep usage of accounts that have
    none in the new history). Runs last in this module: it replaces `hist`."""
    run_cli("cluster", "backfill", *cli_args, "--months", "1", "--jobs", "1500", "--seed", "5",
            "--start", time.strftime("%Y-%m", time.gmtime(hist.start)))
    new = history.generate(backfill.recorded_spec(lay), lay.nodes)
    out = slurm(lay, "sacct", "-a", "-X", "-D", "-P", "-n", "-S", _day(hist.start), "-E", "now",
                "-o", "jobidraw")
    assert Counter(int(x) for x in out.split() if int(x) < 5_000_000) == \
        Counter(j.job_id for j in new.jobs)
    for month in range(MONTHS):
        start = history.add_months(hist.start, month)
        end = history.add_months(hist.start, month + 1)
        expected = _expected_gpu_seconds(new, _parents(lay), start, end)
        out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                    "AccountUtilizationByUser", f"start={_day(start)}", f"end={_day(end)}")
        for line in out.splitlines():
            _, account, login, _, _, used = line.split("|")
            if not login:
                assert abs(int(used) - expected[account] / 60) <= 1, (month, account)


class _Stop(Exception):
    """The fault: raised from the progress callback at a point the test chooses."""


def test_backfill_by_month_interrupted_twice_is_finished_by_resume(lay, cli_args, hist):
    """A backfill made a month at a time, stopped inside its second month's job rows
    and again after rolling up its first month, is finished by `backfill --resume`:
    every job once, and sreport's GPU-minutes per account and month equal the
    history's. Runs last in this module: it replaces `hist`."""
    spec = history.HistorySpec(start=hist.start, months=MONTHS, jobs=3000, seed=7,
                               not_after=int(clock.now()) - 7200)
    written: list[int] = []

    def stop_in_second_month(phase: str, done: int, total: int) -> None:
        if phase == "months":
            written.append(done)
        if phase == "jobs" and written == [1]:
            raise _Stop  # month 2's first batch of job rows is committed

    with pytest.raises(_Stop):
        backfill.backfill(lay, spec, stop_in_second_month, by_month=True)
    state = backfill.saved_progress(lay)
    assert (state["months_written"], state["months_rolled_up"]) == (1, 0)
    with pytest.raises(ClusterError):  # the earlier history's record is gone
        backfill.recorded_spec(lay)

    def stop_after_first_month_rolled(phase: str, done: int, total: int) -> None:
        if phase == "rollup months" and done == 1:
            raise _Stop

    with pytest.raises(_Stop):
        backfill.resume(lay, stop_after_first_month_rolled)
    state = backfill.saved_progress(lay)
    assert (state["months_written"], state["months_rolled_up"]) == (MONTHS, 1)

    out = run_cli("cluster", "backfill", *cli_args, "--resume").stdout
    assert "resumed and finished the backfill of 3,000 job records" in out
    assert backfill.recorded_spec(lay) == spec
    assert not (lay.etc_dir / backfill.PROGRESS_FILE).exists()
    finished = json.loads((lay.etc_dir / backfill.FINISHED_FILE).read_text())
    assert (finished["months_written"], finished["months_rolled_up"]) == (MONTHS, MONTHS)
    made = SimpleNamespace(jobs=[j for month in history.generate_by_month(spec, lay.nodes)
                                 for j in month.jobs])
    out = slurm(lay, "sacct", "-a", "-X", "-D", "-P", "-n", "-S", _day(hist.start), "-E", "now",
                "-o", "jobidraw")
    assert Counter(int(x) for x in out.split() if int(x) < 5_000_000) == \
        Counter(j.job_id for j in made.jobs)
    parents = _parents(lay)
    for month in range(MONTHS):
        start = history.add_months(hist.start, month)
        end = history.add_months(hist.start, month + 1)
        expected = _expected_gpu_seconds(made, parents, start, end)
        out = slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                    "AccountUtilizationByUser", f"start={_day(start)}", f"end={_day(end)}")
        accounts = 0
        for line in out.splitlines():
            _, account, login, _, _, used = line.split("|")
            if not login:
                accounts += 1
                assert abs(int(used) - expected[account] / 60) <= 1, (month, account)
        assert accounts > 1 and expected["root"] > 0
