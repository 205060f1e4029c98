"""The generated history is deterministic, physically possible and has every case."""

import tomllib
from collections import Counter, defaultdict
from importlib import resources

import pytest

from testcluster import history as h
from testcluster.accounts import PROJECTS

NODES = ["gpu01", "gpu02", "gpu03", "gpu04"]
SPEC = h.HistorySpec(start=h.month_start(2026, 7), months=3, jobs=6000, seed=7)


@pytest.fixture(scope="module")
def hist():
    return h.generate(SPEC, NODES)


def test_same_spec_gives_the_same_history(hist):
    again = h.generate(SPEC, NODES)
    assert again.jobs == hist.jobs
    assert again.outages == hist.outages
    other = h.generate(h.HistorySpec(SPEC.start, SPEC.months, SPEC.jobs, seed=8), NODES)
    assert other.jobs != hist.jobs


def test_job_count_is_close_to_the_request(hist):
    assert SPEC.jobs - 25 <= len(hist.jobs) <= SPEC.jobs + 25


def _gpu_intervals(hist):
    per_node = defaultdict(list)
    for job in hist.jobs:
        if job.ran and job.gpus:
            share = job.gpus // len(job.nodes)
            for node in job.nodes:
                per_node[node].append((job.start, job.end, share))
    return per_node


def test_no_node_ever_has_more_than_four_gpus_in_use(hist):
    for node, intervals in _gpu_intervals(hist).items():
        events = sorted([(s, u) for s, _, u in intervals] + [(e, -u) for _, e, u in intervals],
                        key=lambda x: (x[0], x[1]))
        in_use = 0
        for _, delta in events:
            in_use += delta
            assert in_use <= 4, node


def test_nothing_runs_on_a_node_that_is_down_or_in_maintenance(hist):
    blocked = [(o.node, o.start, o.end) for o in hist.outages]
    blocked += [(n, m.start, m.end) for m in hist.maintenance for n in NODES]
    for job in hist.jobs:
        for node, start, end in blocked:
            if job.ran and node in job.nodes:
                assert job.end <= start or job.start >= end, (job.job_id, node)


def test_times_are_ordered(hist):
    for job in hist.jobs:
        assert job.submit <= job.eligible <= job.start <= job.end


def test_history_has_every_case_the_collector_must_handle(hist):
    states = Counter(j.state for j in hist.jobs)
    for state in (h.COMPLETE, h.FAILED, h.TIMEOUT, h.CANCELLED, h.NODE_FAIL, h.OOM, h.REQUEUED):
        assert states[state] > 0, state
    boundaries = [h.add_months(SPEC.start, m) for m in range(1, SPEC.months)]
    assert any(j.start < b < j.end for j in hist.jobs for b in boundaries), "no job spans a month"
    assert any(len(j.nodes) > 1 for j in hist.jobs), "no multi-node job"
    assert any(j.array_task_id is not None for j in hist.jobs), "no array task"
    assert any(not j.ran for j in hist.jobs), "no job that never started"
    assert any(j.gpus == 0 and j.ran for j in hist.jobs), "no CPU-only job"
    ids = Counter(j.job_id for j in hist.jobs)
    requeued = [i for i, n in ids.items() if n > 1]
    assert requeued, "no requeued job with two records"
    for job_id in requeued:
        runs = sorted((j for j in hist.jobs if j.job_id == job_id), key=lambda j: j.submit)
        assert runs[0].state == h.REQUEUED and runs[1].submit == runs[0].end
    assert {o.state for o in hist.outages} == {h.NODE_DOWN, h.NODE_DRAIN_IDLE}
    assert any(o.start < b < o.end for o in hist.outages for b in boundaries), \
        "no outage across a month boundary"
    assert len(hist.maintenance) == 1
    assert {"pretrain", "finetune", "inference"} <= {j.wckey for j in hist.jobs}
    assert any("|" in j.name for j in hist.jobs) and any("<" in j.name for j in hist.jobs)


