"""Prometheus metric families from the prepared views (pure; no I/O).

Conventions: base units (GPU-seconds, seconds, Unix timestamps), ratios 0..1,
`_total` only on counters. Labels are bounded: pool, category, partition, GPU
type, the exporter's sources, and, only with `[exporter] project_labels = true`,
allocations (a finite, configured set; only those running this month: finished
and upcoming ones drop out); without it allocations are summed per category.
Never users or job ids. Usage figures are the report's own (`gpu-usage report --month this` at
the same moment), so Prometheus, the report and the dashboard agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector import __version__
from collector.config import Settings
from collector.engine.model import UNMAPPED, AllocationStatus, Report
from collector.engine.periods import local_midnight
from collector.export.views import LiveFigures, StoreView

PREFIX = "gpu_usage"
SOURCES = ("store", "squeue", "sinfo")
# Allocations in these states are exported; finished and upcoming ones are not.
EXPORTED_ALLOCATION_STATES = ("active", "new", "ended")


@dataclass
class SourceStatus:
    """The exporter's own refreshes of one source."""

    up: bool = False
    errors: int = 0
    last_success_s: float | None = None
    last_duration_s: float | None = None
    last_error: str = ""


@dataclass
class ExporterStatus:
    sources: dict[str, SourceStatus] = field(
        default_factory=lambda: {s: SourceStatus() for s in SOURCES})


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def info_families(settings: Settings) -> list[Metric]:
    info = _gauge("info", "The facility, cluster and exporter version (always 1).",
                  ("facility", "cluster", "timezone", "version"))
    info.add_metric([settings.facility.name, ",".join(settings.slurm.clusters),
                     settings.facility.timezone, __version__], 1)
    return [info]


def cluster_families(view: StoreView) -> list[Metric]:
    """With several clusters: each one's month (capacity, use, categories against its
    part of the quotas) and its last collection, labelled `cluster`. The unlabelled
    families above are the facility's (the sum; quotas on the facility's capacity)."""
    gpus = _gauge("cluster_month_gpus", "GPUs registered in the cluster now.", ("cluster",))
    fams = {key: _gauge(f"cluster_month_{key}_gpu_seconds", f"Current month so far, per "
                        f"cluster: {doc}.", ("cluster",)) for key, doc in (
        ("available", "nominal - down - planned down GPU time"),
        ("allocated", "GPU time allocated to jobs"))}
    util = _gauge("cluster_month_utilisation_ratio", "Current month so far, per cluster: "
                  "allocated / available GPU time (0..1).", ("cluster",))
    labels = ("cluster", "pool", "category")
    used = _gauge("cluster_category_used_gpu_seconds", "Current month: GPU time used by the "
                  "category on the cluster.", labels)
    quota = _gauge("cluster_category_quota_gpu_seconds", "Current month so far: the "
                   "category's quota on the cluster (its share of the cluster's available "
                   "GPU time; an absolute quota split by the cluster's part of the "
                   "facility's).", labels)
    last_ok = _gauge("cluster_collection_last_success_timestamp_seconds", "When the last "
                     "successful collection of the cluster finished.", ("cluster",))
    rejected = _gauge("cluster_rejected_lines", "Distinct Slurm output lines the collector "
                      "could not read in the cluster's collections.", ("cluster",))
    for cluster, r, health in view.clusters:
        rejected.add_metric([cluster], health.rejected_lines)
        gpus.add_metric([cluster], r.capacity.gpus)
        fams["available"].add_metric([cluster], r.capacity.available_s)
        fams["allocated"].add_metric([cluster], r.capacity.allocated_s)
        if r.capacity.utilisation is not None:
            util.add_metric([cluster], r.capacity.utilisation)
        for c in r.categories:
            used.add_metric([cluster, c.pool, c.category], c.used_s)
            quota.add_metric([cluster, c.pool, c.category], c.quota_s)
        if health.last_success_s is not None:
            last_ok.add_metric([cluster], health.last_success_s)
    return [gpus, *fams.values(), util, used, quota, last_ok, rejected]


