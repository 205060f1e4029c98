"""The report on a period (month, quarter, year or custom), as a typed `model.Report`.

`build_report` reads what the period needs through the store once (store.reads, and
running jobs clipped to now: engine.usage) and hands plain rows to the pure functions
below, which compute every figure and every derived status in one place. Figures are
GPU-seconds; the documents and the dashboard turn them into hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta

import msgspec

from collector import clock
from collector.config import Settings
from collector.engine import usage
from collector.engine.capacity import Capacity
from collector.engine.model import (
    SREPORT_NOTE,
    UNMAPPED,
    AccessModeUse,
    AccountUse,
    AllocationStatus,
    CapacityFigures,
    CategoryUse,
    ClusterUse,
    CommercialCheck,
    CountryUse,
    DataQuality,
    Efficiency,
    EfficiencyUse,
    Energy,
    EnergyUse,
    GpuTypeUse,
    JobMix,
    PartitionUse,
    PeriodInfo,
    PhaseUse,
    PoolUse,
    QueueWait,
    RejectedLine,
    Report,
    Service,
    SizeUse,
    SreportView,
    UnmappedAccount,
    UserUse,
)
from collector.engine.periods import Period, local_midnight, year_to_date
from collector.engine.policy import (
    AccountMap,
    AllocationUse,
    allocation_entry,
    allocation_state,
    allocations,
    descendants,
    map_accounts,
    quota_gpu_s,
)
from collector.engine.rollup import NO_GPU, SIZE_CLASSES, WAIT_EDGES
from collector.store import reads
from collector.store.database import Collection, Store
from collector.store.reads import StartRow, Tree, UsageRow

__all__ = ["UNMAPPED", "AllocationUse", "allocation_entry", "allocation_state", "build_report",
           "compute", "load", "median_wait_s", "quota_gpu_s"]


def _sum_by(rows: Iterable[UsageRow], key: Callable[[UsageRow], object]) -> dict:
    out: dict = defaultdict(int)
    for r in rows:
        out[key(r)] += r.gpu_s
    return out


def _energy_by(rows: Iterable[UsageRow], key: Callable[[UsageRow], object]) -> dict:
    """Joules by key, only where some job had energy recorded (elsewhere: no data)."""
    joules: dict = defaultdict(int)
    measured: set = set()
    for r in rows:
        if r.energy_gpu_s:
            joules[key(r)] += r.energy_j
            measured.add(key(r))
    return {k: joules[k] for k in measured}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


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


def capacity_figures(cap: Capacity, allocated_s: int) -> CapacityFigures:
    available = cap.available_gpu_s
    return CapacityFigures(
        gpus=cap.gpus_now, nominal_s=cap.nominal_gpu_s, down_s=cap.down_gpu_s,
        planned_down_s=cap.planned_down_gpu_s, available_s=available,
        allocated_s=allocated_s, idle_s=available - allocated_s,
        utilisation=_ratio(allocated_s, available),
        availability=cap.available_gpu_s / cap.nominal_gpu_s if cap.nominal_gpu_s else None)


class PeriodData(msgspec.Struct, frozen=True):
    """What a report on one period reads from the store, read once."""

    now_s: int
    until_s: int
    rows: list[UsageRow]
    starts: list[StartRow]
    tree: Tree
    cap: Capacity
    ytd: Period
    ytd_accounts: dict[str, int]             # GPU-seconds per account, year to date
    ytd_cap: Capacity
    alloc_days: dict[tuple[int, str], int]   # GPU-seconds per (local day, account)
    users_before: set[str]                   # of the period's users: those with use before it
    accounts_before: set[str]                # and of its accounts
    unusual_states: dict[str, int]
    rejected: tuple[int, list[reads.Rejected]]
    last: Collection | None
    energy_since_s: int | None = None
    gpu_use_since_s: int | None = None
    clusters: tuple[str, ...] = ()
    # With several clusters: each one's capacity, use and last collection (facility
    # reports), and the share of the facility's available time the report's clusters
    # have (absolute quotas are split by it).
    per_cluster: tuple[tuple[str, Capacity, int, Collection | None], ...] = ()
    quota_scale: float = 1.0
    ytd_quota_scale: float = 1.0


def scope_of(settings: Settings, cluster: str | None) -> tuple[str, ...]:
    """The clusters a report covers: `cluster` (one of the configured ones), else all."""
    if cluster is None:
        return settings.slurm.clusters
    if cluster not in settings.slurm.clusters:
        raise ValueError(f"cluster {cluster!r} is not one of the configured clusters "
                         f"({', '.join(settings.slurm.clusters)})")
    return (cluster,)


def _scale(store: Store, settings: Settings, clusters: tuple[str, ...], cap: Capacity,
           start_s: int, end_s: int) -> float:
    """The report's clusters' share of the facility's available GPU time in the span."""
    if clusters == settings.slurm.clusters:
        return 1.0
    facility = usage.period_capacity(store, settings.slurm.clusters, start_s, end_s)
    whole = facility.available_gpu_s
    return cap.available_gpu_s / whole if whole > 0 else 0.0


