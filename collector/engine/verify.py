"""The report's account figures checked against Slurm's own: `sreport -t minutes
-T gres/gpu cluster AccountUtilizationByUser` for a closed period; and its energy
against sacct's ConsumedEnergyRaw recomputed by time (`check_energy`), because
sreport's energy is known to be wrong (`SREPORT_ENERGY_CAUSE`).

sreport counts an account with everything below it, so each of our accounts is
summed over its descendants before the comparison. Pure apart from
`verify_period`, which reads the store and runs sreport through the one door.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from collector import clock
from collector.config import Settings
from collector.engine.periods import Period
from collector.engine.policy import descendants
from collector.slurm.sreport_parser import SreportFormatError, parse_sreport_accounts
from collector.store import reads
from collector.store.database import Store

__all__ = ["SREPORT_ENERGY_CAUSE", "EnergyCheck", "SreportFormatError", "check_energy",
           "compare", "energy_gap", "load_checks", "parse_sreport_accounts", "save_check",
           "verify_energy", "verify_period"]

TOLERANCE_MINUTES = 1.0  # sreport rounds each hourly rollup to whole minutes


class AccountCheck(msgspec.Struct, frozen=True):
    account: str
    ours_minutes: float
    sreport_minutes: int

    @property
    def difference(self) -> float:
        return round(self.ours_minutes - self.sreport_minutes, 3)


class Check(msgspec.Struct, frozen=True):
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


def verify_period(store: Store, settings: Settings, period: Period, cluster: str,
                  env: dict[str, str] | None = None) -> Check:
    """Runs sreport for the period on `cluster` and compares; raises SlurmError,
    SreportFormatError."""
    from collector.engine import usage
    from collector.slurm.commands import run_sreport_accounts

    rows = usage.period_usage(store, (cluster,), period.start_s, period.end_s, period.end_s)
    ours: dict[str, int] = {}
    for r in rows:
        ours[r.account] = ours.get(r.account, 0) + r.gpu_s
    text = run_sreport_accounts(period.start_s, period.end_s, cluster,
                                settings.slurm.timeout_s, env)
    return compare(period.label, ours, reads.tree(store, (cluster,)).parents,
                   parse_sreport_accounts(text), clock.now())


def save_check(store: Store, cluster: str, check: Check) -> None:
    ours, theirs = check.total()
    reads.save_check(store, cluster, reads.StoredCheck(
        check.period, check.checked_s, len(check.accounts), len(check.differing),
        check.max_difference, ours, theirs))


def load_checks(store: Store, cluster: str) -> list[reads.StoredCheck]:
    """Stored checks, newest period first."""
    return reads.load_checks(store, cluster)


# Measured: 22.05 (the issue: a 36-hour job's 968 MJ counted 36 times) and 25.11 (the
# test cluster's month: 330.0 GJ in sreport, 19.8 GJ for its GPU jobs by ConsumedEnergyRaw
# and time, 16.7 times).
SREPORT_ENERGY_CAUSE = (
    "known cause: Slurm's hourly rollup adds each job's whole energy to every hour it "
    "ran (as_mysql_rollup.c: energy is 'already totalled for the entire job'), so "
    "sreport -T energy counts a job of h hours about h times; the energy here is checked "
    "against sacct's ConsumedEnergyRaw instead")


class EnergyCheck(msgspec.Struct, frozen=True):
    period: str
    jobs: int                       # jobs with energy that sacct lists in the period
    ours_j: dict[str, int]          # per account, from the store
    sacct_j: dict[str, float]       # per account, ConsumedEnergyRaw split by time
    sreport_j: int                  # sreport -T energy, the cluster's root account

    @property
    def recorded(self) -> bool:
        return self.jobs > 0 or any(self.ours_j.values())

    @property
    def differing(self) -> tuple[tuple[str, int, float], ...]:
        """Accounts whose joules differ from sacct's by more than one per job (the
        store keeps whole joules per hour)."""
        accounts = sorted(set(self.ours_j) | set(self.sacct_j))
        return tuple((a, self.ours_j.get(a, 0), self.sacct_j.get(a, 0.0)) for a in accounts
                     if abs(self.ours_j.get(a, 0) - self.sacct_j.get(a, 0.0)) > self.jobs + 1)

    @property
    def total_j(self) -> int:
        return sum(self.ours_j.values())

    def sreport_note(self) -> str:
        """What sreport's energy says next to ours."""
        ours = self.total_j
        if abs(self.sreport_j - ours) <= max(1.0, 0.001 * ours):
            return "equal"
        if self.sreport_j > ours:
            return f"{self.sreport_j / max(ours, 1):,.1f} times this; {SREPORT_ENERGY_CAUSE}"
        return "lower than this, with no known cause"


def check_energy(period: str, ours_j: Mapping[str, int], sacct: tuple[dict[str, float], int],
                 sreport: Mapping[str, int]) -> EnergyCheck:
    """The store's joules per account against sacct's, and sreport's root total."""
    root = sreport.get("root", sum(sreport.values()))
    return EnergyCheck(period, sacct[1], {a: j for a, j in ours_j.items() if j}, sacct[0],
                       root)


def verify_energy(store: Store, settings: Settings, period: Period, cluster: str,
                  env: dict[str, str] | None = None) -> EnergyCheck:
    """Runs sacct and sreport for the period's energy and compares; raises SlurmError,
    SreportFormatError."""
    from collector.engine import usage
    from collector.slurm.commands import run_sacct_energy, run_sreport_accounts
    from collector.slurm.sreport_parser import parse_sacct_energy

    timeout = settings.slurm.timeout_s
    ours: dict[str, int] = {}
    for r in usage.period_usage(store, (cluster,), period.start_s, period.end_s, period.end_s):
        ours[r.account] = ours.get(r.account, 0) + r.energy_j
    sacct = parse_sacct_energy(run_sacct_energy(period.start_s, period.end_s, cluster,
                                                timeout, env), period.start_s, period.end_s)
    sreport = parse_sreport_accounts(run_sreport_accounts(
        period.start_s, period.end_s, cluster, timeout, env, tres="energy", unit="seconds"))
    return check_energy(period.label, ours, sacct, sreport)


def energy_gap(store: Store, period: Period) -> int | None:
    """The instant before which the store holds no energy (upgraded from a version
    without it), if the period starts before it: its energy cannot be checked."""
    since = reads.energy_since(store)
    return since if since is not None and period.start_s < since else None