def month_families(view: StoreView) -> list[Metric]:
    """The current month: capacity, utilisation, pools and categories against quota."""
    r = view.report
    cap, period = r.capacity, r.period
    out: list[Metric] = []
    start = _gauge("month_start_timestamp_seconds", "Start of the current month (facility "
                   "time zone).")
    start.add_metric([], period.start_s)
    until = _gauge("month_data_until_timestamp_seconds", "The month's figures count up to "
                   "this time (running jobs are clipped to it).")
    until.add_metric([], period.data_until_s)
    out += [start, until]
    for key, value, doc in (
            ("nominal", cap.nominal_s, "GPUs registered x time"),
            ("down", cap.down_s, "down or drained GPUs x time, outside maintenance"),
            ("planned_down", cap.planned_down_s, "GPUs in maintenance x time"),
            ("available", cap.available_s, "nominal - down - planned down"),
            ("allocated", cap.allocated_s, "GPU time allocated to jobs")):
        g = _gauge(f"month_{key}_gpu_seconds", f"Current month so far: {doc}.")
        g.add_metric([], value)
        out.append(g)
    util = _gauge("month_utilisation_ratio", "Current month so far: allocated / available "
                  "GPU time (0..1).")
    if cap.utilisation is not None:
        util.add_metric([], cap.utilisation)
    out.append(util)
    out += _category_families(r)
    out += _energy_families(r)
    out += _efficiency_families(r)
    out += _pool_families(r)
    unmapped = _gauge("month_unmapped_gpu_seconds", "Current month: GPU time of accounts that "
                      "map to no category.")
    unmapped.add_metric([], r.unmapped_s)
    out.append(unmapped)
    return out


def _category_families(r: Report) -> list[Metric]:
    labels = ("pool", "category")
    used = _gauge("category_used_gpu_seconds", "Current month: GPU time used by the category.",
                  labels)
    quota = _gauge("category_quota_gpu_seconds", "Current month so far: the category's quota "
                   "(quota share x available GPU time, or its absolute quota).", labels)
    ratio = _gauge("category_quota_used_ratio", "Current month: used / quota (above 1: over "
                   "quota).", labels)
    share = _gauge("category_quota_share_ratio", "The category's configured share of the "
                   "available GPU time.", labels)
    ytd = _gauge("category_year_used_gpu_seconds", "Year to date: GPU time used by the "
                 "category.", labels)
    ytd_quota = _gauge("category_year_quota_gpu_seconds", "Year to date: the category's "
                       "quota.", labels)
    for c in r.categories:
        key = [c.pool, c.category]
        used.add_metric(key, c.used_s)
        quota.add_metric(key, c.quota_s)
        if c.used_of_quota is not None:
            ratio.add_metric(key, c.used_of_quota)
        if c.quota_share is not None:
            share.add_metric(key, c.quota_share)
        ytd.add_metric(key, c.ytd_used_s)
        ytd_quota.add_metric(key, c.ytd_quota_s)
    com = r.commercial
    com_share = _gauge("commercial_share_of_pool_ratio", "Current month: commercial GPU time "
                       "/ the pool's quota (EU rule: at most 0.2 of the Union's access time).")
    if com.share_of_pool is not None:
        com_share.add_metric([], com.share_of_pool)
    com_max = _gauge("commercial_max_share_of_pool_ratio", "The configured limit of "
                     "commercial use, as a share of its pool's quota.")
    com_max.add_metric([], com.max_share_of_pool)
    return [used, quota, ratio, share, ytd, ytd_quota, com_share, com_max]


def _energy_families(r: Report) -> list[Metric]:
    """Energy by category; a category without energy data has no sample (never 0 J)."""
    labels = ("pool", "category")
    recorded = _gauge("month_energy_recorded", "1 if any finished job of the current month "
                      "has energy recorded by Slurm (an energy plugin), else 0.")
    recorded.add_metric([], 1 if r.energy.recorded else 0)
    joules = _gauge("category_energy_joules", "Current month: energy of the category's "
                    "finished jobs whose energy Slurm recorded (the nodes' sensors, split by "
                    "time).", labels)
    measured = _gauge("category_energy_gpu_seconds", "Current month: GPU time of the jobs "
                      "whose energy is in category_energy_joules.", labels)
    for c in r.energy.categories:
        if c.energy_j is not None:
            joules.add_metric([c.pool, c.category], c.energy_j)
            measured.add_metric([c.pool, c.category], c.measured_s)
    return [recorded, joules, measured]


def _efficiency_families(r: Report) -> list[Metric]:
    """GPU use from job steps by category; a category without GPU data has no sample
    (never 0, which would read as idle GPUs)."""
    e = r.efficiency
    pools = {c.category: c.pool for c in r.categories}
    recorded = _gauge("month_gpu_use_recorded", "1 if any finished job of the current month "
                      "has GPU use from its steps (gres/gpuutil, Slurm 23.02+ with a GPU "
                      "plugin), else 0.")
    recorded.add_metric([], 1 if e.recorded else 0)
    seconds = _gauge("category_gpu_use_seconds", "Current month: GPU time of the category's "
                     "finished jobs with GPU data (kind=with_data), of it busy (kind=busy, an "
                     "upper bound: Slurm keeps peaks) and allocated but idle (kind=idle).",
                     ("pool", "category", "kind"))
    idle = _gauge("category_idle_share_ratio", "Current month: idle-allocated / GPU time with "
                  "GPU data of the category (0..1).", ("pool", "category"))
    long_idle = _gauge("category_jobs_idle_over_hour", "Current month: the category's jobs "
                       "that held a GPU idle for more than an hour.", ("pool", "category"))
    for c in e.categories:
        if c.busy_s is None or c.idle_s is None:
            continue
        pool = pools.get(c.category, "")
        for kind, value in (("with_data", c.measured_s), ("busy", c.busy_s),
                            ("idle", c.idle_s)):
            seconds.add_metric([pool, c.category, kind], value)
        if c.idle_share is not None:
            idle.add_metric([pool, c.category], c.idle_share)
        long_idle.add_metric([pool, c.category], c.long_idle_jobs)
    threshold = _gauge("idle_share_alert_threshold_ratio", "The configured idle-allocated "
                       "share above which a category or project is alerted on "
                       "([efficiency] idle_share_alert).")
    threshold.add_metric([], e.idle_threshold)
    return [recorded, seconds, idle, long_idle, threshold]