def load(store: Store, settings: Settings, period: Period, now_s: int,
         clusters: tuple[str, ...] | None = None) -> PeriodData:
    """Every read a report on `period` needs (running jobs read once, clipped by all),
    for `clusters` (default: the facility's)."""
    scope = clusters or settings.slurm.clusters
    tz = settings.facility.timezone
    until = max(period.start_s, min(period.end_s, now_s))
    running = reads.open_jobs(store, scope)
    tree = reads.tree(store, scope)
    ytd = year_to_date(period)
    allocs = allocations(settings, tree.budgets, tree.organisations)
    # Budgets from Slurm have no start: all stored use counts for them.
    first = 0 if any(a.start is None for a in allocs) else min(
        (local_midnight(a.start, tz) for a in allocs if a.start), default=until)
    alloc_days = usage.daily_account_usage(store, scope, first, until + 86400, until, tz,
                                           running) if allocs else {}
    rows = usage.period_usage(store, scope, period.start_s, period.end_s, now_s, running)
    users_before, accounts_before = reads.used_before(
        store, scope, period.start_s, {r.user for r in rows if r.gpu_s > 0},
        {r.account for r in rows if r.gpu_s > 0})
    ytd_until = max(ytd.start_s, min(ytd.end_s, now_s))
    cap = usage.period_capacity(store, scope, period.start_s, until)
    ytd_cap = usage.period_capacity(store, scope, ytd.start_s, ytd_until)
    per_cluster: tuple[tuple[str, Capacity, int, Collection | None], ...] = ()
    if len(scope) > 1:
        used = usage.cluster_usage(store, scope, period.start_s, period.end_s, now_s,
                                   running)
        per_cluster = tuple(
            (c, usage.cluster_capacity(store, c, period.start_s, until), used.get(c, 0),
             reads.last_collection(store, (c,))) for c in scope)
    return PeriodData(
        now_s=now_s, until_s=until,
        rows=rows,
        starts=reads.start_rows(store, scope, period.start_s, period.end_s), tree=tree,
        cap=cap, ytd=ytd,
        ytd_accounts=usage.account_usage(store, scope, ytd.start_s, ytd.end_s, now_s,
                                         running),
        ytd_cap=ytd_cap,
        alloc_days=alloc_days, users_before=users_before, accounts_before=accounts_before,
        unusual_states=reads.unusual_states(store, scope, period.start_s, period.end_s),
        rejected=reads.rejected(store, scope), last=reads.last_collection(store, scope),
        energy_since_s=reads.energy_since(store), gpu_use_since_s=reads.gpu_use_since(store),
        clusters=tuple(scope), per_cluster=per_cluster,
        quota_scale=_scale(store, settings, tuple(scope), cap, period.start_s, until),
        ytd_quota_scale=_scale(store, settings, tuple(scope), ytd_cap, ytd.start_s,
                               ytd_until))


def build_report(store: Store, settings: Settings, period: Period,
                 now: float | None = None, cluster: str | None = None) -> Report:
    """Everything a report on `period` shows, from the store: on the facility, or on
    one of its clusters."""
    now_s = int(clock.now_or(now))
    return compute(settings, period, load(store, settings, period, now_s,
                                          scope_of(settings, cluster)))


