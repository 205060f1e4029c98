"""The exporter on the synthetic cluster of fakeslurm.py (a real SQLite store filled
by a real collection) and on squeue/sinfo output recorded from the real test
cluster: exact sample values from a fresh registry, no users or job ids in labels,
and a scrape that never fails or reads a source.

At NOW (2026-11-01 12:00 UTC) the current month is 12 hours old. Only job C runs
in it: com_acme (commercial), 2 GPUs since 10-31 20:00 -> 24 GPU-hours. The
recorded squeue has 10 GPUs held (1 on com_acme, 9 on accounts this synthetic tree
does not know) and 10 asked for by pending jobs; sinfo has 4 nodes of 4 H100s,
gpu04 drained.

Per-allocation series name projects and are served only with `[exporter]
project_labels = true`; `exporter_for` turns it on unless a test says otherwise.
"""

from __future__ import annotations

import shutil
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector import clock
from collector.collect import collect
from collector.config import Exporter as ExporterSettings
from collector.config import Settings
from collector.export import views as snapshot
from collector.export.exporter import Exporter, exposure_warning, serve
from collector.slurm.live_parser import LiveJob

from . import fakeslurm

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()
FIXTURES = Path(__file__).parents[1] / "fixtures" / "slurm-22.05.8"
H = 3600
NOV_AVAILABLE_H = 16 * 12