def project_idle_families(view: StoreView) -> list[Metric]:
    """The most idle-allocated projects of the month (`[efficiency] top_idle_projects`);
    they name projects: only with `[exporter] project_labels = true`."""
    share = _gauge("project_idle_share_ratio", "Current month: idle-allocated / GPU time with "
                   "GPU data of one of the most idle-allocated projects.",
                   ("project", "category"))
    idle = _gauge("project_idle_gpu_seconds", "Current month: idle-allocated GPU time of one "
                  "of the most idle-allocated projects.", ("project", "category"))
    for p in view.report.efficiency.top_idle_projects:
        if p.idle_s is not None and p.idle_share is not None:
            share.add_metric([p.group, p.category], p.idle_share)
            idle.add_metric([p.group, p.category], p.idle_s)
    return [share, idle]


def _pool_families(r: Report) -> list[Metric]:
    used = _gauge("pool_used_gpu_seconds", "Current month: GPU time used by the pool's "
                  "categories.", ("pool",))
    quota = _gauge("pool_quota_gpu_seconds", "Current month so far: the pool's share of the "
                   "available GPU time.", ("pool",))
    for p in r.pools:
        used.add_metric([p.pool], p.used_s)
        quota.add_metric([p.pool], p.quota_s)
    return [used, quota]


def _exported_allocations(view: StoreView) -> list[AllocationStatus]:
    return [a for a in view.report.allocations if a.state in EXPORTED_ALLOCATION_STATES]


def category_allocation_families(settings: Settings, view: StoreView) -> list[Metric]:
    """This month's allocations summed per category: no project names."""
    labels = ("pool", "category")
    granted = _gauge("category_allocations_granted_gpu_seconds", "GPU time granted to the "
                     "category's allocations running this month.", labels)
    used = _gauge("category_allocations_used_gpu_seconds", "GPU time used by the category's "
                  "allocations running this month, each since it started.", labels)
    pools = {c.name: c.pool for c in settings.categories}
    sums: dict[tuple[str, str], list[int]] = {(p, c): [0, 0] for c, p in pools.items()}
    for a in _exported_allocations(view):
        key = (pools.get(a.category, UNMAPPED), a.category)
        total = sums.setdefault(key, [0, 0])
        total[0] += a.granted_s
        total[1] += a.used_total_s
    for key, (g, u) in sorted(sums.items()):
        granted.add_metric(list(key), g)
        used.add_metric(list(key), u)
    return [granted, used]


def allocation_families(view: StoreView) -> list[Metric]:
    """Per allocation of this month: granted, used, plan, projection."""
    labels = ("project", "account", "category")
    fams = {
        "granted": _gauge("allocation_granted_gpu_seconds", "GPU time granted.", labels),
        "used": _gauge("allocation_used_gpu_seconds", "GPU time used since the allocation "
                       "started.", labels),
        "month": _gauge("allocation_month_used_gpu_seconds", "GPU time used this month.",
                        labels),
        "planned": _gauge("allocation_planned_gpu_seconds", "The linear plan to date "
                          "(granted spread evenly over the allocation's days).", labels),
        "consumed": _gauge("allocation_consumed_ratio", "used / granted.", labels),
        "unused": _gauge("allocation_projected_unused_gpu_seconds", "GPU time left unused "
                         "at the end at the burn rate so far.", labels),
        "end": _gauge("allocation_end_timestamp_seconds", "When the allocation ends.", labels),
    }
    tz = view.report.period.timezone
    for a in _exported_allocations(view):
        key = [a.project, a.account, a.category]
        fams["granted"].add_metric(key, a.granted_s)
        fams["used"].add_metric(key, a.used_total_s)
        fams["month"].add_metric(key, a.used_period_s)
        fams["consumed"].add_metric(key, a.consumed)
        if a.planned_s is not None:
            fams["planned"].add_metric(key, a.planned_s)
        if a.projected_unused_s is not None:
            fams["unused"].add_metric(key, a.projected_unused_s)
        if a.end:  # the end day is included: the allocation ends at the next midnight
            fams["end"].add_metric(key, local_midnight(a.end + timedelta(days=1), tz))
    return list(fams.values())