def _clusters(d: PeriodData, allocated: int) -> tuple[ClusterUse, ...]:
    return tuple(ClusterUse(c, cap.gpus_now, cap.available_gpu_s, used,
                            _ratio(used, cap.available_gpu_s), _ratio(used, allocated),
                            last and last.finished_s)
                 for c, cap, used, last in d.per_cluster)


def compute(settings: Settings, period: Period, d: PeriodData) -> Report:
    """The typed report from the period's data (pure)."""
    amap = map_accounts(settings, d.tree.parents, {r.account for r in d.rows})
    allocated = sum(r.gpu_s for r in d.rows)
    by_account = _sum_by(d.rows, lambda r: r.account)
    by_account_j = _energy_by(d.rows, lambda r: r.account)
    by_user_j = _energy_by(d.rows, lambda r: (r.user, r.account))
    by_type_j = _energy_by(d.rows, lambda r: r.gpu_type)
    categories, pools, commercial = _quotas(settings, period, d, amap)
    return Report(
        facility=settings.facility.name,
        cluster=", ".join(d.clusters or settings.slurm.clusters),
        generated_s=d.now_s, last_collection_s=d.last and d.last.finished_s,
        period=PeriodInfo(period.kind, period.label, period.timezone, period.start_s,
                          period.end_s, d.until_s, period.end_s - period.start_s),
        capacity=capacity_figures(d.cap, allocated), clusters=_clusters(d, allocated),
        pools=pools, categories=categories, commercial=commercial,
        partitions=tuple(PartitionUse(p, s, _ratio(s, allocated) if allocated else None)
                         for p, s in sorted(_sum_by(d.rows, lambda r: r.partition).items())),
        gpu_types=tuple(GpuTypeUse(t or "(untyped)", s, settings.gpu_weights.get(t, 1.0),
                                   s * settings.gpu_weights.get(t, 1.0), by_type_j.get(t))
                        for t, s in sorted(_sum_by(d.rows, lambda r: r.gpu_type).items())),
        accounts=tuple(AccountUse(a, amap.category_of(a) or UNMAPPED,
                                  amap.pool_of(a) or UNMAPPED, d.tree.organisations.get(a, ""),
                                  s, by_account_j.get(a)) for a, s in sorted(by_account.items())),
        users=tuple(UserUse(u, a, s, by_user_j.get((u, a))) for (u, a), s in
                    sorted(_sum_by(d.rows, lambda r: (r.user, r.account)).items())),
        access_modes=tuple(AccessModeUse(m, s) for m, s in
                           _by_attribute(settings, by_account, "access_mode")),
        countries=tuple(CountryUse(c, s) for c, s in
                        _by_attribute(settings, by_account, "country")),
        allocations=_allocations(settings, period, d, amap, by_account),
        job_mix=_job_mix(settings, d, amap),
        service=_service(settings, period, d, amap),
        energy=_energy(settings, period, d, amap),
        efficiency=_efficiency(settings, period, d, amap, categories),
        unmapped_accounts=_unmapped(by_account, amap, d.tree),
        data_quality=_data_quality(d, amap),
    )