def test_array_tasks_share_the_array_id_and_the_last_task_carries_it(hist):
    arrays = defaultdict(list)
    for job in hist.jobs:
        if job.array_task_id is not None:
            arrays[job.array_job_id].append(job)
    for array_id, tasks in arrays.items():
        last = max(tasks, key=lambda j: j.array_task_id)
        assert last.job_id == array_id
        assert sorted(t.array_task_id for t in tasks) == list(range(len(tasks)))


def test_never_started_jobs_have_no_nodes_and_start_equals_end(hist):
    for job in hist.jobs:
        if not job.ran:
            assert job.state == h.CANCELLED and job.start == job.end


def test_some_categories_end_over_and_some_under_their_quota(hist):
    policy = tomllib.loads(resources.files("testcluster").joinpath("facility.toml").read_text())
    quota = {c["name"]: c["quota_share"] for c in policy["categories"]}
    category = {p.name: p.category for p in PROJECTS}
    used = Counter()
    for job in hist.jobs:
        if job.ran:
            used[category[job.account]] += job.gpus * (job.end - job.start)
    # Quotas are shares of the available GPU time: capacity less outages and maintenance.
    available = 16 * (SPEC.end - SPEC.start)
    available -= sum(4 * (o.end - o.start) for o in hist.outages)
    available -= sum(16 * (m.end - m.start) for m in hist.maintenance)
    over = {c for c in quota if used[c] / available > quota[c] * 1.05}
    under = {c for c in quota if used[c] / available < quota[c] * 0.95}
    assert over == {"eu_science", "commercial", "science", "startup"}
    assert under == {"eu_industry", "public", "sme", "industry", "staff"}
    eurohpc = sum(used[c] for c in ("eu_science", "eu_industry", "commercial"))
    assert used["commercial"] / eurohpc > 0.20


def test_not_after_drops_what_would_still_run(hist):
    cut = h.add_months(SPEC.start, 2)
    trimmed = h.generate(h.HistorySpec(SPEC.start, SPEC.months, SPEC.jobs, SPEC.seed,
                                       not_after=cut), NODES)
    assert trimmed.jobs and all(j.end <= cut for j in trimmed.jobs)


def test_default_start_is_whole_months_before_the_current_one():
    now = h.month_start(2026, 11) + 21 * 86400 + 3600
    assert h.default_start(3, now) == h.month_start(2026, 8)
    assert h.default_start(13, now) == h.month_start(2025, 10)


def test_a_history_made_a_month_at_a_time_is_one_possible_history():
    """generate_by_month (histories too large to hold whole): ids follow on from month
    to month, each month's jobs are submitted in it, and the nodes are never
    overbooked across a month boundary (a month is placed where the last one left off)."""
    spec = h.HistorySpec(start=h.month_start(2026, 7), months=3, jobs=6000, seed=7)
    months = list(h.generate_by_month(spec, NODES))
    assert [m.start for m in months] == [h.add_months(spec.start, i) for i in range(3)]
    whole = h.History(spec.start, spec.end)
    for m in months:
        assert all(m.start <= j.submit < m.end for j in m.jobs)
        whole.jobs += m.jobs
        whole.outages += m.outages
        whole.maintenance += m.maintenance
    assert SPEC.jobs - 25 <= len(whole.jobs) <= SPEC.jobs + 25
    ids = [j.job_id for m in months for j in m.jobs]
    assert max(j.job_id for j in months[0].jobs) < min(j.job_id for j in months[1].jobs)
    assert len({(j.job_id, j.submit) for j in whole.jobs}) == len(whole.jobs)
    assert min(ids) == h.FIRST_JOB_ID
    # The month boundary is crossed by running jobs, and nothing is overbooked.
    assert any(j.ran and j.start < months[1].start < j.end for j in months[0].jobs)
    test_no_node_ever_has_more_than_four_gpus_in_use(whole)
    test_nothing_runs_on_a_node_that_is_down_or_in_maintenance(whole)
    assert [m.jobs for m in h.generate_by_month(spec, NODES)] == [m.jobs for m in months]
