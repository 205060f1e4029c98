"""What the engine, the exporter and the dashboard read back from the store, as typed
rows: the only SQL outside the collector's writes (database.py).

Rollups are per local day, so every period read here starts and ends at local
midnights (`PeriodAlignmentError` otherwise); a period of whole months is read from
their sums per month. Running jobs are not in the rollups and are added by the engine
(engine.usage).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence

import msgspec

from collector.engine.rollup import LocalDays
from collector.slurm.records import Event, JobRecord, Reservation
from collector.store.database import (
    ENERGY_SINCE,
    GPU_USE_COLUMNS,
    GPU_USE_SINCE,
    MONTHS_OF,
    UNUSUAL_STATE_SQL,
    Collection,
    Store,
    month_span,
)


class UsageRow(msgspec.Struct, frozen=True):
    account: str
    user: str
    partition: str
    gpu_type: str
    wckey: str
    size_class: str
    gpu_s: int
    energy_j: int = 0        # joules of the jobs whose energy Slurm recorded
    energy_gpu_s: int = 0    # the GPU-seconds of those jobs (the rest: no energy data)
    # GPU use (database.GPU_USE_COLUMNS): the GPU-seconds of jobs with GPU data, their
    # busy and idle-allocated GPU-seconds, memory peak (MiB) x GPU-seconds, and the
    # jobs idle over an hour with their GPU-seconds
    use_gpu_s: int = 0
    busy_gpu_s: int = 0
    idle_gpu_s: int = 0
    mem_mib_gpu_s: int = 0
    long_idle_jobs: int = 0
    long_idle_gpu_s: int = 0


class StartRow(msgspec.Struct, frozen=True):
    account: str
    user: str
    size_class: str
    wait_bin: int
    jobs: int
    wait_s: int


class Tree(msgspec.Struct, frozen=True):
    parents: dict[str, str]
    organisations: dict[str, str]
    budgets: dict[str, int | None]   # GrpTRESMins gres/gpu minutes
    # Accounts under different parents on different clusters: (account, parents).
    conflicts: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Health(msgspec.Struct, frozen=True):
    """The collector's runs, as the store records them."""

    latest_id: int
    collections: int
    failed: int
    jobs_ingested: int
    last_attempt_s: float | None
    last_success_s: float | None
    last_success_duration_s: float | None
    rejected_lines: int


class Rejected(msgspec.Struct, frozen=True):
    source: str
    line_no: int
    reason: str
    line: str


class PeriodAlignmentError(ValueError):
    """A period that does not start and end at local midnight."""


Clusters = Sequence[str]  # the clusters a read covers: one, or the facility's


def _in(clusters: Clusters) -> str:
    """`cluster IN (?, ...)` for the clusters (at least one)."""
    if not clusters or isinstance(clusters, str):
        raise TypeError(f"clusters must be a non-empty sequence of names, not {clusters!r}")
    return f"cluster IN ({', '.join('?' * len(clusters))})"


def _rollup(store: Store, start_s: int, end_s: int) -> str:
    """Which rollups hold [start, end): "month" (usage_month, starts_month) when it is
    whole months and the store has them for its zone, else "day". Raises
    PeriodAlignmentError unless both ends are local midnights."""
    zone = store.meta("timezone") or "UTC"
    days = LocalDays(zone)
    for t in (start_s, end_s):
        if days(t) != t:
            raise PeriodAlignmentError(f"period boundary {t} is not a midnight in {zone}")
    if store.meta(MONTHS_OF) == zone and all(month_span(t, days.zone)[0] == t
                                             for t in (start_s, end_s)):
        return "month"
    return "day"


def usage_rows(store: Store, clusters: Clusters, start_s: int, end_s: int) -> list[UsageRow]:
    """Rolled-up GPU-seconds (and joules) of finished jobs in [start, end) by account,
    user, partition, GPU type, WCKey and size class."""
    rollup = _rollup(store, start_s, end_s)
    return [UsageRow(*r) for r in store.conn.execute(
        "SELECT account, user, partition, gpu_type, wckey, size_class, SUM(gpu_s), "
        "SUM(energy_j), SUM(energy_gpu_s), "
        + ", ".join(f"SUM({c})" for c in GPU_USE_COLUMNS) + " "
        f"FROM usage_{rollup} WHERE {_in(clusters)} AND day_s >= ? AND day_s < ? "
        "GROUP BY account, user, partition, gpu_type, wckey, size_class "
        "HAVING SUM(gpu_s) != 0 OR SUM(energy_j) != 0 OR SUM(use_gpu_s) != 0",
        (*clusters, start_s, end_s))]


