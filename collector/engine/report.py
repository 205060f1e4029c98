"""The monthly (quarterly, yearly) report as one plain, JSON-ready dict.

`build_report` reads the store (usage.py) and hands plain rows to the pure
functions below; renderers (render.py) only lay the dict out. GPU-hours are
floats rounded to 1/1000; shares are 0..1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from collector import clock
from collector.config import Settings
from collector.engine import usage
from collector.engine.capacity import Capacity
from collector.engine.periods import Period, local_midnight, months_of, year_to_date
from collector.engine.policy import AccountMap, Allocation, allocations, descendants, map_accounts
from collector.engine.rollup import NO_GPU, SIZE_CLASSES, WAIT_EDGES
from collector.store.database import Collection, Store

UNMAPPED = "(unmapped)"


def h(seconds: float) -> float:
    """GPU-seconds as GPU-hours, rounded for output."""
    return round(seconds / 3600, 3)


def _iso(epoch: float, tz: str) -> str:
    return datetime.fromtimestamp(epoch, ZoneInfo(tz)).isoformat(timespec="seconds")


def _sum_by(rows: Iterable, key) -> dict:
    out: dict = defaultdict(int)
    for r in rows:
        out[key(r)] += r.gpu_s
    return out


def quota_gpu_s(settings: Settings, period: Period, available_gpu_s: int) -> dict[str, float]:
    """Per category: quota_share x available, or the absolute monthly quota x months."""
    months = len(months_of(period)) if period.kind in ("month", "quarter", "year") else \
        period.hours / (365.25 * 24 / 12)
    return {c.name: (c.quota_gpu_hours * 3600 * months if c.quota_gpu_hours is not None
                     else c.quota_share * available_gpu_s) for c in settings.categories}


def median_wait_s(bins: dict[int, int]) -> float | None:
    """Median queue wait, interpolated inside the wait bin that holds it."""
    total = sum(bins.values())
    if not total:
        return None
    edges = (0, *WAIT_EDGES, 2 * WAIT_EDGES[-1])
    seen = 0
    for b in sorted(bins):
        if seen + bins[b] >= total / 2:
            low, high = edges[b], edges[b + 1]
            return low + (high - low) * (total / 2 - seen) / bins[b]
        seen += bins[b]
    return None  # pragma: no cover - the loop always reaches half of the total


@dataclass(frozen=True)
class AllocationUse:
    used_period_s: int
    used_total_s: int
    as_of_s: int


def allocation_state(a: Allocation, period: Period) -> str:
    """new (starts in the period), ended (ends in it), active, upcoming or finished."""
    if a.start is None or a.end is None:
        return "active"
    first, last = period.start_date(), period.end_date()
    if a.start > last:
        return "upcoming"
    if a.end < first:
        return "finished"
    if a.start >= first:
        return "new"
    return "ended" if a.end <= last else "active"


def allocation_entry(a: Allocation, use: AllocationUse, category: str | None,
                     timezone: str, state: str = "active") -> dict:
    """Granted vs used, the linear plan to date, and where the burn rate leads."""
    granted = a.granted_gpu_hours
    used = use.used_total_s / 3600
    entry = {
        "account": a.account, "project": a.project, "category": category or UNMAPPED,
        "state": state,
        "source": a.source, "access_mode": a.access_mode, "country": a.country,
        "organisation": a.organisation, "start": a.start and a.start.isoformat(),
        "end": a.end and a.end.isoformat(), "granted_gpu_hours": granted,
        "slurm_budget_gpu_hours": a.slurm_gpu_hours,
        "used_gpu_hours_period": h(use.used_period_s), "used_gpu_hours_total": h(use.used_total_s),
        "consumed": round(used / granted, 4), "planned_gpu_hours_to_date": None,
        "projected_exhaustion": None, "projected_unused_gpu_hours": None, "warnings": [],
    }
    warnings = entry["warnings"]
    if used >= granted:
        warnings.append("budget used up")
    if a.start is None or a.end is None:
        return entry
    begin = local_midnight(a.start, timezone)
    finish = local_midnight(a.end + timedelta(days=1), timezone)
    elapsed = min(max(use.as_of_s - begin, 0), finish - begin)
    fraction = elapsed / (finish - begin)
    planned = granted * fraction
    entry["planned_gpu_hours_to_date"] = round(planned, 3)
    if elapsed <= 0:
        return entry
    rate = used / elapsed  # GPU-hours per second of the allocation so far
    if used < granted and rate > 0:
        runs_out = use.as_of_s + (granted - used) / rate
        if runs_out < finish:
            entry["projected_exhaustion"] = datetime.fromtimestamp(
                runs_out, ZoneInfo(timezone)).date().isoformat()
    remaining = max(0, finish - use.as_of_s)
    unused = max(0.0, granted - used - rate * remaining)
    entry["projected_unused_gpu_hours"] = round(unused, 3)
    if planned and used > 1.1 * planned and used < granted:
        warnings.append(f"over plan: {used / planned:.0%} of the linear plan to date")
    if fraction >= 0.25 and used < 0.5 * planned:
        warnings.append(f"under plan: {used / planned:.0%} of the linear plan to date")
    if fraction < 1 and unused > 0.25 * granted:
        warnings.append(f"projected to leave {unused / granted:.0%} of the budget unused")
    return entry


def capacity_entry(cap: Capacity, allocated_s: int) -> dict:
    available = cap.available_gpu_s
    return {
        "gpus": cap.gpus_now, "nominal_gpu_hours": h(cap.nominal_gpu_s),
        "down_gpu_hours": h(cap.down_gpu_s), "planned_down_gpu_hours": h(cap.planned_down_gpu_s),
        "available_gpu_hours": h(available), "allocated_gpu_hours": h(allocated_s),
        "idle_gpu_hours": h(available - allocated_s),
        "utilisation": round(allocated_s / available, 4) if available > 0 else None,
        "availability": round(available / cap.nominal_gpu_s, 4) if cap.nominal_gpu_s else None,
    }


def build_report(store: Store, settings: Settings, period: Period,
                 now: float | None = None) -> dict:
    """Everything a report on `period` shows, computed from the store."""
    now_s = int(clock.now_or(now))
    cluster, tz = settings.slurm.cluster, settings.facility.timezone
    until = max(period.start_s, min(period.end_s, now_s))
    running = store.open_jobs(cluster)  # read once; every sum below clips them
    rows = usage.period_usage(store, cluster, period.start_s, period.end_s, now_s, running)
    starts = usage.period_starts(store, cluster, period.start_s, period.end_s)
    tree = usage.tree(store, cluster)
    amap = map_accounts(settings, tree.parents, {r.account for r in rows})
    cap = usage.period_capacity(store, cluster, period.start_s, until)
    allocated = sum(r.gpu_s for r in rows)
    ytd = year_to_date(period)
    ytd_days = usage.daily_usage(store, cluster, ytd.start_s, ytd.end_s, now_s, tz, running)
    ytd_cap = usage.period_capacity(store, cluster, ytd.start_s, max(ytd.start_s,
                                                                    min(ytd.end_s, now_s)))
    last = store.last_collection(cluster)
    report = {
        "facility": settings.facility.name, "cluster": cluster,
        "generated_at": _iso(now_s, tz),
        "last_collection": last and _iso(last.finished_s, tz),
        "period": {"kind": period.kind, "label": period.label, "timezone": tz,
                   "start": _iso(period.start_s, tz), "end": _iso(period.end_s, tz),
                   "data_until": _iso(until, tz), "hours": period.hours},
        "capacity": capacity_entry(cap, allocated),
    }
    report.update(_usage_sections(settings, period, ytd, rows, amap, cap, ytd_days, ytd_cap,
                                  tree))
    report["allocations"] = _allocations(store, settings, period, now_s, amap, tree, rows,
                                         running)
    report["job_mix"] = _job_mix(settings, rows, starts, amap)
    report["service"] = _service(store, settings, period, rows, starts, amap)
    report["unmapped_accounts"] = _unmapped(rows, amap, tree)
    report["data_quality"] = _data_quality(store, settings, period, starts, amap, cap, last)
    return report


def _usage_sections(settings: Settings, period: Period, ytd: Period, rows: list,
                    amap: AccountMap, cap: Capacity, ytd_days: dict, ytd_cap: Capacity,
                    tree: usage.Tree) -> dict:
    available = cap.available_gpu_s
    quotas = quota_gpu_s(settings, period, available)
    ytd_quotas = quota_gpu_s(settings, ytd, ytd_cap.available_gpu_s)
    by_cat = _sum_by(rows, lambda r: amap.category_of(r.account) or UNMAPPED)
    ytd_by_cat: dict[str, int] = defaultdict(int)
    for (_, account, _), gpu_s in ytd_days.items():
        ytd_by_cat[amap.category_of(account) or UNMAPPED] += gpu_s
    weights = settings.gpu_weights
    weighted = defaultdict(float)
    for r in rows:
        weighted[amap.category_of(r.account) or UNMAPPED] += r.gpu_s * weights.get(r.gpu_type, 1)
    categories = []
    for c in settings.categories:
        used, quota = by_cat.get(c.name, 0), quotas[c.name]
        categories.append({
            "category": c.name, "pool": c.pool, "gpu_hours": h(used),
            "normalised_gpu_hours": h(weighted.get(c.name, 0)), "quota_share": c.quota_share,
            "quota_gpu_hours": h(quota), "difference_gpu_hours": h(used - quota),
            "used_of_quota": round(used / quota, 4) if quota else None,
            "share_of_available": round(used / available, 4) if available > 0 else None,
            "ytd_gpu_hours": h(ytd_by_cat.get(c.name, 0)),
            "ytd_quota_gpu_hours": h(ytd_quotas[c.name]),
        })
    pools = []
    for p in settings.pools:
        members = [c.name for c in settings.categories if c.pool == p.name]
        used = sum(by_cat.get(c, 0) for c in members)
        pools.append({
            "pool": p.name, "share": p.share, "categories": members, "gpu_hours": h(used),
            "quota_share": p.share, "quota_gpu_hours": h(p.share * available),
            "share_of_available": round(used / available, 4) if available > 0 else None,
            "ytd_gpu_hours": h(sum(ytd_by_cat.get(c, 0) for c in members)),
            "ytd_quota_gpu_hours": h(p.share * ytd_cap.available_gpu_s),
        })
    rule = settings.commercial
    pool_quota = next(p.share for p in settings.pools if p.name == rule.pool) * available
    commercial = by_cat.get(rule.category, 0)
    share = commercial / pool_quota if pool_quota > 0 else None
    by_account = _sum_by(rows, lambda r: r.account)
    by_user = _sum_by(rows, lambda r: (r.user, r.account))
    by_part = _sum_by(rows, lambda r: r.partition)
    by_type = _sum_by(rows, lambda r: r.gpu_type)
    total = sum(by_account.values())
    return {
        "pools": pools, "categories": categories,
        "commercial": {"category": rule.category, "pool": rule.pool,
                       "gpu_hours": h(commercial), "pool_quota_gpu_hours": h(pool_quota),
                       "share_of_pool": share and round(share, 4),
                       "max_share_of_pool": rule.max_share_of_pool,
                       "within_limit": share is None or share <= rule.max_share_of_pool},
        "partitions": [{"partition": p, "gpu_hours": h(s),
                        "share_of_allocated": round(s / total, 4) if total else None}
                       for p, s in sorted(by_part.items())],
        "gpu_types": [{"gpu_type": t or "(untyped)", "gpu_hours": h(s),
                       "weight": weights.get(t, 1.0), "normalised_gpu_hours":
                       h(s * weights.get(t, 1.0))} for t, s in sorted(by_type.items())],
        "accounts": [{"account": a, "category": amap.category_of(a) or UNMAPPED,
                      "pool": amap.pool_of(a) or UNMAPPED,
                      "organisation": tree.organisations.get(a, ""), "gpu_hours": h(s)}
                     for a, s in sorted(by_account.items())],
        "users": [{"user": u, "account": a, "gpu_hours": h(s)}
                  for (u, a), s in sorted(by_user.items())],
        **_by_allocation_attributes(settings, by_account),
    }


def _by_allocation_attributes(settings: Settings, by_account: dict) -> dict:
    modes: dict[str, int] = defaultdict(int)
    countries: dict[str, int] = defaultdict(int)
    attrs = {a.account: a for a in settings.allocations}
    for account, gpu_s in by_account.items():
        a = attrs.get(account)
        modes[(a and a.access_mode) or "(none)"] += gpu_s
        countries[(a and a.country) or "(none)"] += gpu_s
    return {"access_modes": [{"access_mode": m, "gpu_hours": h(s)}
                             for m, s in sorted(modes.items())],
            "countries": [{"country": c, "gpu_hours": h(s)}
                          for c, s in sorted(countries.items())]}


def _allocations(store: Store, settings: Settings, period: Period, now_s: int,
                 amap: AccountMap, tree: usage.Tree, rows: list, running: list) -> list[dict]:
    tz, cluster = settings.facility.timezone, settings.slurm.cluster
    as_of = max(period.start_s, min(period.end_s, now_s))
    out = []
    allocs = allocations(settings, tree.budgets, tree.organisations)
    if not allocs:
        return out
    # Budgets from Slurm have no start: all stored use counts for them.
    first = 0 if any(a.start is None for a in allocs) else min(
        local_midnight(a.start, tz) for a in allocs if a.start)
    days = usage.daily_usage(store, cluster, first, as_of + 86400, as_of, tz, running)
    by_account_period = _sum_by(rows, lambda r: r.account)
    for a in allocs:
        members = descendants(a.account, tree.parents)
        begin = local_midnight(a.start, tz) if a.start else 0
        finish = local_midnight(a.end + timedelta(days=1), tz) if a.end else as_of + 86400
        total = sum(s for (day, acc, _), s in days.items()
                    if acc in members and begin <= day < finish)
        if not a.start:  # a Slurm budget: all stored use counts
            total = sum(s for (_, acc, _), s in days.items() if acc in members)
        in_period = sum(by_account_period.get(m, 0) for m in members)
        use = AllocationUse(in_period, total, as_of)
        out.append(allocation_entry(a, use, amap.category_of(a.account), tz,
                                    allocation_state(a, period)))
    return out


def _job_mix(settings: Settings, rows: list, starts: list, amap: AccountMap) -> dict:
    size = _sum_by(rows, lambda r: (amap.category_of(r.account) or UNMAPPED, r.size_class))
    jobs: dict = defaultdict(int)
    for s in starts:
        jobs[(amap.category_of(s.account) or UNMAPPED, s.size_class)] += s.jobs
    phases = _sum_by(rows, lambda r: (amap.category_of(r.account) or UNMAPPED,
                                      settings.wckeys.get(r.wckey, "other")))
    order = {c.name: i for i, c in enumerate(settings.categories)}
    return {
        "size": [{"category": c, "size_class": s, "gpu_hours": h(size.get((c, s), 0)),
                  "jobs_started": jobs.get((c, s), 0)}
                 for c in sorted({k[0] for k in size}, key=lambda c: order.get(c, 99))
                 for s in SIZE_CLASSES if size.get((c, s)) or jobs.get((c, s))],
        "phase": [{"category": c, "phase": p, "gpu_hours": h(s)}
                  for (c, p), s in sorted(phases.items(), key=lambda x: (order.get(x[0][0], 99),
                                                                         x[0][1]))],
    }


def _service(store: Store, settings: Settings, period: Period, rows: list, starts: list,
             amap: AccountMap) -> dict:
    bins: dict = defaultdict(lambda: defaultdict(int))
    count: dict = defaultdict(int)
    wait: dict = defaultdict(int)
    for s in starts:
        if s.size_class == NO_GPU:
            continue
        cat = amap.category_of(s.account) or UNMAPPED
        bins[cat][s.wait_bin] += s.jobs
        count[cat] += s.jobs
        wait[cat] += s.wait_s
    order = [c.name for c in settings.categories] + [UNMAPPED]
    waits = []
    for cat in [c for c in order if count.get(c)]:
        median = median_wait_s(bins[cat])
        waits.append({"category": cat, "jobs_started": count[cat],
                      "mean_wait_hours": round(wait[cat] / count[cat] / 3600, 3),
                      "median_wait_hours": None if median is None else round(median / 3600, 3)})
    first_user, first_account = usage.first_use_days(store, settings.slurm.cluster)
    users = {r.user for r in rows if r.gpu_s > 0}
    accounts = {r.account for r in rows if r.gpu_s > 0}
    served = defaultdict(int)
    for a in accounts:
        served[amap.category_of(a) or UNMAPPED] += 1
    return {
        "queue_wait": waits,
        "active_users": len(users),
        # No stored day yet: the user's only use is a job still running, so new.
        "new_users": sum(1 for u in users if first_user.get(u, period.start_s)
                         >= period.start_s),
        "active_projects": len(accounts),
        "new_projects": sum(1 for a in accounts if first_account.get(a, period.start_s)
                            >= period.start_s),
        "projects_served_by_category": dict(sorted(served.items())),
    }


def _unmapped(rows: list, amap: AccountMap, tree: usage.Tree) -> list[dict]:
    used = _sum_by(rows, lambda r: r.account)
    has_children = set(tree.parents.values())
    out = []
    for account in sorted(set(used) | set(tree.parents)):
        if amap.category_of(account):
            continue
        if account not in used and account in has_children:
            continue  # a pool or the root: structure above the categories, not a project
        out.append({"account": account, "gpu_hours": h(used.get(account, 0)),
                    "in_slurm_tree": account in tree.parents})
    return out


def _data_quality(store: Store, settings: Settings, period: Period, starts: list,
                  amap: AccountMap, cap: Capacity, last: Collection | None) -> dict:
    cluster = settings.slurm.cluster
    rejected = store.conn.execute("SELECT COUNT(*) FROM rejected_lines").fetchone()[0]
    sample = [{"source": s, "line_no": n, "reason": r, "line": t} for s, n, r, t in
              store.conn.execute("SELECT source, line_no, reason, line FROM rejected_lines "
                                 "ORDER BY collection_id DESC LIMIT 5")]
    return {
        "rejected_lines": rejected, "rejected_sample": sample,
        "unusual_states": usage.unusual_states(store, cluster, period.start_s, period.end_s),
        "jobs_without_gpu_accounting": sum(s.jobs for s in starts if s.size_class == NO_GPU),
        "ambiguous_accounts": {a: list(c) for a, c in sorted(amap.ambiguous.items())},
        "sreport_view": {
            "down_gpu_hours": h(cap.sreport_down_gpu_s),
            "planned_down_gpu_hours": h(cap.sreport_planned_down_gpu_s),
            "note": "sreport -T gres/gpu cluster utilization counts a maintenance "
                    "reservation's GPUs as idle (Slurm stores its CPUs only); this report "
                    "counts them as planned down",
        },
        "last_collection_status": last and last.status,
    }
