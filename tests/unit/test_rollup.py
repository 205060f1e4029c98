"""Rolling one job up: hour buckets, clipping, size classes, queue-wait bins."""

from collector.engine.rollup import (
    NO_GPU,
    LocalDays,
    bucket_origin,
    size_class,
    split_hours,
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


def test_a_job_is_split_at_hour_boundaries():
    assert list(split_hours(11 * H + 1800, 13 * H + 600)) == [
        (11 * H, 1800), (12 * H, 3600), (13 * H, 600)]


def test_half_hour_zones_get_half_hour_origins():
    assert bucket_origin("Europe/Amsterdam") == 0
    assert bucket_origin("Asia/Kolkata") == 1800
    assert list(split_hours(0, 3600, origin_s=1800)) == [(-1800, 1800), (1800, 1800)]


def test_usage_cells_hold_gpus_times_seconds_with_the_dimensions():
    cells = list(usage_cells(JOB, 0))
    assert [c[1] for c in cells] == [8 * 1800, 8 * 3600, 8 * 600]
    assert cells[0][0] == ("c", 11 * H, "a", "u", "gpu", "h100", "pretrain", "2-16 nodes")
    assert sum(c[1] for c in cells) == 8 * (JOB.end_s - JOB.start_s)


def test_running_never_started_and_cpu_jobs_are_not_rolled_up():
    assert list(usage_cells(JOB._replace(end_s=None), 0)) == []
    assert list(usage_cells(JOB._replace(nodes=0, gpus=0, nodelist=""), 0)) == []
    assert list(usage_cells(JOB._replace(gpus=0), 0)) == []


def test_start_cell_counts_the_wait_from_eligible():
    key, wait = start_cell(JOB, 0)
    assert wait == JOB.start_s - JOB.eligible_s
    assert key == ("c", 11 * H, "a", "u", "2-16 nodes", wait_bin(wait))
    assert start_cell(JOB._replace(gpus=0), 0)[0][4] == NO_GPU
    assert start_cell(JOB._replace(start_s=None, nodes=0), 0) is None


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
