"""Usage in a period, read from the store: rolled-up finished jobs plus open jobs
clipped live, so running jobs count up to now.

Periods are whole local days (every month, quarter and year is): the rollups
are per local day. The SQL here only sums them; everything else (categories,
quotas, allocations) is pure Python over the rows it returns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from collector.engine.capacity import Capacity, capacity
from collector.engine.rollup import LocalDays, bucket_origin, size_class, split_hours
from collector.slurm.records import JobRecord
from collector.slurm.sacctmgr_parser import Event, Reservation
from collector.store.database import UNUSUAL_STATE_SQL, Store


@dataclass(frozen=True)
class UsageRow:
    account: str
    user: str
    partition: str
    gpu_type: str
    wckey: str
    size_class: str
    gpu_s: int


@dataclass(frozen=True)
class StartRow:
    account: str
    user: str
    size_class: str
    wait_bin: int
    jobs: int
    wait_s: int


@dataclass(frozen=True)
class Tree:
    parents: dict[str, str]
    organisations: dict[str, str]
    budgets: dict[str, int | None]   # GrpTRESMins gres/gpu minutes


class PeriodAlignmentError(ValueError):
    """A period that does not start and end at local midnight."""


def _check_aligned(store: Store, start_s: int, end_s: int) -> None:
    zone = store.meta("timezone") or "UTC"
    days = LocalDays(zone)
    for t in (start_s, end_s):
        if days(t) != t:
            raise PeriodAlignmentError(f"period boundary {t} is not a midnight in {zone}")


def open_usage(jobs: list[JobRecord], start_s: int, end_s: int, origin: int = 0
               ) -> list[UsageRow]:
    """Jobs still running, clipped to [start, end): end is "now" or the period's end."""
    out = []
    for job in jobs:
        if job.start_s is None or not job.started or job.gpus <= 0:
            continue
        seconds = end_s - max(job.start_s, start_s)
        if seconds > 0:
            out.append(UsageRow(job.account, job.user, job.partition, job.gpu_type or "",
                                job.wckey, size_class(job.gpus, job.nodes), job.gpus * seconds))
    return out


def period_usage(store: Store, cluster: str, start_s: int, end_s: int, now_s: int,
                 open_jobs: list[JobRecord] | None = None) -> list[UsageRow]:
    """GPU-seconds in [start, min(end, now)) by account, user, partition, GPU type,
    WCKey and size class."""
    _check_aligned(store, start_s, end_s)
    rows = [UsageRow(*r) for r in store.conn.execute(
        "SELECT account, user, partition, gpu_type, wckey, size_class, SUM(gpu_s) "
        "FROM usage_day WHERE cluster=? AND day_s >= ? AND day_s < ? "
        "GROUP BY account, user, partition, gpu_type, wckey, size_class HAVING SUM(gpu_s) != 0",
        (cluster, start_s, end_s))]
    if open_jobs is None:
        open_jobs = store.open_jobs(cluster)
    return rows + open_usage(open_jobs, start_s, min(end_s, now_s))


def daily_usage(store: Store, cluster: str, start_s: int, end_s: int, now_s: int,
                timezone: str, open_jobs: list[JobRecord] | None = None
                ) -> dict[tuple[int, str, str], int]:
    """GPU-seconds per (local day, account, user) in [start, min(end, now))."""
    out: dict[tuple[int, str, str], int] = defaultdict(int)
    for day, account, user, gpu_s in store.conn.execute(
            "SELECT day_s, account, user, SUM(gpu_s) FROM usage_day WHERE cluster=? "
            "AND day_s >= ? AND day_s < ? GROUP BY day_s, account, user",
            (cluster, start_s, end_s)):
        out[(day, account, user)] += gpu_s
    day_of = LocalDays(timezone)
    origin = bucket_origin(timezone)
    stop = min(end_s, now_s)
    for job in store.open_jobs(cluster) if open_jobs is None else open_jobs:
        if job.start_s is None or not job.started or job.gpus <= 0:
            continue
        for hour, seconds in split_hours(max(job.start_s, start_s), stop, origin):
            out[(day_of(hour), job.account, job.user)] += job.gpus * seconds
    return out


def period_starts(store: Store, cluster: str, start_s: int, end_s: int) -> list[StartRow]:
    """Jobs that started in [start, end) with their queue waits, including open jobs
    (they are rolled up when they start)."""
    _check_aligned(store, start_s, end_s)
    rows = defaultdict(lambda: [0, 0])
    for account, user, size, wbin, jobs, wait_s in store.conn.execute(
            "SELECT account, user, size_class, wait_bin, SUM(jobs), SUM(wait_s) FROM starts_day "
            "WHERE cluster=? AND day_s >= ? AND day_s < ? "
            "GROUP BY account, user, size_class, wait_bin", (cluster, start_s, end_s)):
        rows[(account, user, size, wbin)][0] += jobs
        rows[(account, user, size, wbin)][1] += wait_s
    return [StartRow(*k, *v) for k, v in rows.items() if v[0]]


def tree(store: Store, cluster: str) -> Tree:
    parents, orgs, budgets = {}, {}, {}
    for account, parent, org, budget in store.conn.execute(
            "SELECT account, parent, organisation, grp_gpu_minutes FROM accounts "
            "WHERE cluster=?", (cluster,)):
        parents[account], orgs[account], budgets[account] = parent, org, budget
    return Tree(parents, orgs, budgets)


def period_capacity(store: Store, cluster: str, start_s: int, end_s: int) -> Capacity:
    events = [Event(*r) for r in store.conn.execute(
        "SELECT kind, node, start_s, end_s, state, reason, gpus, nodes FROM events "
        "WHERE cluster=?", (cluster,))]
    resv = [Reservation(i, n, s, e, tuple(f for f in flags.split(",") if f), nodes, gpus)
            for i, n, s, e, flags, nodes, gpus in store.conn.execute(
                "SELECT id, name, start_s, end_s, flags, nodelist, tres_gpus FROM reservations "
                "WHERE cluster=?", (cluster,))]
    return capacity(start_s, end_s, events, resv)


def unusual_states(store: Store, cluster: str, start_s: int, end_s: int) -> dict[str, int]:
    """States other than the common ones, e.g. a state a newer Slurm introduced
    (read through the store's partial index on exactly that condition)."""
    return dict(store.conn.execute(
        f"SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_unusual WHERE {UNUSUAL_STATE_SQL} "
        "AND cluster=? "
        "AND submit_s < ? AND (end_s IS NULL OR end_s > ?) GROUP BY state",
        (cluster, end_s, start_s)).fetchall())


def first_use_days(store: Store, cluster: str) -> tuple[dict[str, int], dict[str, int]]:
    """First day with GPU use per user and per account, over the whole store."""
    users, accounts = {}, {}
    for user, account, day in store.conn.execute(
            "SELECT user, account, MIN(day_s) FROM usage_day WHERE cluster=? AND gpu_s > 0 "
            "GROUP BY user, account", (cluster,)):
        users[user] = min(day, users.get(user, day))
        accounts[account] = min(day, accounts.get(account, day))
    return users, accounts

