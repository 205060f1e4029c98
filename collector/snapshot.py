"""What the exporter serves, prepared in advance: a view of the store (the current
month's report and the collector's health) rebuilt when a collection finishes, and
a live view of jobs and nodes from squeue and sinfo. A scrape only reads these.

Both views are immutable; the exporter swaps a whole new one in, so a scrape never
sees half of a refresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import clock, periods, usage
from .config import Settings
from .live_parser import LiveJob, NodeGpus, parse_sinfo, parse_squeue
from .policy import AccountMap, map_accounts
from .report import build_report
from .sacct_source import run_sinfo, run_squeue
from .store import Store


@dataclass(frozen=True)
class Health:
    """The collector's runs as the store records them (failed runs too)."""

    latest_id: int                       # the newest collection, any status
    collections: int
    failed: int
    jobs_ingested: int                   # new job records over all runs
    last_attempt_s: float | None
    last_success_s: float | None
    last_success_duration_s: float | None
    rejected_lines: int


@dataclass(frozen=True)
class StoreView:
    taken_s: float
    report: dict                         # build_report() of the current month
    parents: dict[str, str]              # the account tree, to map live jobs
    health: Health


@dataclass(frozen=True)
class LiveView:
    taken_s: float
    jobs: tuple[LiveJob, ...]
    nodes: tuple[NodeGpus, ...]
    rejected: int                        # squeue/sinfo lines that could not be read


def latest_collection_id(store: Store, cluster: str) -> int:
    row = store.conn.execute("SELECT coalesce(max(id), 0) FROM collections WHERE cluster=?",
                             (cluster,)).fetchone()
    return int(row[0])


def read_health(store: Store, cluster: str) -> Health:
    count, failed, ingested, last = store.conn.execute(
        "SELECT COUNT(*), coalesce(SUM(status != 'ok'), 0), coalesce(SUM(jobs_new), 0), "
        "MAX(finished_s) FROM collections WHERE cluster=?", (cluster,)).fetchone()
    ok = store.last_collection(cluster)
    rejected = store.conn.execute("SELECT COUNT(*) FROM rejected_lines").fetchone()[0]
    return Health(latest_collection_id(store, cluster), count, failed, ingested, last,
                  ok and ok.finished_s, ok and ok.finished_s - ok.started_s, rejected)


def read_store_view(settings: Settings, now: float | None = None) -> StoreView:
    """The current month's report and the collector's health; raises StoreError."""
    now_s = clock.now_or(now)
    cluster, tz = settings.slurm.cluster, settings.facility.timezone
    with Store.open_reader(settings.store.path) as store:
        period = periods.parse_month("this", tz, now_s)
        report = build_report(store, settings, period, now=now_s)
        return StoreView(now_s, report, usage.tree(store, cluster).parents,
                         read_health(store, cluster))


def read_jobs_now(settings: Settings, env: dict[str, str] | None = None
                  ) -> tuple[tuple[LiveJob, ...], int]:
    """Jobs holding or waiting for GPUs now, and how many lines could not be read;
    raises SlurmError."""
    jobs, bad = parse_squeue(run_squeue(settings.slurm.cluster,
                                        settings.exporter.slurm_timeout_s, env))
    return tuple(jobs), len(bad)


def read_nodes_now(settings: Settings, env: dict[str, str] | None = None
                   ) -> tuple[tuple[NodeGpus, ...], int]:
    """Every node with its GPUs and state; raises SlurmError."""
    nodes, bad = parse_sinfo(run_sinfo(settings.slurm.cluster,
                                       settings.exporter.slurm_timeout_s, env))
    return tuple(nodes), len(bad)


def live_accounts(settings: Settings, view: StoreView | None, live: LiveView) -> AccountMap:
    """Categories of the accounts of live jobs (a new account maps by pattern or list)."""
    parents = view.parents if view else {}
    return map_accounts(settings, parents, {j.account for j in live.jobs})
