"""The facility's rules applied to Slurm accounts (pure; no I/O).

Which category (and so which pool) an account belongs to, which accounts belong
to none or to several, which allocations exist (from the policy file and from
`GrpTRESMins=gres/gpu=N` budgets in Slurm), each category's quota in a period, and
each allocation's arithmetic: its state in the period, its linear plan, where its
burn rate leads, and its warnings and plan status (decided here and nowhere else).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from collector.config import Settings
from collector.engine.model import UNMAPPED, AllocationStatus, PlanStatus, PlanWarning
from collector.engine.periods import Period, local_midnight, months_of


class AccountMap(msgspec.Struct, frozen=True):
    category: dict[str, str]                 # account -> category (first match wins)
    pool: dict[str, str]                     # category -> pool
    # account -> all matches
    ambiguous: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)

    def category_of(self, account: str) -> str | None:
        return self.category.get(account)

    def pool_of(self, account: str) -> str | None:
        cat = self.category.get(account)
        return self.pool.get(cat) if cat else None


def ancestors(account: str, parents: Mapping[str, str]) -> list[str]:
    """The account and every account above it, nearest first (stops on a cycle)."""
    chain, seen = [], set()
    while account and account not in seen:
        chain.append(account)
        seen.add(account)
        account = parents.get(account, "")
    return chain


def descendants(account: str, parents: Mapping[str, str]) -> set[str]:
    """The account and every account below it."""
    return {a for a in parents if account in ancestors(a, parents)} | {account}


def map_accounts(settings: Settings, parents: Mapping[str, str],
                 accounts: Iterable[str]) -> AccountMap:
    """Map every account (from the tree and from jobs) to the categories it matches."""
    patterns = {c.name: re.compile(c.account_pattern) for c in settings.categories
                if c.account_pattern}
    category: dict[str, str] = {}
    ambiguous: dict[str, tuple[str, ...]] = {}
    for account in sorted(set(accounts) | set(parents)):
        chain = ancestors(account, parents)
        matches = tuple(
            c.name for c in settings.categories
            if account in c.accounts
            or any(a in chain for a in c.accounts_under)
            or (c.name in patterns and patterns[c.name].search(account)))
        if matches:
            category[account] = matches[0]
        if len(matches) > 1:
            ambiguous[account] = matches
    return AccountMap(category, {c.name: c.pool for c in settings.categories}, ambiguous)


class Allocation(msgspec.Struct, frozen=True):
    account: str
    granted_gpu_hours: float
    start: date | None
    end: date | None
    source: str                       # "policy" or "GrpTRESMins"
    project: str = ""
    access_mode: str = ""
    country: str = ""
    organisation: str = ""
    slurm_gpu_hours: float | None = None  # the GrpTRESMins budget, when there is one

    @property
    def granted_gpu_s(self) -> int:
        """The grant in GPU-seconds (kept to the second)."""
        return round(self.granted_gpu_hours * 3600)

    @property
    def slurm_gpu_s(self) -> int | None:
        return None if self.slurm_gpu_hours is None else round(self.slurm_gpu_hours * 3600)


def allocations(settings: Settings, budgets: Mapping[str, int | None],
                organisations: Mapping[str, str]) -> list[Allocation]:
    """Allocations of the policy file, then GrpTRESMins budgets that it does not name.

    `budgets` is GrpTRESMins gres/gpu minutes per account. A budget from Slurm has
    no dates (Slurm enforces it on decayed usage), so it gets no linear plan."""
    out = []
    named = set()
    for a in settings.allocations:
        named.add(a.account)
        minutes = budgets.get(a.account)
        out.append(Allocation(a.account, a.gpu_hours, a.start, a.end, "policy",
                              a.project or a.account, a.access_mode or "", a.country or "",
                              a.organisation or organisations.get(a.account, ""),
                              minutes / 60 if minutes else None))
    for account, minutes in sorted(budgets.items()):
        if minutes and account not in named:
            out.append(Allocation(account, minutes / 60, None, None, "GrpTRESMins", account,
                                  organisation=organisations.get(account, ""),
                                  slurm_gpu_hours=minutes / 60))
    return out


# --- quotas and allocation arithmetic --------------------------------------------------
def quota_gpu_s(settings: Settings, period: Period, available_gpu_s: int,
                scale: float = 1.0) -> dict[str, float]:
    """Per category: quota_share x available, or the absolute monthly quota x months.
    For some of a facility's clusters, `scale` is their share of its available time:
    an absolute (facility) quota is split by it, as shares split by construction."""
    months = len(months_of(period)) if period.kind in ("month", "quarter", "year") else \
        period.hours / (365.25 * 24 / 12)
    return {c.name: (c.quota_gpu_hours * 3600 * months * scale
                     if c.quota_gpu_hours is not None
                     else c.quota_share * available_gpu_s) for c in settings.categories}


class AllocationUse(msgspec.Struct, frozen=True):
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


def _plan_status(warnings: list[PlanWarning], planned: float | None) -> PlanStatus:
    kinds = {w.kind for w in warnings}
    if "used up" in kinds:
        return "used up"
    if "over plan" in kinds:
        return "over plan"
    if kinds & {"under plan", "unused"}:
        return "under plan"
    return "no plan" if planned is None else "on plan"


def allocation_entry(a: Allocation, use: AllocationUse, category: str | None,
                     timezone: str, state: str = "active") -> AllocationStatus:
    """Granted vs used, the linear plan to date, where the burn rate leads, and the
    plan's warnings and status (the only place they are decided)."""
    granted = a.granted_gpu_hours
    used = use.used_total_s / 3600
    warnings: list[PlanWarning] = []
    planned = exhaustion = unused = None
    if used >= granted:
        warnings.append(PlanWarning("used up"))
    if a.start is not None and a.end is not None:
        begin = local_midnight(a.start, timezone)
        finish = local_midnight(a.end + timedelta(days=1), timezone)
        elapsed = min(max(use.as_of_s - begin, 0), finish - begin)
        fraction = elapsed / (finish - begin)
        planned = granted * fraction
        if elapsed > 0:
            rate = used / elapsed  # GPU-hours per second of the allocation so far
            if used < granted and rate > 0:
                runs_out = use.as_of_s + (granted - used) / rate
                if runs_out < finish:
                    exhaustion = datetime.fromtimestamp(runs_out, ZoneInfo(timezone)).date()
            remaining = max(0, finish - use.as_of_s)
            unused = max(0.0, granted - used - rate * remaining)
            if planned and used > 1.1 * planned and used < granted:
                warnings.append(PlanWarning("over plan", used / planned))
            if fraction >= 0.25 and used < 0.5 * planned:
                warnings.append(PlanWarning("under plan", used / planned))
            if fraction < 1 and unused > 0.25 * granted:
                warnings.append(PlanWarning("unused", unused / granted))
    return AllocationStatus(
        account=a.account, project=a.project, category=category or UNMAPPED, state=state,
        source=a.source, access_mode=a.access_mode, country=a.country,
        organisation=a.organisation, start=a.start, end=a.end,
        granted_s=a.granted_gpu_s, slurm_budget_s=a.slurm_gpu_s,
        used_period_s=use.used_period_s, used_total_s=use.used_total_s,
        consumed=used / granted,
        planned_s=None if planned is None else planned * 3600,
        projected_exhaustion=exhaustion,
        projected_unused_s=None if unused is None else unused * 3600,
        warnings=tuple(warnings), plan_ratio=used / planned if planned else None,
        plan_status=_plan_status(warnings, planned))