def _quotas(settings: Settings, period: Period, d: PeriodData, amap: AccountMap
            ) -> tuple[tuple[CategoryUse, ...], tuple[PoolUse, ...], CommercialCheck]:
    available = d.cap.available_gpu_s
    quotas = quota_gpu_s(settings, period, available, d.quota_scale)
    ytd_quotas = quota_gpu_s(settings, d.ytd, d.ytd_cap.available_gpu_s, d.ytd_quota_scale)
    by_cat = _sum_by(d.rows, lambda r: amap.category_of(r.account) or UNMAPPED)
    ytd_by_cat: dict[str, int] = defaultdict(int)
    for account, gpu_s in d.ytd_accounts.items():
        ytd_by_cat[amap.category_of(account) or UNMAPPED] += gpu_s
    weighted: dict[str, float] = defaultdict(float)
    for r in d.rows:
        weighted[amap.category_of(r.account) or UNMAPPED] += \
            r.gpu_s * settings.gpu_weights.get(r.gpu_type, 1)
    categories = []
    for c in settings.categories:
        used, quota = by_cat.get(c.name, 0), quotas[c.name]
        categories.append(CategoryUse(
            category=c.name, pool=c.pool, used_s=used, normalised_s=weighted.get(c.name, 0),
            quota_share=c.quota_share, quota_s=quota, difference_s=used - quota,
            used_of_quota=used / quota if quota else None,
            share_of_available=_ratio(used, available),
            ytd_used_s=ytd_by_cat.get(c.name, 0), ytd_quota_s=ytd_quotas[c.name],
            quota_state="no quota" if not quota else "over" if used > quota else "within"))
    pools = []
    for p in settings.pools:
        members = tuple(c.name for c in settings.categories if c.pool == p.name)
        used = sum(by_cat.get(c, 0) for c in members)
        pools.append(PoolUse(
            pool=p.name, share=p.share, categories=members, used_s=used, quota_share=p.share,
            quota_s=p.share * available, share_of_available=_ratio(used, available),
            ytd_used_s=sum(ytd_by_cat.get(c, 0) for c in members),
            ytd_quota_s=p.share * d.ytd_cap.available_gpu_s))
    rule = settings.commercial
    pool_quota = next(p.share for p in settings.pools if p.name == rule.pool) * available
    used = by_cat.get(rule.category, 0)
    share = used / pool_quota if pool_quota > 0 else None
    commercial = CommercialCheck(rule.category, rule.pool, used, pool_quota, share,
                                 rule.max_share_of_pool,
                                 share is None or share <= rule.max_share_of_pool)
    return tuple(categories), tuple(pools), commercial


def _by_attribute(settings: Settings, by_account: dict, name: str) -> list[tuple[str, int]]:
    """GPU-seconds by an allocation attribute (access mode, country) of each account."""
    sums: dict[str, int] = defaultdict(int)
    attrs = {a.account: a for a in settings.allocations}
    for account, gpu_s in by_account.items():
        a = attrs.get(account)
        sums[(a and getattr(a, name)) or "(none)"] += gpu_s
    return sorted(sums.items())


def _allocations(settings: Settings, period: Period, d: PeriodData, amap: AccountMap,
                 by_account_period: dict[str, int]) -> tuple[AllocationStatus, ...]:
    tz, as_of = settings.facility.timezone, d.until_s
    out = []
    for a in allocations(settings, d.tree.budgets, d.tree.organisations):
        members = descendants(a.account, d.tree.parents)
        begin = local_midnight(a.start, tz) if a.start else 0
        finish = local_midnight(a.end + timedelta(days=1), tz) if a.end else as_of + 86400
        total = sum(s for (day, acc), s in d.alloc_days.items()
                    if acc in members and begin <= day < finish)
        if not a.start:  # a Slurm budget: all stored use counts
            total = sum(s for (_, acc), s in d.alloc_days.items() if acc in members)
        in_period = sum(by_account_period.get(m, 0) for m in members)
        out.append(allocation_entry(a, AllocationUse(in_period, total, as_of),
                                    amap.category_of(a.account), tz,
                                    allocation_state(a, period)))
    return tuple(out)


def _job_mix(settings: Settings, d: PeriodData, amap: AccountMap) -> JobMix:
    size = _sum_by(d.rows, lambda r: (amap.category_of(r.account) or UNMAPPED, r.size_class))
    jobs: dict = defaultdict(int)
    for s in d.starts:
        jobs[(amap.category_of(s.account) or UNMAPPED, s.size_class)] += s.jobs
    phases = _sum_by(d.rows, lambda r: (amap.category_of(r.account) or UNMAPPED,
                                        settings.wckeys.get(r.wckey, "other")))
    order = {c.name: i for i, c in enumerate(settings.categories)}
    return JobMix(
        size=tuple(SizeUse(c, s, size.get((c, s), 0), jobs.get((c, s), 0))
                   for c in sorted({k[0] for k in size}, key=lambda c: order.get(c, 99))
                   for s in SIZE_CLASSES if size.get((c, s)) or jobs.get((c, s))),
        phase=tuple(PhaseUse(c, p, s) for (c, p), s in sorted(
            phases.items(), key=lambda x: (order.get(x[0][0], 99), x[0][1]))))


