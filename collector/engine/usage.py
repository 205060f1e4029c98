"""Usage in a period: rolled-up finished jobs (store.reads) plus open jobs clipped
live, so running jobs count up to now; and the period's capacity.

Periods are whole local days (every month, quarter and year is): the rollups are
per local day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import msgspec

from collector.engine.capacity import Capacity, capacity
from collector.engine.rollup import LocalDays, size_class
from collector.slurm.records import JobRecord
from collector.store import reads
from collector.store.database import Store
from collector.store.reads import Clusters, PeriodAlignmentError, StartRow, Tree, UsageRow

__all__ = [
    "PeriodAlignmentError",
    "StartRow",
    "Tree",
    "UsageRow",
    "account_usage",
    "cluster_capacity",
    "cluster_usage",
    "daily_account_usage",
    "daily_usage",
    "open_usage",
    "period_capacity",
    "period_usage",
]


def _holding(jobs: list[JobRecord]) -> Iterator[JobRecord]:
    """The open jobs that hold GPUs: started, with at least one."""
    return (job for job in jobs if job.start_s is not None and job.started and job.gpus > 0)


def _clipped(jobs: list[JobRecord], start_s: int, stop_s: int
             ) -> Iterator[tuple[JobRecord, int]]:
    """Each open job holding GPUs in [start, stop), with its GPU-seconds there."""
    for job in _holding(jobs):
        seconds = stop_s - max(job.start_s, start_s)
        if seconds > 0:
            yield job, job.gpus * seconds


def open_usage(jobs: list[JobRecord], start_s: int, end_s: int) -> list[UsageRow]:
    """Jobs still running, clipped to [start, end): end is "now" or the period's end."""
    return [UsageRow(job.account, job.user, job.partition, job.gpu_type or "", job.wckey,
                     size_class(job.gpus, job.nodes), gpu_s)
            for job, gpu_s in _clipped(jobs, start_s, end_s)]


def period_usage(store: Store, clusters: Clusters, start_s: int, end_s: int, now_s: int,
                 open_jobs: list[JobRecord] | None = None) -> list[UsageRow]:
    """GPU-seconds in [start, min(end, now)) by account, user, partition, GPU type,
    WCKey and size class."""
    rows = reads.usage_rows(store, clusters, start_s, end_s)
    if open_jobs is None:
        open_jobs = reads.open_jobs(store, clusters)
    return rows + open_usage(open_jobs, start_s, min(end_s, now_s))


def cluster_usage(store: Store, clusters: Clusters, start_s: int, end_s: int, now_s: int,
                  open_jobs: list[JobRecord]) -> dict[str, int]:
    """GPU-seconds per cluster in [start, min(end, now)), running jobs included."""
    out: dict[str, int] = defaultdict(int, reads.cluster_totals(store, clusters, start_s,
                                                                end_s))
    for job, gpu_s in _clipped(open_jobs, start_s, min(end_s, now_s)):
        out[job.cluster] += gpu_s
    return dict(out)


def account_usage(store: Store, clusters: Clusters, start_s: int, end_s: int, now_s: int,
                  open_jobs: list[JobRecord]) -> dict[str, int]:
    """GPU-seconds per account in [start, min(end, now)), running jobs included."""
    out: dict[str, int] = defaultdict(int, reads.account_totals(store, clusters, start_s,
                                                                end_s))
    for job, gpu_s in _clipped(open_jobs, start_s, min(end_s, now_s)):
        out[job.account] += gpu_s
    return dict(out)


def daily_account_usage(store: Store, clusters: Clusters, start_s: int, end_s: int,
                        now_s: int, timezone: str, open_jobs: list[JobRecord]
                        ) -> dict[tuple[int, str], int]:
    """GPU-seconds per (local day, account) in [start, min(end, now))."""
    out: dict[tuple[int, str], int] = defaultdict(int, reads.daily_account_rows(
        store, clusters, start_s, end_s))
    days = LocalDays(timezone)
    stop = min(end_s, now_s)
    for job in _holding(open_jobs):
        for day, seconds in days.split(max(job.start_s, start_s), stop):
            out[(day, job.account)] += job.gpus * seconds
    return dict(out)


def daily_usage(store: Store, clusters: Clusters, start_s: int, end_s: int, now_s: int,
                timezone: str, open_jobs: list[JobRecord] | None = None
                ) -> dict[tuple[int, str, str], int]:
    """GPU-seconds per (local day, account, user) in [start, min(end, now))."""
    out: dict[tuple[int, str, str], int] = defaultdict(int, reads.daily_rows(
        store, clusters, start_s, end_s))
    days = LocalDays(timezone)
    stop = min(end_s, now_s)
    for job in _holding(reads.open_jobs(store, clusters) if open_jobs is None else open_jobs):
        for day, seconds in days.split(max(job.start_s, start_s), stop):
            out[(day, job.account, job.user)] += job.gpus * seconds
    return out


def cluster_capacity(store: Store, cluster: str, start_s: int, end_s: int) -> Capacity:
    """One cluster's capacity in [start, end), from its events, maintenance
    reservations and node inventory."""
    return capacity(start_s, end_s, reads.events(store, cluster),
                    reads.reservations(store, cluster), reads.node_gpus(store, cluster))


def period_capacity(store: Store, clusters: Clusters, start_s: int, end_s: int) -> Capacity:
    """The clusters' capacity in [start, end): each cluster's own, added up (nodes
    named `cluster:node` when there are several)."""
    caps = [cluster_capacity(store, c, start_s, end_s) for c in clusters]
    if len(caps) == 1:
        return caps[0]
    caps = [msgspec.structs.replace(cap, nodes_without_inventory=tuple(
        f"{c}:{n}" for n in cap.nodes_without_inventory)) for c, cap in zip(clusters, caps,
                                                                           strict=True)]
    total = caps[0]
    for cap in caps[1:]:
        total += cap
    return total