@pytest.fixture
def cluster(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    data = Path(env["FAKE_SLURM_DIR"])
    shutil.copy(FIXTURES / "squeue-live.txt", data / "squeue.txt")
    shutil.copy(FIXTURES / "sinfo-live.txt", data / "sinfo.txt")
    collect(settings, now=NOW, env=env)
    return settings, env, data


def exporter_for(settings, env, now=NOW, project_labels=True
                 ) -> tuple[Exporter, CollectorRegistry]:
    """An exporter on a fresh registry; with project labels unless told otherwise
    (the full scrape, as the test cluster's policy and the shipped rules have it)."""
    if project_labels != settings.exporter.project_labels:
        settings = with_exporter(settings, project_labels=project_labels)
    exporter = Exporter(settings, env=env, clock=lambda: now)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return exporter, registry


def with_exporter(settings: Settings, **changes) -> Settings:
    return fakeslurm.changed(settings, "exporter", **changes)


@pytest.fixture
def scraped(cluster):
    settings, env, _ = cluster
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    return registry


def value(registry, name, **labels):
    return registry.get_sample_value(f"gpu_usage_{name}", labels)


def test_month_capacity_and_categories_against_quota(scraped):
    assert value(scraped, "month_available_gpu_seconds") == NOV_AVAILABLE_H * H
    assert value(scraped, "month_allocated_gpu_seconds") == 24 * H
    assert value(scraped, "month_utilisation_ratio") == 0.125
    commercial = {"pool": "eurohpc", "category": "commercial"}
    assert value(scraped, "category_used_gpu_seconds", **commercial) == 24 * H
    assert value(scraped, "category_quota_gpu_seconds", **commercial) == 69_120  # 0.1 x 192 h
    assert value(scraped, "category_quota_used_ratio", **commercial) == 1.25
    assert value(scraped, "category_used_gpu_seconds", pool="national", category="science") == 0
    assert value(scraped, "category_quota_share_ratio", pool="national", category="science") \
        == 0.5
    assert value(scraped, "pool_used_gpu_seconds", pool="eurohpc") == 24 * H
    assert value(scraped, "commercial_share_of_pool_ratio") == 0.25   # 24 / (0.5 x 192)
    assert value(scraped, "commercial_max_share_of_pool_ratio") == 0.2
    # Year to date: October's 16 + 8 + 43 GPU-hours and November's 24 (and 16 of
    # job A in September) by category.
    assert value(scraped, "category_year_used_gpu_seconds", pool="eurohpc",
                 category="commercial") == (8 + 24) * H
    assert value(scraped, "category_year_used_gpu_seconds", pool="national",
                 category="science") == 43 * H


def test_allocations_granted_used_and_plan(scraped):
    nl_x = {"project": "nl_x", "account": "nl_x", "category": "science"}
    assert value(scraped, "allocation_granted_gpu_seconds", **nl_x) == 100 * H
    assert value(scraped, "allocation_used_gpu_seconds", **nl_x) == 43 * H
    assert value(scraped, "allocation_month_used_gpu_seconds", **nl_x) == 0
    assert value(scraped, "allocation_consumed_ratio", **nl_x) == 0.43
    # 61 days from 10-01 to 11-30; 31.5 of them are over at NOW.
    assert value(scraped, "allocation_planned_gpu_seconds", **nl_x) == pytest.approx(
        100 * H * 31.5 / 61, abs=2)
    assert value(scraped, "allocation_end_timestamp_seconds", **nl_x) == \
        datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    # The GrpTRESMins budget of ehpc_a in Slurm (6000 GPU-minutes) is an allocation too.
    ehpc = {"project": "ehpc_a", "account": "ehpc_a", "category": "eu_science"}
    assert value(scraped, "allocation_granted_gpu_seconds", **ehpc) == 100 * H
    assert value(scraped, "allocation_used_gpu_seconds", **ehpc) == 32 * H


def test_gpus_now_from_squeue_and_sinfo(scraped):
    assert value(scraped, "cluster_gpus", gpu_type="h100") == 16
    assert value(scraped, "cluster_gpus_available", gpu_type="h100") == 12   # gpu04 drained
    held = {"partition": "gpu", "gpu_type": "h100"}
    assert value(scraped, "gpus_allocated", pool="eurohpc", category="commercial", **held) == 1
    assert value(scraped, "gpus_allocated", pool="(unmapped)", category="(unmapped)",
                 **held) == 9
    assert value(scraped, "gpus_allocated", pool="national", category="science", **held) == 0
    assert value(scraped, "gpus_pending", pool="(unmapped)", category="(unmapped)",
                 partition="gpu") == 10
    assert value(scraped, "jobs_running", pool="eurohpc", category="commercial") == 1


def test_collector_health_and_exporter_sources(scraped):
    assert value(scraped, "collections_total") == 1
    assert value(scraped, "collection_errors_total") == 0
    assert value(scraped, "jobs_ingested_total") == len(fakeslurm.JOBS)
    assert value(scraped, "collection_last_success_timestamp_seconds") > 0
    assert value(scraped, "collection_duration_seconds") >= 0
    for source in ("store", "squeue", "sinfo"):
        assert value(scraped, "exporter_source_up", source=source) == 1
        assert value(scraped, "exporter_refresh_errors_total", source=source) == 0


def test_labels_hold_no_users_or_job_ids_and_names_follow_the_conventions(scraped):
    text = generate_latest(scraped).decode()
    label_values = {v for fam in text_string_to_metric_families(text)
                    for s in fam.samples for v in s.labels.values()}
    users = {"anna", "maria", "kim", "omar", "bram", "jasper", "quinn"}
    job_ids = {line.split("|")[0] for line in (FIXTURES / "squeue-live.txt").read_text()
               .splitlines()} | {"101", "102", "103", "107"}
    assert not label_values & (users | job_ids)
    for fam in text_string_to_metric_families(text):
        assert fam.name.startswith("gpu_usage_")
        if fam.type != "counter":
            assert not fam.name.endswith("_total"), fam.name
        for s in fam.samples:
            if s.name.endswith("_ratio"):
                assert 0 <= s.value <= 10, s  # a ratio, not a percentage


def test_a_scrape_reads_nothing_it_only_renders_the_prepared_views(cluster):
    settings, env, data = cluster
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    before = generate_latest(registry)
    (data / "squeue.fail").touch()
    (data / "sinfo.fail").touch()
    shutil.rmtree(settings.store.path)
    assert generate_latest(registry) == before


def test_failing_sources_show_as_down_and_the_last_good_figures_stay(cluster):
    settings, env, data = cluster
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    (data / "squeue.fail").touch()
    assert exporter.refresh_live() is True      # sinfo still answers
    assert value(registry, "exporter_source_up", source="squeue") == 0
    assert value(registry, "exporter_refresh_errors_total", source="squeue") == 1
    assert value(registry, "exporter_source_up", source="sinfo") == 1
    assert value(registry, "gpus_allocated", pool="eurohpc", category="commercial",
                 partition="gpu", gpu_type="h100") == 1
    shutil.rmtree(settings.store.path)
    assert exporter.refresh_store(force=True) is False
    assert value(registry, "exporter_source_up", source="store") == 0
    assert value(registry, "category_used_gpu_seconds", pool="eurohpc",
                 category="commercial") == 24 * H


def test_without_a_store_or_slurm_the_exporter_still_serves_its_health(tmp_path):
    settings, env = fakeslurm.make(tmp_path)
    env["FAKE_SLURM_FAIL"] = "1"
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    assert value(registry, "info", facility="Fake Factory", cluster="testai", timezone="UTC",
                 version="0.1.0") == 1
    for source in ("store", "squeue", "sinfo"):
        assert value(registry, "exporter_source_up", source=source) == 0
    assert value(registry, "month_available_gpu_seconds") is None
    assert value(registry, "cluster_gpus", gpu_type="h100") is None


def test_the_store_view_is_rebuilt_when_a_collection_finishes_or_grows_old(cluster):
    settings, env, _ = cluster
    clock = [NOW]
    exporter = Exporter(settings, env=env, clock=lambda: clock[0])
    assert exporter.refresh_store() is True
    assert exporter.refresh_store() is False                  # nothing new
    collect(settings, now=NOW + 60, env=env)
    assert exporter.refresh_store() is True                   # a collection finished
    clock[0] += settings.exporter.store_refresh_s
    assert exporter.refresh_store() is True                   # old: running jobs moved on
    assert exporter.view.report.capacity.allocated_s > 24 * 3600


def test_serves_metrics_over_http_until_stopped(cluster, monkeypatch):
    settings, env, _ = cluster
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    monkeypatch.setenv(clock.ENV, str(NOW))   # "this month" is the fixture's
    stop, urls = threading.Event(), []
    thread = threading.Thread(target=serve, args=(settings, "127.0.0.1", 0, stop),
                              kwargs={"on_ready": urls.append})
    thread.start()
    try:
        for _ in range(100):
            if urls:
                break
            threading.Event().wait(0.05)
        with urllib.request.urlopen(urls[0], timeout=10) as response:
            assert response.status == 200
            body = response.read().decode()
        assert "gpu_usage_category_quota_used_ratio{" in body
        assert 'gpu_usage_exporter_source_up{source="squeue"} 1.0' in body
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def sample_keys(registry) -> set[tuple[str, tuple]]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items())))
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_by_default_no_project_is_named_only_category_sums_of_allocations(cluster):
    settings, env, _ = cluster
    assert settings.exporter.project_labels is False and ExporterSettings().project_labels \
        is False
    exporter, registry = exporter_for(settings, env, project_labels=False)
    exporter.refresh()
    keys = sample_keys(registry)
    assert not {name for name, _ in keys if name.startswith("gpu_usage_allocation_")}
    assert not {name for name, labels in keys if "project" in dict(labels)
                or "account" in dict(labels)}
    assert not {v for _, labels in keys for _, v in labels} & {"nl_x", "ehpc_a"}
    # nl_x (science, ended this month) and ehpc_a (eu_science): 100 GPU-hours each.
    science = {"pool": "national", "category": "science"}
    assert value(registry, "category_allocations_granted_gpu_seconds", **science) == 100 * H
    assert value(registry, "category_allocations_used_gpu_seconds", **science) == 43 * H
    eu = {"pool": "eurohpc", "category": "eu_science"}
    assert value(registry, "category_allocations_used_gpu_seconds", **eu) == 32 * H
    assert value(registry, "category_allocations_granted_gpu_seconds", pool="eurohpc",
                 category="commercial") == 0