def _service(settings: Settings, period: Period, d: PeriodData, amap: AccountMap) -> Service:
    bins: dict = defaultdict(lambda: defaultdict(int))
    count: dict = defaultdict(int)
    wait: dict = defaultdict(int)
    for s in d.starts:
        if s.size_class == NO_GPU:
            continue
        cat = amap.category_of(s.account) or UNMAPPED
        bins[cat][s.wait_bin] += s.jobs
        count[cat] += s.jobs
        wait[cat] += s.wait_s
    order = [c.name for c in settings.categories] + [UNMAPPED]
    waits = tuple(QueueWait(cat, count[cat], wait[cat] / count[cat], median_wait_s(bins[cat]))
                  for cat in order if count.get(cat))
    users = {r.user for r in d.rows if r.gpu_s > 0}
    accounts = {r.account for r in d.rows if r.gpu_s > 0}
    served: dict[str, int] = defaultdict(int)
    for a in accounts:
        served[amap.category_of(a) or UNMAPPED] += 1
    return Service(
        queue_wait=waits, active_users=len(users),
        # New: no GPU use on a day before the period (a user whose only use is a job
        # still running is new too).
        new_users=sum(1 for u in users if u not in d.users_before),
        active_projects=len(accounts),
        new_projects=sum(1 for a in accounts if a not in d.accounts_before),
        projects_served_by_category=tuple(sorted(served.items())))


def _unmapped(used: dict[str, int], amap: AccountMap, tree: Tree
               ) -> tuple[UnmappedAccount, ...]:
    has_children = set(tree.parents.values())
    out = []
    for account in sorted(set(used) | set(tree.parents)):
        if amap.category_of(account):
            continue
        if account not in used and account in has_children:
            continue  # a pool or the root: structure above the categories, not a project
        out.append(UnmappedAccount(account, used.get(account, 0), account in tree.parents))
    return tuple(out)


def _data_quality(d: PeriodData, amap: AccountMap) -> DataQuality:
    count, sample = d.rejected
    return DataQuality(
        rejected_lines=count,
        rejected_sample=tuple(RejectedLine(r.source, r.line_no, r.reason, r.line)
                              for r in sample),
        unusual_states=tuple(d.unusual_states.items()),
        jobs_without_gpu_accounting=sum(s.jobs for s in d.starts if s.size_class == NO_GPU),
        ambiguous_accounts=tuple((a, tuple(c)) for a, c in sorted(amap.ambiguous.items())),
        sreport_view=SreportView(d.cap.sreport_down_gpu_s, d.cap.sreport_planned_down_gpu_s,
                                 SREPORT_NOTE),
        last_collection_status=d.last and d.last.status,
        nodes_without_inventory=d.cap.nodes_without_inventory,
        tree_conflicts=d.tree.conflicts)


def _energy_use(settings: Settings, category: str, pool: str, used_s: int, measured_s: int,
                energy_j: int, facility_j: int) -> EnergyUse:
    if not measured_s:
        return EnergyUse(category, pool, used_s, measured_s, None, None, None, None, None, None)
    f = settings.energy
    it_kwh = energy_j / 3.6e6
    site_kwh = it_kwh * f.pue if f.pue is not None else None
    return EnergyUse(
        category, pool, used_s, measured_s, energy_j, energy_j / (1000 * measured_s),
        _ratio(energy_j, facility_j), site_kwh,
        it_kwh * f.wue_l_per_kwh if f.wue_l_per_kwh is not None else None,
        (site_kwh if site_kwh is not None else it_kwh) * f.carbon_g_per_kwh / 1000
        if f.carbon_g_per_kwh is not None else None)


