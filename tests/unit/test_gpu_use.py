"""GPU use from job steps (issue 20): the definitions of engine/gpuuse.py on hand-made
steps, the sacct and slurmrestd step mappings on steps recorded from Slurm 24.11, the
rollup into periods, and the report's "no data" where a cluster records none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.engine.gpuuse import gpu_use, with_gpu_use
from collector.engine.rollup import LONG_IDLE_S, LocalDays, gpu_use_cells, usage_cells
from collector.slurm import slurmrestd_parser
from collector.slurm.records import StepRecord
from collector.slurm.sacct_parser import parse_steps
from testcluster import history

from .test_rollup import JOB

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm-24.11.5"
GIB = 1 << 30


def step(name: str, start: int, end: int, gpus: int, util: int | None,
         mem: int | None = 0) -> StepRecord:
    return StepRecord(name, start, end, gpus, util, mem)


def test_no_gpu_figure_on_any_step_is_no_data_not_idle():
    assert gpu_use(0, 3600, 4, [step("batch", 0, 3600, 4, None, None)]) is None
    assert gpu_use(0, 3600, 4, []) is None
    assert gpu_use(0, 3600, 0, [step("batch", 0, 3600, 0, 0)]) is None  # no GPUs held


def test_an_allocation_with_no_step_but_extern_is_idle_throughout():
    use = gpu_use(0, 7200, 8, [step("extern", 0, 7200, 8, 0)])
    assert use == (0, 8 * 7200, 7200, None)


def test_setup_before_the_srun_step_is_idle_and_busy_is_bounded_by_the_peak():
    steps = [step("extern", 0, 3600, 4, 0), step("batch", 0, 3600, 4, 0),
             step("0", 600, 3600, 4, 4 * 95, 4 * 60 * GIB)]
    use = gpu_use(0, 3600, 4, steps)
    assert use.idle_gpu_s == 4 * 600                 # the batch script alone: idle
    assert use.busy_gpu_s == 3000 * 4 * 95 // 100    # 95 % peak on 4 GPUs for 3000 s
    assert use.idle_stretch_s == 600
    assert use.gpu_mem_mib == 60 * 1024


def test_a_step_on_half_the_gpus_leaves_the_rest_idle_all_along():
    use = gpu_use(0, 10_000, 8, [step("extern", 0, 10_000, 8, 0),
                                 step("0", 0, 10_000, 4, 400)])
    assert use.idle_gpu_s == 4 * 10_000 and use.busy_gpu_s == 4 * 10_000
    assert use.idle_stretch_s == 10_000 > LONG_IDLE_S


def test_overlapping_steps_count_each_gpu_second_once():
    steps = [step("0", 0, 1000, 4, 400), step("1", 0, 1000, 4, 400),
             step("2", 500, 1000, 4, 800)]           # peaks over 100 per GPU (sums of tasks)
    use = gpu_use(0, 1000, 4, steps)
    assert use.idle_gpu_s == 0
    assert use.busy_gpu_s == 4 * 1000                # at most the GPU-seconds in use


def test_a_step_without_figures_in_a_job_with_them_is_in_use_not_idle():
    use = gpu_use(0, 1000, 2, [step("extern", 0, 1000, 2, 0),
                               step("0", 0, 1000, 2, None, None)])
    assert use.idle_gpu_s == 0 and use.busy_gpu_s == 0


def test_a_peak_of_zero_is_idle_and_steps_outside_the_job_are_clipped():
    use = gpu_use(100, 1100, 1, [step("0", 0, 600, 1, 0), step("1", 600, 5000, 1, 50)])
    assert use.idle_gpu_s == 500 and use.busy_gpu_s == 250 and use.idle_stretch_s == 500


def test_a_running_job_keeps_no_gpu_use():
    running = JOB._replace(end_s=None)
    assert with_gpu_use(running, [step("0", 0, 10, 1, 100)]) is running


def test_sacct_steps_recorded_on_24_11_attach_to_their_own_job_runs():
    steps, rejected = parse_steps((FIXTURES / "steps-sacct.txt").read_text(), "testai")
    assert not rejected and len(steps) >= 17
    by_id: dict[int, list] = {}
    for (_, raw, submit), found in steps.items():
        by_id.setdefault(raw, []).append((submit, found))
    assert any(len(runs) > 1 for runs in by_id.values())   # requeued: one entry per run
    live = [found for (_, raw, _), found in steps.items() if raw >= 5_000_000]
    assert live and all(s.gpuutil is None for found in live for s in found)
    backfilled = [found for (_, raw, _), found in steps.items() if raw < 5_000_000 and found]
    assert all(any(s.step == "extern" and s.gpuutil == 0 for s in f) for f in backfilled)
    assert any(s.gpuutil and s.gpuutil > 100 for f in backfilled for s in f)


def test_slurmrestd_steps_equal_sacct_steps_on_the_same_jobs():
    sacct, _ = parse_steps((FIXTURES / "steps-sacct.txt").read_text(), "testai")
    payload = json.loads((FIXTURES / "steps-slurmrestd.json").read_text())
    rest = slurmrestd_parser.parse_jobs(payload, "testai", steps=True)
    assert not rest.rejected and rest.steps
    for key, found in rest.steps.items():
        assert sorted(found) == sorted(sacct[key]), key
    assert slurmrestd_parser.parse_jobs(payload, "testai").steps is None  # not asked


@pytest.mark.parametrize("line, reason", [
    ("1001.0|2026-10-01T00:50:42|2026-10-01T00:50:42|2026-10-01T01:09:59|gres/gpu=2|"
     "gres/gpuutil=5", "does not follow its job's line"),
    ("1001|2026-10-01T00:50:42|x|y|gres/gpu=2", "5 fields, expected 6"),
    ("1001;rm|2026-10-01T00:50:42|||gres/gpu=2|", "is not a job or step id"),
])
def test_unreadable_step_lines_are_rejected_with_their_reason(line, reason):
    steps, rejected = parse_steps(line + "\n", "testai")
    assert [r.line_no for r in rejected] == [1] and reason in rejected[0].reason
    assert all(not found for found in steps.values())


def test_a_bad_gpu_figure_rejects_the_step_and_a_forged_key_is_not_read():
    text = ("7|2026-10-01T00:00:00|2026-10-01T00:00:00|2026-10-01T01:00:00|gres/gpu=1|\n"
            "7.0|2026-10-01T00:00:00|2026-10-01T00:00:00|2026-10-01T01:00:00|gres/gpu=1|"
            "gres/gpuutil=12a\n"
            "7.1|2026-10-01T00:00:00|2026-10-01T00:00:00|2026-10-01T01:00:00|gres/gpu=1|"
            "xgres/gpuutil=90\n")
    steps, rejected = parse_steps(text, "testai")
    assert [r.line_no for r in rejected] == [2] and "not a count" in rejected[0].reason
    (found,) = steps.values()
    assert [s.gpuutil for s in found] == [None]


def test_rolled_up_gpu_use_adds_up_to_the_jobs_exactly():
    utc = LocalDays("UTC")
    job = JOB._replace(start_s=1_000, end_s=1_000 + 50 * 3600 + 17, gpus=3, busy_gpu_s=400_001,
                       idle_gpu_s=99_999, idle_stretch_s=LONG_IDLE_S + 1, gpu_mem_mib=512)
    cells = list(gpu_use_cells(job, utc))
    assert len(cells) == len(list(usage_cells(job, utc))) == 3  # three UTC days
    sums = [sum(c[1][i] for c in cells) for i in range(6)]
    gpu_s = 3 * (50 * 3600 + 17)
    assert sums == [gpu_s, 400_001, 99_999, 512 * gpu_s, 1, gpu_s]
    assert [c[1][4] for c in cells] == [0, 0, 1]  # counted on the day it ended
    assert list(gpu_use_cells(JOB, utc)) == []  # no data: no cells, never zeros


def test_the_synthetic_steps_make_the_documented_mix():
    spec = history.HistorySpec(start=history.month_start(2026, 10), months=1, jobs=3000,
                               seed=5, not_after=history.month_start(2026, 12))
    hist = history.generate(spec, [f"gpu{i:02d}" for i in range(1, 5)])
    kinds = {"no step": 0, "batch": 0, "srun": 0}
    for job in hist.jobs:
        steps = history.job_steps(job)
        if not steps:
            assert not job.gpus or not job.ran or job.end <= job.start
            continue
        kinds["srun" if any(s.step_id >= 0 for s in steps) else
              "batch" if len(steps) > 1 else "no step"] += 1
        names = {history.EXTERN: "extern", history.BATCH: "batch"}
        records = [StepRecord(names.get(s.step_id, str(s.step_id)), s.start, s.end, s.gpus,
                              s.gpuutil, s.gpumem) for s in steps]
        use = gpu_use(job.start, job.end, job.gpus, records)
        assert use is not None and use.busy_gpu_s >= 0 and use.idle_gpu_s >= 0
        assert use.busy_gpu_s + use.idle_gpu_s <= job.gpus * (job.end - job.start)
    assert all(n > 50 for n in kinds.values()), kinds


def test_reports_by_category_and_the_quarterly_paragraph(tmp_path):
    from collector.collect import collect
    from collector.documents import text
    from collector.engine import periods
    from collector.engine.report import build_report
    from collector.store.database import Store

    from . import fakeslurm
    from .test_exporter import NOW

    jobs, steps = fakeslurm.gpu_use_jobs()
    settings, env = fakeslurm.make(tmp_path, jobs, steps)
    assert collect(settings, now=NOW, env=env).rejected == 0
    with Store.open_reader(settings.store.path) as store:
        november = build_report(store, settings, periods.month(2026, 11, "UTC"), now=NOW)
        quarter = build_report(store, settings, periods.quarter(2026, 4, "UTC"), now=NOW)
    eff = november.efficiency
    commercial = {c.category: c for c in eff.categories}["commercial"]
    assert commercial.idle_s == 6 * 3600 and commercial.long_idle_jobs == 1
    assert commercial.mem_peak_gib == 40.0 and commercial.over_threshold is False
    science = {c.category: c for c in eff.categories}["science"]
    assert science.busy_s is None and science.idle_share is None   # no data, not idle
    assert [p.group for p in eff.top_idle_projects] == ["com_acme"]
    assert text.energy_paragraph(november) is None                  # months: no paragraph
    paragraph = text.energy_paragraph(quarter)
    assert paragraph.startswith("Energy and GPU efficiency, 2026Q4:")
    assert "at most 60% were busy and 25% allocated but idle" in paragraph
    assert "1 job(s) held GPUs idle for more than an hour" in paragraph
    assert "energy not recorded on this cluster" in paragraph
    md = text.render(quarter, "md")
    assert paragraph.replace("_", "\\_") in md and "## Most idle-allocated projects" in md
    csv = text.render(quarter, "csv")
    assert "# efficiency.categories" in csv and "idle_allocated_gpu_hours" in csv


def test_mutated_step_lines_are_read_or_rejected_never_crash():
    """Real step lines, cut, doubled and sprinkled with hostile characters (a seeded
    generator, so a failure replays): parse_steps never raises, and every step it
    keeps has a name, whole non-negative figures and an end after its start."""
    import random
    rng = random.Random(7)
    real = (FIXTURES / "steps-sacct.txt").read_text().splitlines()
    hostile = ("|", "\n", "=", ",", "-1", "gres/gpuutil=", "\x00", "é", "9" * 30, "")
    for _ in range(1500):
        lines = [rng.choice(real) for _ in range(rng.randrange(1, 8))]
        for i in range(len(lines)):
            if rng.random() < 0.5:
                at = rng.randrange(len(lines[i]) + 1)
                cut = at + rng.randrange(0, 6)
                lines[i] = lines[i][:at] + rng.choice(hostile) + lines[i][cut:]
        steps, rejected = parse_steps("\n".join(lines), "testai")
        assert all(1 <= r.line_no <= len("\n".join(lines).split("\n")) for r in rejected)
        for found in steps.values():
            for s in found:
                assert s.gpuutil is None or (isinstance(s.gpuutil, int) and s.gpuutil >= 0)
                assert s.end_s >= s.start_s
            assert all(isinstance(s.step, str) and s.step for s in found)


def test_gpu_steps_off_reads_no_steps_and_says_so(tmp_path):
    from collector.collect import collect
    from collector.documents import text
    from collector.engine import periods
    from collector.engine.report import build_report
    from collector.store.database import Store

    from . import fakeslurm
    from .test_exporter import NOW

    jobs, steps = fakeslurm.gpu_use_jobs()
    settings, env = fakeslurm.make(tmp_path, jobs, steps)
    settings = fakeslurm.changed(settings, "slurm", gpu_steps="off")
    collect(settings, now=NOW, env=env)
    calls = (tmp_path / "slurm" / "calls.log").read_text()
    assert "--allocations" in calls and "TRESUsageInTot" not in calls   # no steps call
    with Store.open_reader(settings.store.path) as store:
        report = build_report(store, settings, periods.month(2026, 11, "UTC"), now=NOW)
    assert not report.efficiency.recorded and not report.efficiency.read
    assert 'not read: [slurm] gpu_steps is "off"' in text.efficiency_sentence(report)