def _gpu_s_by(store: Store, clusters: Clusters, start_s: int, end_s: int, by: str,
              rollup: str = "day") -> list[tuple]:
    """Rolled-up GPU-seconds in [start, end) grouped by `by` (usage_day's own column
    names, never user input): rows of (*by, gpu_s)."""
    return store.conn.execute(
        f"SELECT {by}, SUM(gpu_s) FROM usage_{rollup} WHERE {_in(clusters)} AND day_s >= ? "
        f"AND day_s < ? GROUP BY {by}", (*clusters, start_s, end_s)).fetchall()


def account_totals(store: Store, clusters: Clusters, start_s: int, end_s: int
                   ) -> dict[str, int]:
    """Rolled-up GPU-seconds per account in [start, end)."""
    return dict(_gpu_s_by(store, clusters, start_s, end_s, "account",
                          _rollup(store, start_s, end_s)))


def daily_account_rows(store: Store, clusters: Clusters, start_s: int, end_s: int
                       ) -> dict[tuple[int, str], int]:
    """Rolled-up GPU-seconds per (local day, account) in [start, end)."""
    return {(day, account): gpu_s for day, account, gpu_s in
            _gpu_s_by(store, clusters, start_s, end_s, "day_s, account")}


def cluster_totals(store: Store, clusters: Clusters, start_s: int, end_s: int
                   ) -> dict[str, int]:
    """Rolled-up GPU-seconds per cluster in [start, end)."""
    return dict(_gpu_s_by(store, clusters, start_s, end_s, "cluster",
                          _rollup(store, start_s, end_s)))


def daily_rows(store: Store, clusters: Clusters, start_s: int, end_s: int
               ) -> dict[tuple[int, str, str], int]:
    """Rolled-up GPU-seconds per (local day, account, user) in [start, end)."""
    out: dict[tuple[int, str, str], int] = defaultdict(int)
    for day, account, user, gpu_s in _gpu_s_by(store, clusters, start_s, end_s,
                                                "day_s, account, user"):
        out[(day, account, user)] += gpu_s
    return out


def start_rows(store: Store, clusters: Clusters, start_s: int, end_s: int) -> list[StartRow]:
    """Jobs that started in [start, end) with their queue waits, including open jobs
    (they are rolled up when they start)."""
    rollup = _rollup(store, start_s, end_s)
    rows: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for account, user, size, wbin, jobs, wait_s in store.conn.execute(
            "SELECT account, user, size_class, wait_bin, SUM(jobs), SUM(wait_s) "
            f"FROM starts_{rollup} WHERE {_in(clusters)} AND day_s >= ? AND day_s < ? "
            "GROUP BY account, user, size_class, wait_bin", (*clusters, start_s, end_s)):
        rows[(account, user, size, wbin)][0] += jobs
        rows[(account, user, size, wbin)][1] += wait_s
    return [StartRow(*k, *v) for k, v in rows.items() if v[0]]


def open_jobs(store: Store, clusters: Clusters) -> list[JobRecord]:
    """Jobs without an end: pending or running at the last collection."""
    return [job for cluster in clusters for job in store.open_jobs(cluster)]


def tree(store: Store, clusters: Clusters) -> Tree:
    """The account tree of the clusters, merged. Slurm keeps one tree per cluster; an
    account placed under different parents on two of them is listed in `conflicts`
    (its first cluster's parent is used). Budgets of an account on several clusters
    (GrpTRESMins is per cluster) add up; a cluster without one adds nothing."""
    parents: dict[str, str] = {}
    orgs: dict[str, str] = {}
    budgets: dict[str, int | None] = {}
    conflicts: dict[str, set[str]] = defaultdict(set)
    order = {c: i for i, c in enumerate(clusters)}
    rows = sorted(store.conn.execute(
        "SELECT cluster, account, parent, organisation, grp_gpu_minutes FROM accounts "
        f"WHERE {_in(clusters)}", tuple(clusters)), key=lambda r: order.get(r[0], 0))
    for _, account, parent, org, budget in rows:
        if account in parents:
            if parents[account] != parent:
                conflicts[account].update((parents[account], parent))
            old = budgets[account]
            budgets[account] = old if budget is None else budget if old is None \
                else old + budget
            continue
        parents[account], orgs[account], budgets[account] = parent, org, budget
    return Tree(parents, orgs, budgets,
                tuple((a, tuple(sorted(p))) for a, p in sorted(conflicts.items())))