def health_families(view: StoreView | None) -> list[Metric]:
    """The collector's runs, as the store records them."""
    h = view.health if view else None
    last_ok = _gauge("collection_last_success_timestamp_seconds", "When the last successful "
                     "collection finished.")
    last_try = _gauge("collection_last_attempt_timestamp_seconds", "When the last collection "
                      "finished, successful or not.")
    took = _gauge("collection_duration_seconds", "How long the last successful collection "
                  "took.")
    runs = CounterMetricFamily(f"{PREFIX}_collections", "Collections recorded in the store.")
    errors = CounterMetricFamily(f"{PREFIX}_collection_errors", "Collections that failed "
                                 "(the store kept its previous state).")
    ingested = CounterMetricFamily(f"{PREFIX}_jobs_ingested", "New job records stored by "
                                   "all collections.")
    rejected = _gauge("rejected_lines", "Distinct Slurm output lines the collector could not "
                      "read (kept in the store; see the report's data quality).")
    if h:
        for fam, value in ((last_ok, h.last_success_s), (last_try, h.last_attempt_s),
                           (took, h.last_success_duration_s)):
            if value is not None:
                fam.add_metric([], value)
        runs.add_metric([], h.collections)
        errors.add_metric([], h.failed)
        ingested.add_metric([], h.jobs_ingested)
        rejected.add_metric([], h.rejected_lines)
    return [last_ok, last_try, took, runs, errors, ingested, rejected]


def live_families(live: LiveFigures) -> list[Metric]:
    """GPUs in the cluster, available, allocated and pending now. The figures were
    summed when squeue and sinfo were read: a scrape costs the same at any queue
    length."""
    total = _gauge("cluster_gpus", "GPUs on the cluster's nodes now.", ("gpu_type",))
    avail = _gauge("cluster_gpus_available", "GPUs on nodes that can run jobs now (not down, "
                   "drained, failed or in maintenance).", ("gpu_type",))
    for t, gpus, available in live.gpus:
        total.add_metric([t], gpus)
        avail.add_metric([t], available)
    allocated = _gauge("gpus_allocated", "GPUs held by running jobs now.",
                       ("pool", "category", "partition", "gpu_type"))
    for key, gpus in live.allocated:
        allocated.add_metric(list(key), gpus)
    waiting = _gauge("gpus_pending", "GPUs asked for by pending jobs now.",
                     ("pool", "category", "partition"))
    for key, gpus in live.pending:
        waiting.add_metric(list(key), gpus)
    jobs = _gauge("jobs_running", "Running jobs (array tasks counted each) now.",
                  ("pool", "category"))
    for key, n in live.running:
        jobs.add_metric(list(key), n)
    unreadable = _gauge("live_unreadable_lines", "squeue and sinfo lines of the last refresh "
                        "that could not be read.")
    unreadable.add_metric([], live.rejected)
    return [total, avail, allocated, waiting, jobs, unreadable]


def exporter_families(status: ExporterStatus) -> list[Metric]:
    up = _gauge("exporter_source_up", "1 if the last refresh from the source worked; the "
                "exporter keeps serving the last good data when it did not.", ("source",))
    errors = CounterMetricFamily(f"{PREFIX}_exporter_refresh_errors", "Failed refreshes "
                                 "since the exporter started.", labels=["source"])
    last = _gauge("exporter_last_refresh_timestamp_seconds", "When the source was last read "
                  "successfully.", ("source",))
    took = _gauge("exporter_refresh_duration_seconds", "How long the last successful read "
                  "took (for the store: the last rebuild of the month's figures).",
                  ("source",))
    for name, s in status.sources.items():
        up.add_metric([name], 1 if s.up else 0)
        errors.add_metric([name], s.errors)
        if s.last_success_s is not None:
            last.add_metric([name], s.last_success_s)
        if s.last_duration_s is not None:
            took.add_metric([name], s.last_duration_s)
    return [up, errors, last, took]


def families(settings: Settings, view: StoreView | None, live: LiveFigures | None,
             status: ExporterStatus) -> list[Metric]:
    """Every family of one scrape. Missing views leave their families out; the
    exporter's own families always say why. Per-allocation families name projects:
    only with `[exporter] project_labels = true`."""
    out = info_families(settings)
    if view is not None:
        out += month_families(view) + category_allocation_families(settings, view)
        if view.clusters:
            out += cluster_families(view)
        if settings.exporter.project_labels:
            out += allocation_families(view) + project_idle_families(view)
    out += health_families(view)
    if live is not None:
        out += live_families(live)
    return out + exporter_families(status)