def _energy(settings: Settings, period: Period, d: PeriodData, amap: AccountMap) -> Energy:
    """Energy by category: the joules of the jobs Slurm recorded them for, and kWh per
    GPU-hour over those jobs' GPU-hours only; GPU-hours without energy (running jobs,
    nodes without a sensor) are no data, never zero joules."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in d.rows:
        cell = sums[amap.category_of(r.account) or UNMAPPED]
        cell[0] += r.gpu_s
        cell[1] += r.energy_gpu_s
        cell[2] += r.energy_j
    used, measured, joules = (sum(c[i] for c in sums.values()) for i in range(3))
    pools = {c.name: c.pool for c in settings.categories}
    rows = tuple(_energy_use(settings, name, pools.get(name, UNMAPPED), *sums[name], joules)
                 for name in [*pools, *sorted(set(sums) - set(pools))])
    f = settings.energy
    factors = tuple((k, v) for k, v in (("pue", f.pue), ("wue_l_per_kwh", f.wue_l_per_kwh),
                                        ("carbon_g_per_kwh", f.carbon_g_per_kwh))
                    if v is not None)
    gap = d.energy_since_s if d.energy_since_s and period.start_s < d.energy_since_s else None
    return Energy(recorded=measured > 0, coverage=_ratio(measured, used), factors=factors,
                  not_collected_before_s=gap,
                  total=_energy_use(settings, "(facility)", "", used, measured, joules,
                                    joules),
                  categories=rows)


_EFF_SUMS = ("gpu_s", "use_gpu_s", "busy_gpu_s", "idle_gpu_s", "long_idle_jobs",
             "long_idle_gpu_s", "mem_mib_gpu_s", "energy_j", "energy_gpu_s")


def _efficiency_sums(rows: Iterable[UsageRow], key: Callable[[UsageRow], object]
                     ) -> dict[object, list[int]]:
    sums: dict[object, list[int]] = defaultdict(lambda: [0] * len(_EFF_SUMS))
    for r in rows:
        cell = sums[key(r)]
        for i, name in enumerate(_EFF_SUMS):
            cell[i] += getattr(r, name)
    return sums


def _efficiency_use(settings: Settings, group: str, category: str, sums: list[int],
                    quota_s: float | None = None) -> EfficiencyUse:
    used, measured, busy, idle, long_jobs, long_s, mem, joules, energy_s = sums
    threshold = settings.efficiency.idle_share_alert
    idle_share = _ratio(idle, measured) if measured else None
    return EfficiencyUse(
        group, category, used, measured, busy if measured else None,
        idle if measured else None, _ratio(busy, measured) if measured else None, idle_share,
        long_jobs, long_s, mem / measured / 1024 if measured else None, quota_s,
        joules if energy_s else None, joules / (1000 * energy_s) if energy_s else None,
        idle_share is not None and idle_share > threshold)


def _efficiency(settings: Settings, period: Period, d: PeriodData, amap: AccountMap,
                categories: tuple[CategoryUse, ...]) -> Efficiency:
    """GPU use from steps by category, project, use phase and job size; groups with no
    GPU data show "no data" (None), never idle."""
    def category(account: str) -> str:
        return amap.category_of(account) or UNMAPPED

    by_cat = _efficiency_sums(d.rows, lambda r: category(r.account))
    quota = {c.category: c.quota_s for c in categories}
    order = [c.name for c in settings.categories]
    # Every configured category (its quota is known without use), then unmapped ones.
    total = _efficiency_use(settings, "(facility)", "", [sum(col) for col in zip(
        *by_cat.values(), strict=True)] if by_cat else [0] * len(_EFF_SUMS))
    cats = tuple(_efficiency_use(settings, c, c, by_cat[c], quota.get(c))
                 for c in [*order, *sorted(set(by_cat) - set(order))])
    by_account = _efficiency_sums(d.rows, lambda r: r.account)
    projects = sorted((a for a, v in by_account.items() if v[1]),
                      key=lambda a: (-by_account[a][3], a))
    top = tuple(_efficiency_use(settings, a, category(a), by_account[a])
                for a in projects[:settings.efficiency.top_idle_projects])
    by_phase = _efficiency_sums(d.rows, lambda r: settings.wckeys.get(r.wckey, "other"))
    by_size = _efficiency_sums(d.rows, lambda r: r.size_class)
    gap = (d.gpu_use_since_s if d.gpu_use_since_s and period.start_s < d.gpu_use_since_s
           else None)
    return Efficiency(
        recorded=total.measured_s > 0, read=settings.slurm.gpu_steps != "off",
        coverage=_ratio(total.measured_s, total.used_s),
        idle_threshold=settings.efficiency.idle_share_alert, not_collected_before_s=gap,
        total=total, categories=cats, top_idle_projects=top,
        phases=tuple(_efficiency_use(settings, p, "", by_phase[p]) for p in sorted(by_phase)),
        sizes=tuple(_efficiency_use(settings, s, "", by_size[s])
                    for s in SIZE_CLASSES if s in by_size))