def events(store: Store, cluster: str) -> list[Event]:
    return [Event(*r) for r in store.conn.execute(
        "SELECT kind, node, start_s, end_s, state, reason, gpus, nodes FROM events "
        "WHERE cluster=?", (cluster,))]


def energy_since(store: Store) -> int | None:
    """When the store was upgraded to hold energy (jobs stored before hold none); None
    when every stored job was read with its energy."""
    value = store.meta(ENERGY_SINCE)
    return int(value) if value else None


def gpu_use_since(store: Store) -> int | None:
    """When the store was upgraded to hold GPU use from steps; None when every stored
    job was read with it."""
    value = store.meta(GPU_USE_SINCE)
    return int(value) if value else None


def reservations(store: Store, cluster: str) -> list[Reservation]:
    return [Reservation(i, n, s, e, tuple(f for f in flags.split(",") if f), nodes, gpus)
            for i, n, s, e, flags, nodes, gpus in store.conn.execute(
                "SELECT id, name, start_s, end_s, flags, nodelist, tres_gpus FROM reservations "
                "WHERE cluster=?", (cluster,))]


def node_gpus(store: Store, cluster: str) -> dict[str, list[tuple[int, int | None, int]]]:
    """Each node's GPU count over time, from the node inventory: node -> [(from, until
    (None: still), GPUs)], oldest first."""
    out: dict[str, list[tuple[int, int | None, int]]] = defaultdict(list)
    try:
        rows = store.conn.execute(
            "SELECT node, first_seen_s, last_seen_s, gpus FROM node_inventory "
            "WHERE cluster=? ORDER BY node, first_seen_s", (cluster,)).fetchall()
    except sqlite3.OperationalError:  # a store no collection of this version wrote yet
        rows = []
    for node, first, last, gpus in rows:
        out[node].append((first, last, gpus))
    return dict(out)


def unusual_states(store: Store, clusters: Clusters, start_s: int, end_s: int) -> dict[str, int]:
    """States other than the common ones, e.g. a state a newer Slurm introduced
    (read through the store's partial index on exactly that condition)."""
    return dict(store.conn.execute(
        f"SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_unusual_state WHERE {UNUSUAL_STATE_SQL} "
        f"AND {_in(clusters)} "
        "AND submit_s < ? AND (end_s IS NULL OR end_s > ?) GROUP BY state",
        (*clusters, end_s, start_s)).fetchall())


def used_before(store: Store, clusters: Clusters, day_s: int, users: Iterable[str],
                accounts: Iterable[str]) -> tuple[set[str], set[str]]:
    """Of these users and accounts, those with GPU use on a day before `day_s` (one
    index lookup each: usage_day_user, usage_day_account_gpu)."""
    found: tuple[set[str], set[str]] = (set(), set())
    for column, names, out in (("user", users, found[0]), ("account", accounts, found[1])):
        for name in names:
            if any(store.conn.execute(
                    f"SELECT 1 FROM usage_day WHERE cluster=? AND {column}=? AND day_s < ? "
                    "AND gpu_s > 0 LIMIT 1", (cluster, name, day_s)).fetchone()
                   for cluster in clusters):
                out.add(name)
    return found


def _rejected_in(clusters: Clusters) -> str:
    """Rejected lines of the clusters' collections (a line is kept with the collection
    that first met it, and so with its cluster)."""
    return f"collection_id IN (SELECT id FROM collections WHERE {_in(clusters)})"


def rejected(store: Store, clusters: Clusters, sample: int = 5) -> tuple[int, list[Rejected]]:
    """How many distinct lines of the clusters' collections could not be read, and the
    newest few."""
    count = store.conn.execute(f"SELECT COUNT(*) FROM rejected_lines WHERE "
                               f"{_rejected_in(clusters)}", tuple(clusters)).fetchone()[0]
    rows = [Rejected(*r) for r in store.conn.execute(
        "SELECT source, line_no, reason, line FROM rejected_lines "
        f"WHERE {_rejected_in(clusters)} ORDER BY collection_id DESC LIMIT ?",
        (*clusters, sample))]
    return count, rows


