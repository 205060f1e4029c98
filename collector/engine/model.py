"""The typed report: what a report on one period says, as frozen msgspec Structs.

Figures are GPU-seconds (integers where they are measured: use, capacity; floats
where they are derived shares of them: quotas, normalised use, plans), instants are
epoch seconds, days are `date`s, ratios are unrounded floats (0..1, above 1 when
over). Every derived status (the commercial check, each allocation's plan status and
warnings, each category's quota state) is computed once, by `engine.report`.

Each field says how it is shown, in its `fig`: its key in the JSON and CSV
documents, its unit and its label. The documents and the dashboard take labels and
conversions from here, so the terminal, Markdown, PDF, Excel and the dashboard use
the same words; only they turn seconds into rounded hours and instants into text.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import msgspec

UNMAPPED = "(unmapped)"

# Units: how a value is shown (documents.convert does the conversion).
#   gpu_s    GPU-seconds, shown as GPU-hours rounded to 1/1000
#   grant_s  GPU-seconds of a grant, shown as the GPU-hours it was given in (unrounded)
#   wait_s   seconds, shown as hours rounded to 1/1000
#   joules   joules, shown as kWh (J / 3.6e6) rounded to 1/1000
#   rate     a computed rate (e.g. kWh per GPU-hour), rounded to 4 decimals
#   span_s   seconds, shown as hours (unrounded)
#   ratio    a computed ratio, rounded to 4 decimals (shown as %)
#   share    a configured share, as given (shown as %)
#   weight   a configured factor, as given
#   count, text, flag, list  as they are
#   date     a day (ISO text)
#   instant  epoch seconds (ISO text in the facility's time zone)
#   mapping  (key, value) pairs (a JSON object)
#   warnings PlanWarning tuple (text, one per warning)
Unit = Literal["gpu_s", "grant_s", "wait_s", "joules", "rate", "span_s", "ratio", "share",
               "weight", "count", "text", "flag", "list", "date", "instant", "mapping",
               "warnings", "part"]


class Fig(msgspec.Struct, frozen=True):
    """How a field is shown: its key in the JSON and CSV documents (None: not in
    them), its unit, its label (what a person reads as the column's header), and the
    field's default (msgspec.NODEFAULT: none)."""

    key: str | None
    unit: str
    label: str
    default: Any


def fig(key: str | None, unit: Unit, label: str, default: Any = msgspec.NODEFAULT) -> Any:
    """A field with its document key, unit and label, and a default if it has one."""
    return Fig(key, unit, label, default)


def part(key: str) -> Any:
    """A nested part of the report (a section or a list of rows)."""
    return Fig(key, "part", key.replace("_", " "), msgspec.NODEFAULT)


class _Shown(msgspec.StructMeta):
    """Takes each field's `fig` out of the class body: its default stays the field's
    default, the rest goes to the class's `__figures__` (field name -> Fig)."""

    def __new__(mcls, name: str, bases: tuple, namespace: dict, **options: Any) -> type:
        figures = {}
        for field_name, value in list(namespace.items()):
            if isinstance(value, Fig):
                figures[field_name] = value
                if value.default is msgspec.NODEFAULT:
                    del namespace[field_name]
                else:
                    namespace[field_name] = value.default
        namespace["__figures__"] = figures
        return super().__new__(mcls, name, bases, namespace, **options)


class Record(msgspec.Struct, frozen=True, metaclass=_Shown):
    """A frozen part of the report. A msgspec Struct rather than a dataclass: its class
    is made in C, where a dataclass's methods are compiled at import, about 1 ms each
    (these 30 and 15 more on the report's path) in every report's process start.
    `__figures__`: see _Shown."""


class ClusterUse(Record):
    """One cluster of a facility with several (the report on the whole facility)."""

    cluster: str = fig("cluster", "text", "Cluster")
    gpus: int = fig("gpus", "count", "GPUs now")
    available_s: int = fig("available_gpu_hours", "gpu_s", "Available GPU-h")
    allocated_s: int = fig("allocated_gpu_hours", "gpu_s", "Used GPU-h")
    utilisation: float | None = fig("utilisation", "ratio", "Utilisation")
    share_of_allocated: float | None = fig("share_of_used", "ratio", "Share of the use")
    last_collection_s: float | None = fig("last_collection", "instant", "Last collection")


class PeriodInfo(Record):
    kind: str = fig("kind", "text", "Kind")
    label: str = fig("label", "text", "Period")
    timezone: str = fig("timezone", "text", "Time zone")
    start_s: int = fig("start", "instant", "From")
    end_s: int = fig("end", "instant", "To")
    data_until_s: int = fig("data_until", "instant", "Data until")
    length_s: int = fig("hours", "span_s", "Hours")


class CapacityFigures(Record):
    gpus: int = fig("gpus", "count", "GPUs now")
    nominal_s: int = fig("nominal_gpu_hours", "gpu_s", "Nominal GPU-h")
    down_s: int = fig("down_gpu_hours", "gpu_s", "Down GPU-h")
    planned_down_s: int = fig("planned_down_gpu_hours", "gpu_s", "Planned down GPU-h")
    available_s: int = fig("available_gpu_hours", "gpu_s", "Available GPU-h")
    allocated_s: int = fig("allocated_gpu_hours", "gpu_s", "Used GPU-h")
    idle_s: int = fig("idle_gpu_hours", "gpu_s", "Idle GPU-h")
    utilisation: float | None = fig("utilisation", "ratio", "Utilisation")
    availability: float | None = fig("availability", "ratio", "Availability")


class PoolUse(Record):
    pool: str = fig("pool", "text", "Pool")
    share: float = fig("share", "share", "Share")
    categories: tuple[str, ...] = fig("categories", "list", "Categories")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    quota_share: float = fig("quota_share", "share", "Quota share")
    quota_s: float = fig("quota_gpu_hours", "gpu_s", "Quota GPU-h")
    share_of_available: float | None = fig("share_of_available", "ratio", "Share of available")
    ytd_used_s: int = fig("ytd_gpu_hours", "gpu_s", "Year to date GPU-h")
    ytd_quota_s: float = fig("ytd_quota_gpu_hours", "gpu_s", "Year to date quota GPU-h")


QuotaState = Literal["within", "over", "no quota"]


class CategoryUse(Record):
    category: str = fig("category", "text", "Category")
    pool: str = fig("pool", "text", "Pool")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    normalised_s: float = fig("normalised_gpu_hours", "gpu_s", "Normalised GPU-h")
    quota_share: float | None = fig("quota_share", "share", "Quota share")
    quota_s: float = fig("quota_gpu_hours", "gpu_s", "Quota GPU-h")
    difference_s: float = fig("difference_gpu_hours", "gpu_s", "Used - quota GPU-h")
    used_of_quota: float | None = fig("used_of_quota", "ratio", "Used of quota")
    share_of_available: float | None = fig("share_of_available", "ratio", "Share of available")
    ytd_used_s: int = fig("ytd_gpu_hours", "gpu_s", "Year to date GPU-h")
    ytd_quota_s: float = fig("ytd_quota_gpu_hours", "gpu_s", "Year to date quota GPU-h")
    quota_state: QuotaState = fig(None, "text", "Quota")


class CommercialCheck(Record):
    category: str = fig("category", "text", "Category")
    pool: str = fig("pool", "text", "Pool")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    pool_quota_s: float = fig("pool_quota_gpu_hours", "gpu_s", "Pool quota GPU-h")
    share_of_pool: float | None = fig("share_of_pool", "ratio", "Share of the pool")
    max_share_of_pool: float = fig("max_share_of_pool", "share", "Limit")
    within_limit: bool = fig("within_limit", "flag", "Within the limit")


class PartitionUse(Record):
    partition: str = fig("partition", "text", "Partition")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    share_of_allocated: float | None = fig("share_of_allocated", "ratio", "Share of used")


class GpuTypeUse(Record):
    gpu_type: str = fig("gpu_type", "text", "GPU type")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    weight: float = fig("weight", "weight", "Weight")
    normalised_s: float = fig("normalised_gpu_hours", "gpu_s", "Normalised GPU-h")
    energy_j: int | None = fig("kwh", "joules", "Energy kWh", None)  # None: no data


class AccountUse(Record):
    account: str = fig("account", "text", "Account")
    category: str = fig("category", "text", "Category")
    pool: str = fig("pool", "text", "Pool")
    organisation: str = fig("organisation", "text", "Organisation")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    energy_j: int | None = fig("kwh", "joules", "Energy kWh", None)  # None: no data


class UserUse(Record):
    user: str = fig("user", "text", "User")
    account: str = fig("account", "text", "Account")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    energy_j: int | None = fig("kwh", "joules", "Energy kWh", None)  # None: no data


class AccessModeUse(Record):
    access_mode: str = fig("access_mode", "text", "Access mode")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")


class CountryUse(Record):
    country: str = fig("country", "text", "Country")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")


WarningKind = Literal["used up", "over plan", "under plan", "unused"]
PlanStatus = Literal["used up", "over plan", "under plan", "on plan", "no plan"]


class PlanWarning(Record):
    kind: WarningKind
    ratio: float = 0.0     # of the linear plan (over, under) or of the grant (unused)


class AllocationStatus(Record):
    account: str = fig("account", "text", "Account")
    project: str = fig("project", "text", "Project")
    category: str = fig("category", "text", "Category")
    state: str = fig("state", "text", "State")
    source: str = fig("source", "text", "Source")
    access_mode: str = fig("access_mode", "text", "Access mode")
    country: str = fig("country", "text", "Country")
    organisation: str = fig("organisation", "text", "Organisation")
    start: date | None = fig("start", "date", "Start")
    end: date | None = fig("end", "date", "End")
    granted_s: int = fig("granted_gpu_hours", "grant_s", "Granted GPU-h")
    slurm_budget_s: int | None = fig("slurm_budget_gpu_hours", "grant_s", "Slurm budget GPU-h")
    used_period_s: int = fig("used_gpu_hours_period", "gpu_s", "Used in period GPU-h")
    used_total_s: int = fig("used_gpu_hours_total", "gpu_s", "Used so far GPU-h")
    consumed: float = fig("consumed", "ratio", "Consumed")
    planned_s: float | None = fig("planned_gpu_hours_to_date", "gpu_s", "Linear plan GPU-h")
    projected_exhaustion: date | None = fig("projected_exhaustion", "date", "Runs out on")
    projected_unused_s: float | None = fig("projected_unused_gpu_hours", "gpu_s",
                                           "Projected unused GPU-h")
    warnings: tuple[PlanWarning, ...] = fig("warnings", "warnings", "Warnings")
    plan_ratio: float | None = fig(None, "ratio", "Used of plan")
    plan_status: PlanStatus = fig(None, "text", "Plan status")


class SizeUse(Record):
    category: str = fig("category", "text", "Category")
    size_class: str = fig("size_class", "text", "Job size")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    jobs_started: int = fig("jobs_started", "count", "Jobs started")


class PhaseUse(Record):
    category: str = fig("category", "text", "Category")
    phase: str = fig("phase", "text", "Use phase")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")


class JobMix(Record):
    size: tuple[SizeUse, ...] = part("size")
    phase: tuple[PhaseUse, ...] = part("phase")


class QueueWait(Record):
    category: str = fig("category", "text", "Category")
    jobs_started: int = fig("jobs_started", "count", "Jobs started")
    mean_wait_s: float = fig("mean_wait_hours", "wait_s", "Mean wait h")
    median_wait_s: float | None = fig("median_wait_hours", "wait_s", "Median wait h")


class Service(Record):
    queue_wait: tuple[QueueWait, ...] = part("queue_wait")
    active_users: int = fig("active_users", "count", "Active users")
    new_users: int = fig("new_users", "count", "New users")
    active_projects: int = fig("active_projects", "count", "Active projects")
    new_projects: int = fig("new_projects", "count", "New projects")
    projects_served_by_category: tuple[tuple[str, int], ...] = fig(
        "projects_served_by_category", "mapping", "Projects served by category")


class EnergyUse(Record):
    """Energy of the jobs whose energy Slurm recorded (the energy TRES of the
    allocation: node-level sensors, so meaningful for whole-node jobs), split over
    periods by the jobs' time in each. GPU-hours without energy are "no data"."""

    category: str = fig("category", "text", "Category")
    pool: str = fig("pool", "text", "Pool")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    measured_s: int = fig("gpu_hours_with_energy", "gpu_s", "GPU-h with energy")
    energy_j: int | None = fig("kwh", "joules", "Energy kWh")
    kwh_per_gpu_hour: float | None = fig("kwh_per_gpu_hour", "rate", "kWh per GPU-h")
    share_of_energy: float | None = fig("share_of_energy", "ratio", "Share of energy")
    # Estimates from the configured [energy] factors (None: factor not configured).
    facility_kwh: float | None = fig("facility_kwh_estimate", "rate",
                                     "Facility kWh (est., x PUE)")
    water_l: float | None = fig("water_litres_estimate", "rate", "Water l (est., WUE)")
    co2e_kg: float | None = fig("co2e_kg_estimate", "rate", "CO2e kg (est.)")


class Energy(Record):
    recorded: bool = fig("recorded", "flag", "Energy recorded on this cluster")
    coverage: float | None = fig("coverage", "ratio", "Share of GPU-h with energy")
    factors: tuple[tuple[str, float], ...] = fig("factors", "mapping",
                                                 "Estimate factors (PUE, WUE, g CO2e/kWh)")
    not_collected_before_s: int | None = fig(
        "not_collected_before", "instant", "Energy not collected before")
    # the store was upgraded then from a version without energy, and the period
    # starts before it: jobs stored before hold none (collect --from-scratch reads it)
    total: EnergyUse = part("total")
    categories: tuple[EnergyUse, ...] = part("categories")


class EfficiencyUse(Record):
    """GPU use of one group (a category, project, use phase or job size) from the
    jobs' steps (engine/gpuuse.py; docs/efficiency.md). Shares are of the GPU-hours
    with GPU data; GPU-hours without it (running jobs, clusters or jobs without a GPU
    plugin) are "no data", never idle. Energy beside it for the same group."""

    group: str = fig("group", "text", "Group")
    category: str = fig("category", "text", "Category")
    used_s: int = fig("gpu_hours", "gpu_s", "Allocated GPU-h")
    measured_s: int = fig("gpu_hours_with_gpu_data", "gpu_s", "GPU-h with GPU data")
    busy_s: int | None = fig("busy_gpu_hours", "gpu_s", "Busy GPU-h (upper bound)")
    idle_s: int | None = fig("idle_allocated_gpu_hours", "gpu_s", "Idle-allocated GPU-h")
    busy_share: float | None = fig("busy_share", "ratio", "Busy (upper bound)")
    idle_share: float | None = fig("idle_share", "ratio", "Idle-allocated")
    long_idle_jobs: int = fig("jobs_idle_over_1h", "count", "Jobs idle > 1 h")
    long_idle_s: int = fig("gpu_hours_of_jobs_idle_over_1h", "gpu_s",
                           "GPU-h of jobs idle > 1 h")
    mem_peak_gib: float | None = fig("gpu_memory_peak_gib", "rate",
                                     "GPU memory peak GiB/GPU")
    quota_s: float | None = fig("quota_gpu_hours", "gpu_s", "Quota GPU-h")
    energy_j: int | None = fig("kwh", "joules", "Energy kWh")
    kwh_per_gpu_hour: float | None = fig("kwh_per_gpu_hour", "rate", "kWh per GPU-h")
    over_threshold: bool = fig("idle_over_threshold", "flag", "Idle share over threshold")


class Efficiency(Record):
    recorded: bool = fig("recorded", "flag", "GPU use recorded on this cluster")
    read: bool = fig("read", "flag", "Steps read ([slurm] gpu_steps)")
    coverage: float | None = fig("coverage", "ratio", "Share of GPU-h with GPU data")
    idle_threshold: float = fig("idle_share_threshold", "share", "Idle share threshold")
    not_collected_before_s: int | None = fig(
        "not_collected_before", "instant", "GPU use not collected before")
    total: EfficiencyUse = part("total")
    categories: tuple[EfficiencyUse, ...] = part("categories")
    top_idle_projects: tuple[EfficiencyUse, ...] = part("top_idle_projects")
    phases: tuple[EfficiencyUse, ...] = part("phases")
    sizes: tuple[EfficiencyUse, ...] = part("sizes")


class UnmappedAccount(Record):
    account: str = fig("account", "text", "Account")
    used_s: int = fig("gpu_hours", "gpu_s", "Used GPU-h")
    in_slurm_tree: bool = fig("in_slurm_tree", "flag", "In the Slurm account tree")


class RejectedLine(Record):
    source: str = fig("source", "text", "Source")
    line_no: int = fig("line_no", "count", "Line")
    reason: str = fig("reason", "text", "Reason")
    line: str = fig("line", "text", "Line as Slurm printed it")


SREPORT_NOTE = ("sreport -T gres/gpu cluster utilization counts a maintenance reservation's "
                "GPUs as idle (Slurm stores its CPUs only); this report counts them as "
                "planned down")


class SreportView(Record):
    down_s: int = fig("down_gpu_hours", "gpu_s", "Down GPU-h (sreport)")
    planned_down_s: int = fig("planned_down_gpu_hours", "gpu_s", "Planned down GPU-h (sreport)")
    note: str = fig("note", "text", "Note")


class DataQuality(Record):
    rejected_lines: int = fig("rejected_lines", "count", "Unreadable lines")
    rejected_sample: tuple[RejectedLine, ...] = part("rejected_sample")
    unusual_states: tuple[tuple[str, int], ...] = fig("unusual_states", "mapping",
                                                      "Unusual states")
    jobs_without_gpu_accounting: int = fig("jobs_without_gpu_accounting", "count",
                                           "Jobs started without GPUs")
    ambiguous_accounts: tuple[tuple[str, tuple[str, ...]], ...] = fig(
        "ambiguous_accounts", "mapping", "Ambiguous accounts")
    sreport_view: SreportView = part("sreport_view")
    last_collection_status: str | None = fig("last_collection_status", "text",
                                             "Last collection status")
    nodes_without_inventory: tuple[str, ...] = fig(None, "list",
                                                   "Nodes never seen in the inventory")
    tree_conflicts: tuple[tuple[str, tuple[str, ...]], ...] = fig(
        "tree_conflicts", "mapping", "Accounts under different parents per cluster", ())


class Report(Record):
    facility: str = fig("facility", "text", "Facility")
    cluster: str = fig("cluster", "text", "Cluster")
    generated_s: int = fig("generated_at", "instant", "Generated")
    last_collection_s: float | None = fig("last_collection", "instant", "Last collection")
    period: PeriodInfo = part("period")
    capacity: CapacityFigures = part("capacity")
    clusters: tuple[ClusterUse, ...] = part("clusters")   # () for one cluster
    pools: tuple[PoolUse, ...] = part("pools")
    categories: tuple[CategoryUse, ...] = part("categories")
    commercial: CommercialCheck = part("commercial")
    partitions: tuple[PartitionUse, ...] = part("partitions")
    gpu_types: tuple[GpuTypeUse, ...] = part("gpu_types")
    accounts: tuple[AccountUse, ...] = part("accounts")
    users: tuple[UserUse, ...] = part("users")
    access_modes: tuple[AccessModeUse, ...] = part("access_modes")
    countries: tuple[CountryUse, ...] = part("countries")
    allocations: tuple[AllocationStatus, ...] = part("allocations")
    job_mix: JobMix = part("job_mix")
    service: Service = part("service")
    energy: Energy = part("energy")
    efficiency: Efficiency = part("efficiency")
    unmapped_accounts: tuple[UnmappedAccount, ...] = part("unmapped_accounts")
    data_quality: DataQuality = part("data_quality")

    @property
    def unmapped_s(self) -> int:
        return sum(a.used_s for a in self.unmapped_accounts)


class Scope(Record):
    user: str | None = fig("user", "text", "User")
    accounts: tuple[str, ...] = fig("accounts", "list", "Projects")


class ProjectsReport(Record):
    """The report as a PI sees it (access.scope_report): the header and the rows of
    their own accounts, nothing of the facility's."""

    facility: str = fig("facility", "text", "Facility")
    cluster: str = fig("cluster", "text", "Cluster")
    generated_s: int = fig("generated_at", "instant", "Generated")
    last_collection_s: float | None = fig("last_collection", "instant", "Last collection")
    period: PeriodInfo = part("period")
    scope: Scope = part("scope")
    accounts: tuple[AccountUse, ...] = part("accounts")
    users: tuple[UserUse, ...] = part("users")
    allocations: tuple[AllocationStatus, ...] = part("allocations")
