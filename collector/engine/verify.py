"""The report's account figures checked against Slurm's own: `sreport -t minutes
-T gres/gpu cluster AccountUtilizationByUser` for a closed period.

sreport counts an account with everything below it, so each of our accounts is
summed over its descendants before the comparison. Pure apart from
`verify_period`, which reads the store and runs sreport through the one door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collector import clock
from collector.config import Settings
from collector.engine.periods import Period
from collector.engine.policy import descendants
from collector.slurm.sreport_parser import SreportFormatError, parse_sreport_accounts
from collector.store import reads
from collector.store.database import Store

__all__ = ["SreportFormatError", "compare", "load_checks", "parse_sreport_accounts",
           "save_check", "verify_period"]

TOLERANCE_MINUTES = 1.0  # sreport rounds each hourly rollup to whole minutes


@dataclass(frozen=True)
class AccountCheck:
    account: str
    ours_minutes: float
    sreport_minutes: int

    @property
    def difference(self) -> float:
        return round(self.ours_minutes - self.sreport_minutes, 3)


@dataclass(frozen=True)
class Check:
    period: str
    checked_s: float
    accounts: tuple[AccountCheck, ...]

    @property
    def differing(self) -> tuple[AccountCheck, ...]:
        return tuple(a for a in self.accounts if abs(a.difference) > TOLERANCE_MINUTES)

    @property
    def max_difference(self) -> float:
        return max((abs(a.difference) for a in self.accounts), default=0.0)

    def total(self, root: str = "root") -> tuple[float, int]:
        for a in self.accounts:
            if a.account == root:
                return a.ours_minutes, a.sreport_minutes
        return sum(a.ours_minutes for a in self.accounts), sum(a.sreport_minutes
                                                               for a in self.accounts)


def compare(period: str, ours_seconds: Mapping[str, int], parents: Mapping[str, str],
            reported: Mapping[str, int], checked_s: float) -> Check:
    """Every account that either side has, ours summed over its descendants."""
    accounts = set(reported) | {a for a, s in ours_seconds.items() if s}
    rows = []
    for account in sorted(accounts):
        below = descendants(account, parents)
        ours = sum(ours_seconds.get(a, 0) for a in below) / 60
        rows.append(AccountCheck(account, round(ours, 3), reported.get(account, 0)))
    return Check(period, checked_s, tuple(rows))


def verify_period(store: Store, settings: Settings, period: Period,
                  env: dict[str, str] | None = None) -> Check:
    """Runs sreport for the period and compares; raises SlurmError, SreportFormatError."""
    from collector.engine import usage
    from collector.slurm.commands import run_sreport_accounts

    cluster = settings.slurm.cluster
    rows = usage.period_usage(store, cluster, period.start_s, period.end_s, period.end_s)
    ours: dict[str, int] = {}
    for r in rows:
        ours[r.account] = ours.get(r.account, 0) + r.gpu_s
    text = run_sreport_accounts(period.start_s, period.end_s, cluster,
                                settings.slurm.timeout_s, env)
    return compare(period.label, ours, reads.tree(store, cluster).parents,
                   parse_sreport_accounts(text), clock.now())


def save_check(store: Store, cluster: str, check: Check) -> None:
    ours, theirs = check.total()
    reads.save_check(store, cluster, reads.StoredCheck(
        check.period, check.checked_s, len(check.accounts), len(check.differing),
        check.max_difference, ours, theirs))


def load_checks(store: Store, cluster: str) -> list[reads.StoredCheck]:
    """Stored checks, newest period first."""
    return reads.load_checks(store, cluster)
