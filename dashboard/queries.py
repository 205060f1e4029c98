"""Named queries behind the dashboard: each reads the store (through the engine and
store.reads) or Slurm's live view (through the collector's one door) and returns the
typed report, or plain dicts and pandas DataFrames made from it.

This is the dashboard's edge: here the typed report's GPU-seconds become GPU-hours and
its instants ISO text, by the same `fig` of each field that the documents use
(collector.documents.convert), and tables are named by the report's document keys. No
Streamlit here: the pages cache these and only lay them out, and tests call them
directly. Every figure comes from the usage engine (`build_report`,
`collector.engine.usage`), so the dashboard, the documents and the exporter agree.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pandas as pd

from collector import clock
from collector.config import Settings
from collector.documents import convert, text
from collector.documents.text import Heading
from collector.engine import periods, usage
from collector.engine.model import UNMAPPED, ProjectsReport, Report
from collector.engine.periods import Period
from collector.engine.policy import descendants, map_accounts
from collector.engine.report import build_report, scope_of
from collector.engine.verify import load_checks
from collector.store import reads
from collector.store.database import Store

PERIOD_KINDS = ("month", "quarter", "year", "custom")


def period_of(settings: Settings, kind: str, value: str | tuple[date, date],
              now: float | None = None) -> Period:
    """A period from the picker: month 'YYYY-MM', quarter 'YYYYQN', year 'YYYY' (or
    'this'/'last'), custom (first day, last day); raises periods.PeriodError."""
    tz = settings.facility.timezone
    if kind == "custom":
        first, last = value  # type: ignore[misc]
        return periods.custom(first, last, tz)
    parse = {"month": periods.parse_month, "quarter": periods.parse_quarter,
             "year": periods.parse_year}[kind]
    return parse(str(value), tz, now)


def recent_months(settings: Settings, count: int = 24, now: float | None = None) -> list[str]:
    """Labels of this month and the `count - 1` before it, newest first."""
    d = clock.today(settings.facility.timezone, now)
    y, m, out = d.year, d.month, []
    for _ in range(count):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out


def report(settings: Settings, period: Period, now: float | None = None,
           cluster: str | None = None) -> Report:
    """The typed report of the period, on the facility or one of its clusters
    (`gpu-usage report [--cluster]` prints the same)."""
    with Store.open_reader(settings.store.path) as store:
        return build_report(store, settings, period, now, cluster)


def document(rep: Report | ProjectsReport) -> dict:
    """The report's document form (what `gpu-usage report --format json` prints), for
    a page that offers it for download."""
    return convert.to_json(rep, rep.period.timezone)


def heading(rep: Report | ProjectsReport) -> Heading:
    """The texts a page shows above its figures (the documents' own heading)."""
    return text.heading(rep)


def _frame(rep: Report | ProjectsReport, rows: tuple, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(convert.to_json(rows, rep.period.timezone), columns=columns)


def store_version(settings: Settings) -> tuple[int, float]:
    """(newest collection id, its end): a cache key that changes after each collection."""
    with Store.open_reader(settings.store.path) as store:
        return reads.version(store, settings.slurm.clusters)


def category_order(settings: Settings) -> list[str]:
    return [c.name for c in settings.categories] + [UNMAPPED]


# --- Overview -------------------------------------------------------------------------
def tiles(rep: Report, gpus_now: int | None) -> dict:
    cap = convert.to_json(rep.capacity, rep.period.timezone)
    return {"available_gpu_hours": cap["available_gpu_hours"],
            "used_gpu_hours": cap["allocated_gpu_hours"], "utilisation": cap["utilisation"],
            "gpus_allocated_now": gpus_now, "gpus": cap["gpus"]}


def clusters(rep: Report) -> pd.DataFrame:
    """Per cluster (a facility with several): GPUs, available and used GPU-hours."""
    return _frame(rep, rep.clusters, ["cluster", "gpus", "available_gpu_hours",
                                      "allocated_gpu_hours", "utilisation", "share_of_used",
                                      "last_collection"])


def categories(rep: Report) -> pd.DataFrame:
    """Per category: used, quota, difference, share of quota, year to date."""
    cols = ["category", "pool", "gpu_hours", "quota_gpu_hours", "difference_gpu_hours",
            "used_of_quota", "quota_share", "share_of_available", "ytd_gpu_hours",
            "ytd_quota_gpu_hours"]
    return _frame(rep, rep.categories, cols)


def pools(rep: Report) -> pd.DataFrame:
    cols = ["pool", "gpu_hours", "quota_gpu_hours", "quota_share", "share_of_available",
            "ytd_gpu_hours", "ytd_quota_gpu_hours"]
    return _frame(rep, rep.pools, cols)


def commercial(rep: Report) -> dict:
    return convert.to_json(rep.commercial, rep.period.timezone)


def daily_by_category(settings: Settings, period: Period, now: float | None = None,
                      cluster: str | None = None) -> pd.DataFrame:
    """GPU-hours per local day and category over the period (running jobs up to now),
    on the facility or one of its clusters."""
    now_s = int(clock.now_or(now))
    clusters, tz = scope_of(settings, cluster), settings.facility.timezone
    with Store.open_reader(settings.store.path) as store:
        days = usage.daily_usage(store, clusters, period.start_s, period.end_s, now_s, tz)
        parents = reads.tree(store, clusters).parents
    amap = map_accounts(settings, parents, {a for _, a, _ in days})
    sums: dict[tuple[int, str], int] = {}
    for (day, account, _), gpu_s in days.items():
        key = (day, amap.category_of(account) or UNMAPPED)
        sums[key] = sums.get(key, 0) + gpu_s
    zone = ZoneInfo(tz)
    rows = [{"day": datetime.fromtimestamp(d, zone).date(), "category": c,
             "gpu_hours": round(s / 3600, 3)} for (d, c), s in sorted(sums.items())]
    return pd.DataFrame(rows, columns=["day", "category", "gpu_hours"])


# --- Categories -----------------------------------------------------------------------
def usage_rows(settings: Settings, period: Period, now: float | None = None,
               cluster: str | None = None) -> pd.DataFrame:
    """The period's usage by account, user, partition, GPU type, WCKey and job size,
    with each account's category and pool: the table every breakdown groups."""
    now_s = int(clock.now_or(now))
    clusters = scope_of(settings, cluster)
    with Store.open_reader(settings.store.path) as store:
        rows = usage.period_usage(store, clusters, period.start_s, period.end_s, now_s)
        parents = reads.tree(store, clusters).parents
    amap = map_accounts(settings, parents, {r.account for r in rows})
    phase = settings.wckeys
    data = [{"category": amap.category_of(r.account) or UNMAPPED,
             "pool": amap.pool_of(r.account) or UNMAPPED, "account": r.account,
             "user": r.user, "partition": r.partition, "gpu_type": r.gpu_type or "(untyped)",
             "phase": phase.get(r.wckey, "other"), "size_class": r.size_class,
             "gpu_hours": r.gpu_s / 3600} for r in rows]
    return pd.DataFrame(data, columns=["category", "pool", "account", "user", "partition",
                                       "gpu_type", "phase", "size_class", "gpu_hours"])


def breakdown(rows: pd.DataFrame, by: str, **where: str) -> pd.DataFrame:
    """GPU-hours grouped by one column, after filtering on others; largest first."""
    sel = rows
    for column, value in where.items():
        sel = sel[sel[column] == value]
    out = sel.groupby(by, as_index=False)["gpu_hours"].sum()
    total = out["gpu_hours"].sum()
    out["share"] = out["gpu_hours"] / total if total else 0.0
    out["gpu_hours"] = out["gpu_hours"].round(3)
    return out.sort_values(["gpu_hours", by], ascending=[False, True]).reset_index(drop=True)


# --- My projects (a PI's report) -------------------------------------------------------
def project_accounts(rep: Report | ProjectsReport) -> pd.DataFrame:
    return _frame(rep, rep.accounts, ["account", "category", "organisation", "gpu_hours"])


def project_users(rep: Report | ProjectsReport) -> pd.DataFrame:
    return _frame(rep, rep.users, ["user", "account", "gpu_hours"])


# --- Allocations ----------------------------------------------------------------------
ALLOCATION_COLUMNS = ["project", "account", "category", "state", "access_mode", "start", "end",
                      "granted_gpu_hours", "used_gpu_hours_total", "used_gpu_hours_period",
                      "consumed", "planned_gpu_hours_to_date", "plan_ratio", "plan_status",
                      "projected_exhaustion", "projected_unused_gpu_hours", "warnings"]


def allocations(rep: Report | ProjectsReport) -> pd.DataFrame:
    """Every allocation with granted, used, % consumed, the linear plan and projection;
    plan_ratio = used / linear plan to date (over 1: ahead of plan); plan_status as the
    engine decided it (engine.report.allocation_entry)."""
    rows = []
    for a in rep.allocations:
        doc = convert.to_json(a, rep.period.timezone)
        rows.append({**doc, "project": a.project or a.account,
                     "plan_ratio": convert.convert(a.plan_ratio, "ratio", ""),
                     "plan_status": a.plan_status, "warnings": "; ".join(doc["warnings"])})
    return pd.DataFrame(rows, columns=ALLOCATION_COLUMNS)


OVER = ("used up", "over plan")
UNDER = ("under plan",)


def filter_allocations(df: pd.DataFrame, which: str) -> pd.DataFrame:
    """'all', 'over' (ahead of the linear plan by >10 % or used up) or 'under'
    (behind it by half once a quarter has passed, or projected to leave a quarter of
    the budget unused): the plan status the engine computed, nothing recomputed here."""
    if which == "over":
        keep = df["plan_status"].isin(OVER)
    elif which == "under":
        keep = df["plan_status"].isin(UNDER)
    else:
        return df
    return df[keep].reset_index(drop=True)


def burn_down(settings: Settings, account: str, now: float | None = None) -> pd.DataFrame:
    """Per day of an allocation: GPU-hours used so far on every cluster, the linear
    plan, and what is left of the grant (the burn-down); days after now have only the
    plan."""
    now_s = int(clock.now_or(now))
    tz, cluster = settings.facility.timezone, settings.slurm.clusters
    alloc = next((a for a in settings.allocations if a.account == account), None)
    if alloc is None:
        raise KeyError(f"no allocation for account {account!r} in the policy file")
    begin = periods.local_midnight(alloc.start, tz)
    finish = periods.local_midnight(alloc.end + timedelta(days=1), tz)
    with Store.open_reader(settings.store.path) as store:
        members = descendants(account, reads.tree(store, cluster).parents)
        days = usage.daily_usage(store, cluster, begin, finish, now_s, tz)
    per_day: dict[int, int] = {}
    for (day, acc, _), gpu_s in days.items():
        if acc in members:
            per_day[day] = per_day.get(day, 0) + gpu_s
    rows, used, total_days = [], 0.0, (alloc.end - alloc.start).days + 1
    for i in range(total_days):
        d = alloc.start + timedelta(days=i)
        day_s = periods.local_midnight(d, tz)
        past = day_s <= now_s
        used += per_day.get(day_s, 0) / 3600
        rows.append({"day": d, "used_gpu_hours": round(used, 3) if past else None,
                     "remaining_gpu_hours": round(alloc.gpu_hours - used, 3) if past else None,
                     "plan_gpu_hours": round(alloc.gpu_hours * (i + 1) / total_days, 3)})
    return pd.DataFrame(rows, columns=["day", "used_gpu_hours", "remaining_gpu_hours",
                                       "plan_gpu_hours"])


# --- Job mix --------------------------------------------------------------------------
def job_sizes(rep: Report) -> pd.DataFrame:
    return _frame(rep, rep.job_mix.size, ["category", "size_class", "gpu_hours",
                                          "jobs_started"])


def phases(rep: Report) -> pd.DataFrame:
    return _frame(rep, rep.job_mix.phase, ["category", "phase", "gpu_hours"])


def queue_wait(rep: Report) -> pd.DataFrame:
    return _frame(rep, rep.service.queue_wait, ["category", "jobs_started",
                                                "median_wait_hours", "mean_wait_hours"])


def energy(rep: Report) -> pd.DataFrame:
    """Energy per category (kWh; None where no job has energy data)."""
    return _frame(rep, rep.energy.categories, [
        "category", "gpu_hours", "gpu_hours_with_energy", "kwh", "kwh_per_gpu_hour",
        "share_of_energy", "facility_kwh_estimate", "water_litres_estimate",
        "co2e_kg_estimate"])


# --- Efficiency ---------------------------------------------------------------------
EFFICIENCY_COLUMNS = ["gpu_hours", "gpu_hours_with_gpu_data", "busy_gpu_hours",
                      "idle_allocated_gpu_hours", "busy_share", "idle_share",
                      "jobs_idle_over_1h", "gpu_hours_of_jobs_idle_over_1h",
                      "gpu_memory_peak_gib"]


def efficiency(rep: Report) -> pd.DataFrame:
    """Per category: allocated, quota, GPU-hours with GPU data, busy (upper bound) and
    idle-allocated (None where no job has GPU data: no data, not idle)."""
    return _frame(rep, rep.efficiency.categories, [
        "category", "quota_gpu_hours", *EFFICIENCY_COLUMNS, "idle_over_threshold"])


def efficiency_bars(df: pd.DataFrame) -> pd.DataFrame:
    """The chart's long form: one row per category and measure (quota, allocated, busy,
    idle-allocated); measures without data are left out, not drawn as 0."""
    names = {"quota_gpu_hours": "quota", "gpu_hours": "allocated",
             "busy_gpu_hours": "busy (upper bound)", "idle_allocated_gpu_hours": "idle-allocated"}
    long = df[["category", *names]].melt(id_vars=["category"], var_name="measure",
                                         value_name="value").dropna(subset=["value"])
    long["measure"] = long["measure"].map(names)
    return long.rename(columns={"value": "gpu_hours"})


def top_idle_projects(rep: Report) -> pd.DataFrame:
    return _frame(rep, rep.efficiency.top_idle_projects, [
        "group", "category", "gpu_hours", "gpu_hours_with_gpu_data",
        "idle_allocated_gpu_hours", "idle_share", "jobs_idle_over_1h", "idle_over_threshold"])


def efficiency_by(rep: Report, part: str) -> pd.DataFrame:
    """By use phase or job size, with the energy of the same jobs."""
    rows = rep.efficiency.phases if part == "phase" else rep.efficiency.sizes
    return _frame(rep, rows, ["group", "gpu_hours", "gpu_hours_with_gpu_data", "busy_share",
                              "idle_share", "jobs_idle_over_1h", "kwh", "kwh_per_gpu_hour"])


# --- Live -----------------------------------------------------------------------------
class Live(msgspec.Struct, frozen=True):
    taken_s: float
    by_category: pd.DataFrame           # category, running/pending GPUs and jobs
    gpus_total: int
    gpus_available: int
    rejected: int


def live(settings: Settings) -> Live:
    """GPUs running and pending per category now, from squeue and sinfo (through the
    collector's door to Slurm); raises SlurmError."""
    from collector.export.views import read_jobs_now, read_nodes_now

    jobs, bad_jobs = read_jobs_now(settings)
    nodes, bad_nodes = read_nodes_now(settings)
    try:
        with Store.open_reader(settings.store.path) as store:
            parents = reads.tree(store, settings.slurm.clusters).parents
    except Exception:
        parents = {}
    amap = map_accounts(settings, parents, {j.account for j in jobs})
    counts = {c: [0, 0, 0, 0] for c in category_order(settings)}
    for j in jobs:
        c = counts.setdefault(amap.category_of(j.account) or UNMAPPED, [0, 0, 0, 0])
        i = 0 if j.holding else 2
        c[i] += j.gpus
        c[i + 1] += 1
    df = pd.DataFrame([{"category": k, "running_gpus": v[0], "running_jobs": v[1],
                        "pending_gpus": v[2], "pending_jobs": v[3]} for k, v in counts.items()
                       if k != UNMAPPED or any(v)])
    total = sum(n.gpus for n in nodes)
    available = sum(n.gpus for n in nodes if n.available)
    return Live(clock.now(), df, total, available, bad_jobs + bad_nodes)


# --- Data quality ---------------------------------------------------------------------
def data_quality(rep: Report) -> dict:
    q, tz = rep.data_quality, rep.period.timezone
    return {
        "last_collection": convert.convert(rep.last_collection_s, "instant", tz),
        "last_collection_status": q.last_collection_status,
        "unmapped": _frame(rep, rep.unmapped_accounts, ["account", "gpu_hours",
                                                        "in_slurm_tree"]),
        "unusual_states": pd.DataFrame(sorted(q.unusual_states), columns=["state", "jobs"]),
        "jobs_without_gpu_accounting": q.jobs_without_gpu_accounting,
        "rejected_lines": q.rejected_lines,
        "rejected_sample": _frame(rep, q.rejected_sample, ["source", "line_no", "reason",
                                                           "line"]),
        # Names from Slurm go to tables (plain cells), never into a sentence: Streamlit
        # renders Markdown with autolinks whatever the escaping.
        "ambiguous_accounts": pd.DataFrame(
            [(a, ", ".join(c)) for a, c in q.ambiguous_accounts],
            columns=["account", "categories"]),
        "tree_conflicts": pd.DataFrame(
            [(a, ", ".join(p)) for a, p in q.tree_conflicts], columns=["account", "parents"]),
        "nodes_without_inventory": pd.DataFrame(
            [(n,) for n in q.nodes_without_inventory], columns=["node"]),
    }


def sreport_checks(settings: Settings) -> pd.DataFrame:
    """Results of `gpu-usage verify`: per closed month and cluster, how the store
    compares with sreport (GPU-minutes)."""
    with Store.open_reader(settings.store.path) as store:
        rows = [(cluster, *msgspec.structs.astuple(c)) for cluster in settings.slurm.clusters
                for c in load_checks(store, cluster)]
    df = pd.DataFrame(rows, columns=["cluster", "period", "checked_s", "accounts", "differing",
                                     "max_difference_minutes", "ours_gpu_minutes",
                                     "sreport_gpu_minutes"])
    df["checked"] = pd.to_datetime(df["checked_s"], unit="s", utc=True).dt.tz_convert(
        settings.facility.timezone).dt.strftime("%Y-%m-%d %H:%M")
    return df.drop(columns=["checked_s"] + ([] if settings.slurm.several else ["cluster"]))
