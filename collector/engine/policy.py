"""The facility's rules applied to Slurm accounts (pure; no I/O).

Which category (and so which pool) an account belongs to, which accounts belong
to none or to several, and which allocations exist (from the policy file and
from `GrpTRESMins=gres/gpu=N` budgets in Slurm).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from collector.config import Settings


@dataclass(frozen=True)
class AccountMap:
    category: dict[str, str]                 # account -> category (first match wins)
    pool: dict[str, str]                     # category -> pool
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)  # account -> all matches

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


@dataclass(frozen=True)
class Allocation:
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