def test_project_labels_are_served_when_the_policy_opts_in(cluster):
    settings, env, _ = cluster
    exporter, registry = exporter_for(settings, env, project_labels=True)
    exporter.refresh()
    nl_x = {"project": "nl_x", "account": "nl_x", "category": "science"}
    assert value(registry, "allocation_granted_gpu_seconds", **nl_x) == 100 * H
    assert value(registry, "category_allocations_granted_gpu_seconds", pool="national",
                 category="science") == 100 * H     # the sums stay beside them


def test_the_exporter_listens_on_localhost_unless_told_otherwise(cluster):
    settings, _, _ = cluster
    assert ExporterSettings().address == "127.0.0.1"
    assert settings.exporter.address == "127.0.0.1"
    assert exposure_warning(settings, "127.0.0.1") is None
    assert exposure_warning(settings, "::1") is None


def test_a_non_loopback_address_warns_at_start_what_is_served_without_login(
        cluster, monkeypatch, capsys):
    settings, env, _ = cluster
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    monkeypatch.setenv(clock.ENV, str(NOW))
    stop = threading.Event()
    stop.set()                                   # start, serve once, stop
    serve(settings, "0.0.0.0", 0, stop)
    err = capsys.readouterr().err
    assert "warning: the exporter listens on 0.0.0.0" in err
    assert "every category's" in err and "without login" in err
    assert "TLS and basic auth" in err and "docs/exporter.md" in err
    assert "project" not in err                  # project labels are off here
    opted_in = exposure_warning(with_exporter(settings, project_labels=True), "0.0.0.0")
    assert "every project's allocation" in opted_in
    assert exposure_warning(settings, "").startswith(
        "warning: the exporter listens on every interface")
    serve(settings, "127.0.0.1", 0, stop)
    assert "warning" not in capsys.readouterr().err


