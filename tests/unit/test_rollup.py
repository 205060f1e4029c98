"""Rolling one job up: local days, clipping, size classes, queue-wait bins."""

import random
from collections import defaultdict
from datetime import date, datetime
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

from collector.engine.rollup import (
    NO_GPU,
    LocalDays,
    bucket_origin,
    energy_cells,
    gpu_use_cells,
    size_class,
    start_cell,
    usage_cells,
    wait_bin,
)
from collector.slurm.records import JobRecord

H = 3600
JOB = JobRecord(cluster="c", job_id_raw=1, job_id="1", array_job_id=None, array_task_id=None,
                het_job_id=None, het_job_offset=None, user="u", account="a", partition="gpu",
                qos="normal", wckey="pretrain", wckey_is_default=False, state="COMPLETED",
                submit_s=10 * H, eligible_s=10 * H + 60, start_s=11 * H + 1800,
                end_s=13 * H + 600, gpus=8, gpu_types=(("h100", 8),), nodes=2, cpus=16,
                nodelist="gpu[01-02]")


UTC = LocalDays("UTC")
DAY = 86400


def test_a_job_is_split_at_local_midnights():
    assert list(UTC.split(11 * H + 1800, 13 * H + 600)) == [(0, 2 * H - 1200)]
    assert list(UTC.split(DAY - 600, 2 * DAY + 60)) == [(0, 600), (DAY, DAY), (2 * DAY, 60)]
    assert list(UTC.split(DAY, DAY)) == []


def test_days_follow_daylight_saving_and_half_hour_zones():
    ams = LocalDays("Europe/Amsterdam")
    # 2026-10-25 is 25 hours long in Amsterdam: 22:00 UTC on the 24th to 23:00 on the 25th.
    start = 1792879200
    assert list(ams.split(start, start + 25 * H + 60)) == [(start, 25 * H), (start + 25 * H, 60)]
    assert bucket_origin("Europe/Amsterdam") == 0
    assert bucket_origin("Asia/Kolkata") == 1800
    # Kolkata's midnight is 18:30 UTC.
    assert list(LocalDays("Asia/Kolkata").split(18 * H, 19 * H)) == [
        (-5 * H - 1800, 1800), (18 * H + 1800, 1800)]


def _by_hours(start_s: int, end_s: int, zone: str) -> dict[int, int]:
    """Seconds per local day, cut hour by hour with the standard library alone."""
    out: dict[int, int] = defaultdict(int)
    tz = ZoneInfo(zone)
    t = start_s
    while t < end_s:
        local = datetime.fromtimestamp(t, tz)
        midnight = int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp())
        step = min(end_s, t + H - (t - bucket_origin(zone)) % H)
        out[midnight] += step - t
        t = step
    return dict(out)


def test_days_of_any_length_end_at_the_next_date():
    """A local day is usually 23 to 25 hours long, not always: Antarctica/Casey's
    2010-03-05 lasted 27 hours (+11 back to +08 at 02:00), Pacific/Apia skipped
    2011-12-30, America/Havana's clocks jump at midnight. A day is the span from its
    date's midnight to the next date's (islice: a wrong step would loop forever)."""
    for zone, year, month in (("Antarctica/Casey", 2010, 2), ("Pacific/Apia", 2011, 12),
                              ("America/Havana", 2026, 3), ("America/Havana", 2026, 10)):
        tz = ZoneInfo(zone)
        start = int(datetime(year, month, 20, tzinfo=tz).timestamp())
        end = start + 30 * DAY
        cut = list(islice(LocalDays(zone).split(start, end), 100))
        midnights = [day for day, _ in cut]
        assert [b - a for a, b in pairwise(midnights)] == [s for _, s in cut[:-1]]
        assert sum(s for _, s in cut) == end - start
        dates = [datetime.fromtimestamp(day, tz).date() for day in midnights]
        assert dates == sorted(set(dates)), zone  # one cell a date, in order
        if zone != "Antarctica/Casey":  # there the repeated hour 23:00 is back on the 4th
            assert dict(cut) == _by_hours(start, end, zone), zone
        else:
            casey = dict(zip(dates, (s for _, s in cut), strict=True))
            assert casey[date(2010, 3, 5)] == 27 * H and casey[date(2010, 3, 4)] == 24 * H


