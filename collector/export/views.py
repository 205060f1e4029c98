"""What the exporter serves, prepared in advance: a view of the store (the current
month's report and the collector's health) rebuilt when a collection finishes, and
a live view of jobs and nodes (squeue and sinfo, or pyslurm with that source:
collector.slurm.sources). A scrape only reads these.

Both views are immutable; the exporter swaps a whole new one in, so a scrape never
sees half of a refresh.

squeue's jobs are counted per account as they are read and then dropped: users
decide how long the queue is (a pending array of 100,000 tasks is one line of
sbatch), so nothing a scrape does may walk it. `live_figures` folds the counts
into the few samples of the live families (per category, partition and GPU type)
whenever the live view or the account map changes; a scrape only emits those.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import msgspec

from collector import clock
from collector.config import Settings
from collector.engine import periods
from collector.engine.model import UNMAPPED, Report
from collector.engine.policy import AccountMap, map_accounts
from collector.engine.report import build_report
from collector.slurm.live_parser import HOLDING_STATES, LiveJob, NodeGpus
from collector.slurm.sources import live_jobs, live_nodes
from collector.store import reads
from collector.store.database import Store
from collector.store.reads import Health


class StoreView(msgspec.Struct, frozen=True):
    taken_s: float
    report: Report                       # build_report() of the current month
    parents: dict[str, str]              # the account tree, to map live jobs
    health: Health
    # With several clusters: each one's report of the month and collector health.
    clusters: tuple[tuple[str, Report, Health], ...] = ()


class LiveJobs(msgspec.Struct, frozen=True):
    """squeue's jobs counted per account: all the live families need of them."""

    holding_gpus: dict[tuple[str, str, str], int] = msgspec.field(default_factory=dict)
    # (account, partition, GPU type) -> GPUs held by running jobs
    running: dict[str, int] = msgspec.field(default_factory=dict)  # account -> running jobs
    pending_gpus: dict[tuple[str, str], int] = msgspec.field(default_factory=dict)
    # (account, partition) -> GPUs asked for by pending jobs

    def accounts(self) -> set[str]:
        return ({a for a, _, _ in self.holding_gpus} | set(self.running)
                | {a for a, _ in self.pending_gpus})


class LiveNodes(msgspec.Struct, frozen=True):
    """sinfo's nodes summed per GPU type."""

    gpus_by_type: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    # GPU type -> (GPUs, GPUs on nodes that can run jobs)
    pairs: frozenset[tuple[str, str]] = frozenset()  # (partition, GPU type) with GPUs


class LiveView(msgspec.Struct, frozen=True):
    taken_s: float
    jobs: LiveJobs
    nodes: LiveNodes
    rejected: int                        # squeue/sinfo lines that could not be read


class LiveFigures(msgspec.Struct, frozen=True):
    """The samples of the live families, sorted, by label values: what a scrape emits."""

    gpus: tuple[tuple[str, int, int], ...]                   # GPU type, GPUs, available
    allocated: tuple[tuple[tuple[str, str, str, str], int], ...]
    # (pool, category, partition, GPU type) -> GPUs held
    pending: tuple[tuple[tuple[str, str, str], int], ...]    # (pool, category, partition)
    running: tuple[tuple[tuple[str, str], int], ...]         # (pool, category) -> jobs
    rejected: int


def latest_collection_id(store: Store, clusters: tuple[str, ...]) -> int:
    return reads.version(store, clusters)[0]


def read_store_view(settings: Settings, now: float | None = None) -> StoreView:
    """The current month's report and the collector's health (the facility's, and
    each cluster's when there are several); raises StoreError."""
    now_s = clock.now_or(now)
    clusters, tz = settings.slurm.clusters, settings.facility.timezone
    with Store.open_reader(settings.store.path) as store:
        period = periods.parse_month("this", tz, now_s)
        report = build_report(store, settings, period, now=now_s)
        per_cluster = tuple(
            (c, build_report(store, settings, period, now=now_s, cluster=c),
             reads.health(store, (c,))) for c in clusters) if settings.slurm.several else ()
        return StoreView(now_s, report, reads.tree(store, clusters).parents,
                         reads.health(store, clusters), per_cluster)