ACCOUNTS = ("com_acme", "nl_x", "ehpc_a", "stranger")   # commercial, science, eu, unmapped


def queue(n: int) -> tuple[LiveJob, ...]:
    """n jobs over the same labels: running and pending on two partitions and two GPU
    types, most of them pending array tasks, as a long queue has it."""
    jobs = []
    for i in range(n):
        account, part = ACCOUNTS[i % 4], ("gpu", "big")[i // 4 % 2]
        gpu_type = ("h100", "a100")[i // 8 % 2]
        state = "RUNNING" if i % 16 < 8 else "PENDING"
        jobs.append(LiveJob(f"9000_{i}", state, account, part, 1 + i % 3, gpu_type, 1))
    return tuple(jobs)


class WatchedJobs(tuple):
    """A job list that records (and refuses) every walk over it once armed."""

    armed = False

    def __iter__(self):
        if self.armed:
            WALKS.append("iter")
            raise AssertionError("the scrape walked the job list")
        return super().__iter__()


WALKS: list[str] = []


def with_queue(monkeypatch, jobs) -> None:
    monkeypatch.setattr(snapshot, "read_jobs_now", lambda settings, env=None: (jobs, 0))


def test_the_samples_do_not_depend_on_the_queue_length(cluster, monkeypatch):
    settings, env, _ = cluster
    scrapes = {}
    for n in (64, 100_000):
        with_queue(monkeypatch, queue(n))
        exporter, registry = exporter_for(settings, env)
        exporter.refresh()
        scrapes[n] = (sample_keys(registry), registry)
    assert scrapes[64][0] == scrapes[100_000][0]
    held = {"pool": "eurohpc", "category": "commercial", "partition": "gpu", "gpu_type": "h100"}
    # com_acme's running jobs on gpu/h100: i % 16 == 0, each 1 + i % 3 GPUs.
    expected = sum(1 + i % 3 for i in range(100_000) if i % 16 == 0)
    assert value(scrapes[100_000][1], "gpus_allocated", **held) == expected


def test_a_scrape_after_a_refresh_of_100000_jobs_does_no_per_job_work(cluster, monkeypatch):
    settings, env, _ = cluster
    jobs = WatchedJobs(queue(100_000))
    with_queue(monkeypatch, jobs)
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    WatchedJobs.armed = True
    try:
        WALKS.clear()
        text = generate_latest(registry).decode()
        assert WALKS == []
        assert 'gpu_usage_jobs_running{category="commercial",pool="eurohpc"} 12500.0' in text
        assert value(registry, "gpus_pending", pool="(unmapped)", category="(unmapped)",
                     partition="big") == sum(1 + i % 3 for i in range(100_000)
                                             if i % 4 == 3 and i // 4 % 2 and i % 16 >= 8)
    finally:
        WatchedJobs.armed = False


def test_energy_by_category_where_recorded_and_no_zeros_where_not(tmp_path, scraped):
    # Without energy in Slurm: recorded 0 and no energy sample at all (not 0 J).
    assert value(scraped, "month_energy_recorded") == 0
    assert value(scraped, "category_energy_joules", pool="eurohpc",
                 category="commercial") is None
    # Job 103 (com_acme, 2 GPUs from 10-31 20:00) ends at noon with 57.6 MJ: 12 of its
    # 16 hours fall in November.
    jobs = list(fakeslurm.JOBS)
    jobs[2] = fakeslurm.line(103, "kim", "com_acme", "COMPLETED", "2026-10-31T19:00:00",
                             "2026-10-31T20:00:00", "2026-11-01T12:00:00",
                             fakeslurm.gpu(2).replace("mem=", "energy=57600000,mem="))
    (tmp_path / "energy").mkdir()
    settings, env = fakeslurm.make(tmp_path / "energy", jobs)
    collect(settings, now=NOW, env=env)
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    commercial = {"pool": "eurohpc", "category": "commercial"}
    assert value(registry, "month_energy_recorded") == 1
    assert value(registry, "category_energy_joules", **commercial) == 43_200_000
    assert value(registry, "category_energy_gpu_seconds", **commercial) == 24 * H
    assert value(registry, "category_energy_joules", pool="national",
                 category="science") is None


def test_gpu_use_by_category_where_recorded_and_no_zeros_where_not(tmp_path, scraped):
    # Without gres/gpuutil in slurmdbd: recorded 0 and no GPU use sample (not 0 busy).
    assert value(scraped, "month_gpu_use_recorded") == 0
    assert value(scraped, "category_gpu_use_seconds", pool="eurohpc", category="commercial",
                 kind="busy") is None
    jobs, steps = fakeslurm.gpu_use_jobs()
    (tmp_path / "gpu").mkdir()
    settings, env = fakeslurm.make(tmp_path / "gpu", jobs, steps)
    done = collect(settings, now=NOW, env=env)
    assert done.rejected == 0
    exporter, registry = exporter_for(settings, env)
    exporter.refresh()
    commercial = {"pool": "eurohpc", "category": "commercial"}
    assert value(registry, "month_gpu_use_recorded") == 1
    # 16 h x 2 GPUs, 12 of them in November (split by time); idle: 4 h x 2 GPUs over
    # the job, busy: 12 h x 2 GPUs x 80 %; November holds 12/16 of each.
    assert value(registry, "category_gpu_use_seconds", kind="with_data", **commercial) == \
        24 * H
    assert value(registry, "category_gpu_use_seconds", kind="idle", **commercial) == \
        8 * H * 12 // 16
    assert value(registry, "category_gpu_use_seconds", kind="busy", **commercial) == \
        int(12 * H * 2 * 0.8) * 12 // 16
    assert value(registry, "category_idle_share_ratio", **commercial) == pytest.approx(0.25)
    assert value(registry, "category_jobs_idle_over_hour", **commercial) == 1
    assert value(registry, "idle_share_alert_threshold_ratio") == 0.3
    assert value(registry, "category_gpu_use_seconds", pool="national", category="science",
                 kind="busy") is None   # its jobs have no steps: no data, not idle