def last_collection(store: Store, clusters: Clusters, status: str | None = "ok"
                    ) -> Collection | None:
    """The cluster's last collection; for several, the oldest of their last ones (the
    figures are as fresh as their stalest cluster), None if one has none."""
    lasts = [store.last_collection(cluster, status) for cluster in clusters]
    if any(c is None for c in lasts):
        return None
    return min(lasts, key=lambda c: c.finished_s)  # type: ignore[union-attr]


def version(store: Store, clusters: Clusters) -> tuple[int, float]:
    """(newest collection id, its end): changes after each collection (a cache key)."""
    row = store.conn.execute("SELECT coalesce(max(id), 0), coalesce(max(finished_s), 0) "
                             f"FROM collections WHERE {_in(clusters)}",
                             tuple(clusters)).fetchone()
    return int(row[0]), float(row[1])


def health(store: Store, clusters: Clusters) -> Health:
    count, failed, ingested, last = store.conn.execute(
        "SELECT COUNT(*), coalesce(SUM(status != 'ok'), 0), coalesce(SUM(jobs_new), 0), "
        f"MAX(finished_s) FROM collections WHERE {_in(clusters)}",
        tuple(clusters)).fetchone()
    ok = last_collection(store, clusters)
    count_rejected = store.conn.execute(
        f"SELECT COUNT(*) FROM rejected_lines WHERE {_rejected_in(clusters)}",
        tuple(clusters)).fetchone()[0]
    return Health(version(store, clusters)[0], count, failed, ingested, last,
                  ok and ok.finished_s, ok and ok.finished_s - ok.started_s, count_rejected)


class StoredCheck(msgspec.Struct, frozen=True):
    """One `gpu-usage verify` result: the store against sreport (GPU-minutes)."""

    period: str
    checked_s: float
    accounts: int
    differing: int
    max_difference_minutes: float
    ours_gpu_minutes: float
    sreport_gpu_minutes: float


def save_check(store: Store, cluster: str, check: StoredCheck) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO sreport_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (cluster, check.period, check.checked_s, check.accounts, check.differing,
                      check.max_difference_minutes, check.ours_gpu_minutes,
                      check.sreport_gpu_minutes))


def load_checks(store: Store, cluster: str) -> list[StoredCheck]:
    """Stored checks, newest period first; [] for a store made before checks existed."""
    try:
        rows = store.conn.execute(
            "SELECT period, checked_s, accounts, differing, max_diff_minutes, ours_minutes, "
            "sreport_minutes FROM sreport_checks WHERE cluster=? ORDER BY period DESC",
            (cluster,)).fetchall()
    except sqlite3.OperationalError:
        return []
    return [StoredCheck(*r) for r in rows]


# --- what a site's export for a network of sites reads (network/export.py) ------------
def first_usage_day(store: Store, cluster: str) -> int | None:
    """The first local day with rolled-up use (None: nothing rolled up)."""
    return store.conn.execute(
        "SELECT MIN(day_s) FROM usage_day WHERE cluster=?", (cluster,)).fetchone()[0]


def usage_days_since(store: Store, cluster: str, first_s: int
                     ) -> list[tuple[int, str, str, str, int, int, int]]:
    """Rolled-up (day, account, partition, GPU type, GPU-seconds, joules, GPU-seconds
    with energy) from local day `first_s` on."""
    return store.conn.execute(
        "SELECT day_s, account, partition, gpu_type, SUM(gpu_s), SUM(energy_j), "
        "SUM(energy_gpu_s) FROM usage_day WHERE cluster=? AND day_s >= ? "
        "GROUP BY day_s, account, partition, gpu_type", (cluster, first_s)).fetchall()


def finished_gpu_jobs(store: Store, cluster: str, ended_from_s: int) -> list[tuple]:
    """Finished jobs with GPUs that ran, ended at or after `ended_from_s`: (job ID,
    account, partition, state, submit, start, end, GPUs, joules, GPU types), by end."""
    return store.conn.execute(
        "SELECT job_id, account, partition, state, submit_s, start_s, end_s, gpus, energy_j, "
        "gpu_types FROM jobs WHERE cluster=? AND end_s >= ? AND gpus > 0 "
        "AND start_s IS NOT NULL AND end_s > start_s ORDER BY end_s",
        (cluster, ended_from_s)).fetchall()