def test_short_spans_take_the_one_day_path_and_cut_as_hours_do():
    """`cells` answers a span inside one known local day at once: short spans that end
    just before, at or just after a local midnight, around 2026's clock changes (warm
    and cold caches), cut as hour by hour does."""
    rng = random.Random(11)
    for zone in ("Europe/Amsterdam", "Asia/Kolkata", "America/Havana", "Australia/Lord_Howe"):
        warm = LocalDays(zone)
        midnights = [day for first in (1_774_000_000, 1_792_000_000)
                     for day, _ in LocalDays(zone).split(first, first + 6 * DAY)][1:]
        for _ in range(400):
            end = rng.choice(midnights) + rng.choice((-60, -1, 0, 1, 59, 3600))
            start = end - rng.choice((0, 1, 59, 3600, rng.randrange(1, DAY)))
            want = {d: s for d, s in _by_hours(start, end, zone).items() if s}
            assert dict(warm.cells(start, end)) == want, (zone, start, end)
            assert warm.cells(start, end) == list(LocalDays(zone).split(start, end))


def test_day_cells_equal_hour_cells_added_up_per_day():
    """Cutting by days gives what cutting by hours and adding each day's hours gave: the
    seconds, and energy and GPU use split with running sums (telescoping)."""
    rng = random.Random(7)
    for zone in ("Europe/Amsterdam", "Asia/Kolkata", "America/New_York", "UTC"):
        days = LocalDays(zone)
        for _ in range(200):
            start = 1_790_000_000 + rng.randrange(0, 120 * DAY)
            job = JOB._replace(start_s=start, end_s=start + rng.randrange(1, 9 * DAY),
                               energy_j=rng.randrange(0, 10**10), busy_gpu_s=rng.randrange(10**7),
                               idle_gpu_s=rng.randrange(10**7), idle_stretch_s=0,
                               gpu_mem_mib=100)
            cells = list(usage_cells(job, days))
            expected = _by_hours(job.start_s, job.end_s, zone)
            assert {k[1]: g // job.gpus for k, g in cells} == expected, zone
            elapsed = job.end_s - job.start_s
            done = 0
            for (key, (joules, _)), (_, use) in zip(energy_cells(job, days, cells),
                                                    gpu_use_cells(job, days, cells),
                                                    strict=True):
                before = done
                done += expected[key[1]]
                assert joules == job.energy_j * done // elapsed - job.energy_j * before // elapsed
                assert use[1] == job.busy_gpu_s * done // elapsed - \
                    job.busy_gpu_s * before // elapsed


def test_usage_cells_hold_gpus_times_seconds_with_the_dimensions():
    job = JOB._replace(end_s=DAY + 600)
    cells = list(usage_cells(job, UTC))
    assert [c[1] for c in cells] == [8 * (DAY - job.start_s), 8 * 600]
    assert cells[0][0] == ("c", 0, "a", "u", "gpu", "h100", "pretrain", "2-16 nodes")
    assert sum(c[1] for c in cells) == 8 * (job.end_s - job.start_s)


def test_running_never_started_and_cpu_jobs_are_not_rolled_up():
    assert list(usage_cells(JOB._replace(end_s=None), UTC)) == []
    assert list(usage_cells(JOB._replace(nodes=0, gpus=0, nodelist=""), UTC)) == []
    assert list(usage_cells(JOB._replace(gpus=0), UTC)) == []


def test_start_cell_counts_the_wait_from_eligible():
    key, wait = start_cell(JOB, UTC)
    assert wait == JOB.start_s - JOB.eligible_s
    assert key == ("c", 0, "a", "u", "2-16 nodes", wait_bin(wait))
    assert start_cell(JOB._replace(gpus=0), UTC)[0][4] == NO_GPU
    assert start_cell(JOB._replace(start_s=None, nodes=0), UTC) is None


def test_size_classes():
    assert [size_class(1, 1), size_class(4, 1), size_class(8, 2), size_class(64, 16),
            size_class(128, 17)] == ["1 GPU", "1 node", "2-16 nodes", "2-16 nodes", ">16 nodes"]


def test_wait_bins_include_their_upper_edge():
    assert [wait_bin(0), wait_bin(60), wait_bin(61), wait_bin(3600), wait_bin(10**7)] == \
        [0, 0, 1, 4, 13]


def test_local_days_follow_the_zone():
    days = LocalDays("Europe/Amsterdam")
    # 2026-10-25 01:00 UTC is 03:00 CEST->02:00 CET on the DST day; midnight was 22:00 UTC.
    assert days(1792890000) == 1792879200