def read_jobs_now(settings: Settings, env: dict[str, str] | None = None
                  ) -> tuple[tuple[LiveJob, ...], int]:
    """Jobs holding or waiting for GPUs now, and how many lines could not be read;
    raises SlurmError."""
    jobs, bad = live_jobs(settings, env)
    return tuple(jobs), len(bad)


def count_jobs(jobs: Iterable[LiveJob]) -> LiveJobs:
    """Per account: GPUs held (by partition and GPU type), running jobs (array tasks
    each), GPUs asked for by pending jobs (by partition). One pass over the jobs."""
    holding: dict[tuple[str, str, str], int] = defaultdict(int)
    running: dict[str, int] = defaultdict(int)
    pending: dict[tuple[str, str], int] = defaultdict(int)
    for j in jobs:
        if j.state in HOLDING_STATES:
            holding[(j.account, j.partition, j.gpu_type)] += j.gpus
            running[j.account] += 1
        elif j.state == "PENDING":
            pending[(j.account, j.partition)] += j.gpus
    return LiveJobs(dict(holding), dict(running), dict(pending))


def count_nodes(nodes: Iterable[NodeGpus]) -> LiveNodes:
    """GPUs and available GPUs per type, and the partitions' GPU types."""
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    pairs = set()
    for n in nodes:
        by_type[n.gpu_type][0] += n.gpus
        by_type[n.gpu_type][1] += n.gpus if n.available else 0
        if n.gpus:
            pairs.update((part, n.gpu_type) for part in n.partitions)
    return LiveNodes({t: (g, a) for t, (g, a) in by_type.items()}, frozenset(pairs))


def read_live_jobs(settings: Settings, env: dict[str, str] | None = None
                   ) -> tuple[LiveJobs, int]:
    """squeue's jobs, counted per account, and the lines that could not be read;
    raises SlurmError."""
    jobs, bad = read_jobs_now(settings, env)
    return count_jobs(jobs), bad


def read_live_nodes(settings: Settings, env: dict[str, str] | None = None
                    ) -> tuple[LiveNodes, int]:
    """sinfo's nodes, summed per GPU type; raises SlurmError."""
    nodes, bad = read_nodes_now(settings, env)
    return count_nodes(nodes), bad


def read_nodes_now(settings: Settings, env: dict[str, str] | None = None
                   ) -> tuple[tuple[NodeGpus, ...], int]:
    """Every node with its GPUs and state; raises SlurmError."""
    nodes, bad = live_nodes(settings, env)
    return tuple(nodes), len(bad)


def live_accounts(settings: Settings, view: StoreView | None, live: LiveView) -> AccountMap:
    """Categories of the accounts of live jobs (a new account maps by pattern or list)."""
    parents = view.parents if view else {}
    return map_accounts(settings, parents, live.jobs.accounts())


def live_figures(settings: Settings, live: LiveView, amap: AccountMap) -> LiveFigures:
    """The live families' samples by category: the per-account counts mapped and
    summed (work per account, not per job). Every configured category shows a value,
    zero included, for the partitions and GPU types in use."""
    def category(account: str) -> tuple[str, str]:
        return amap.pool_of(account) or UNMAPPED, amap.category_of(account) or UNMAPPED

    holding: dict[tuple[str, str, str, str], int] = defaultdict(int)
    pending: dict[tuple[str, str, str], int] = defaultdict(int)
    running: dict[tuple[str, str], int] = defaultdict(int)
    for (account, part, gpu_type), gpus in live.jobs.holding_gpus.items():
        holding[(*category(account), part, gpu_type)] += gpus
    for account, n in live.jobs.running.items():
        running[category(account)] += n
    for (account, part), gpus in live.jobs.pending_gpus.items():
        pending[(*category(account), part)] += gpus
    pairs = live.nodes.pairs | {k[1:] for k in live.jobs.holding_gpus}
    categories = [(c.pool, c.name) for c in settings.categories]
    for pool, cat in categories:
        for part, gpu_type in pairs or {("", "")}:
            holding.setdefault((pool, cat, part, gpu_type), 0)
        if not any(k[:2] == (pool, cat) for k in pending):
            pending[(pool, cat, "")] = 0
        running.setdefault((pool, cat), 0)
    gpus = tuple((t, g, a) for t, (g, a) in sorted(live.nodes.gpus_by_type.items()))
    return LiveFigures(gpus, tuple(sorted(holding.items())), tuple(sorted(pending.items())),
                       tuple(sorted(running.items())), live.rejected)
