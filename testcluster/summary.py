"""What a test cluster holds, in Slurm's own words (sinfo, sacct, sreport).

This is the oracle's view, not the product's: the collector's report is checked
against these same sreport figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from collector import clock
from collector.slurm.sacct_parser import parse_time

from .accounts import CATEGORIES
from .cluster import run_slurm
from .history import add_months, day, month_start
from .layout import FIRST_LIVE_JOB_ID, Layout


@dataclass(frozen=True)
class MonthFigures:
    month: str
    jobs: int
    allocated_h: float
    down_h: float
    planned_down_h: float
    reported_h: float
    by_account: dict[str, float]

    @property
    def utilisation(self) -> float:
        available = self.reported_h - self.down_h - self.planned_down_h
        return self.allocated_h / available if available else 0.0


def _slurm(lay: Layout, *argv: str) -> str:
    return run_slurm(lay, list(argv), timeout_s=300).stdout


def month_figures(lay: Layout, start: int) -> MonthFigures:
    end = add_months(start, 1)
    window = (f"start={day(start)}", f"end={day(end)}")
    util = _slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                  "utilization", *window).strip().split("|")
    by_account: dict[str, float] = {}
    out = _slurm(lay, "sreport", "-n", "-P", "-t", "minutes", "-T", "gres/gpu", "cluster",
                 "AccountUtilizationByUser", *window)
    for line in out.splitlines():
        _, account, login, _, _, used = line.split("|")
        if not login:
            by_account[account] = int(used) / 60
    jobs = _slurm(lay, "sacct", "-a", "-X", "-D", "-n", "-P", "-S", day(start),
                  "-E", day(end), "-o", "jobidraw,start")
    count = sum(1 for line in jobs.splitlines()
                if start <= _epoch(line.split("|")[1]) < end)
    return MonthFigures(time.strftime("%Y-%m", time.gmtime(start)), count,
                        int(util[2]) / 60, int(util[3]) / 60, int(util[4]) / 60,
                        int(util[7]) / 60, by_account)


def _epoch(text: str) -> int:
    """A sacct timestamp (printed in UTC: run_slurm sets TZ) as epoch; -1 if none."""
    return parse_time(text, "Start") or -1


def recent_months(now: int, count: int = 3) -> list[int]:
    """Starts of the last `count` complete months (UTC)."""
    d = time.gmtime(now)
    this_month = month_start(d.tm_year, d.tm_mon)
    return [add_months(this_month, -i) for i in range(count, 0, -1)]


def print_summary(lay: Layout, console: Console, months: int = 3) -> None:
    nodes = _slurm(lay, "sinfo", "-h", "-N", "-o", "%N %G %t").split()
    gpus = sum(int(g.rsplit(":", 1)[1]) for g in nodes[1::3])
    live = _slurm(lay, "sacct", "-a", "-X", "-D", "-n", "-P", "-S", "now-1days",
                  "-o", "jobidraw")
    live_jobs = sum(1 for x in live.split() if int(x.split("+")[0]) >= FIRST_LIVE_JOB_ID)
    console.print(f"[bold]{lay.cluster}[/]: {len(nodes) // 3} nodes, {gpus} GPUs; "
                  f"{live_jobs} live jobs in the last day; SLURM_CONF={lay.slurm_conf}")
    figures = [month_figures(lay, m) for m in recent_months(int(clock.now()), months)]
    table = Table(title="GPU-hours per month, from sreport -T gres/gpu (UTC months)")
    for col in ("month", "jobs", "allocated", "down", "planned down", "capacity", "utilisation"):
        table.add_column(col, justify="right")
    for f in figures:
        table.add_row(f.month, f"{f.jobs:,}", f"{f.allocated_h:,.0f}", f"{f.down_h:,.0f}",
                      f"{f.planned_down_h:,.0f}", f"{f.reported_h:,.0f}", f"{f.utilisation:.1%}")
    console.print(table)
    cats = Table(title="GPU-hours per pool and category account (sreport AccountUtilizationByUser)")
    cats.add_column("account")
    cats.add_column("parent")
    for f in figures:
        cats.add_column(f.month, justify="right")
    order = ["eurohpc", *(c for c, p in CATEGORIES.items() if p == "eurohpc"), "national",
             *(c for c, p in CATEGORIES.items() if p == "national"), "staff"]
    parents = {"eurohpc": "root", "national": "root", **CATEGORIES}
    for account in order:
        cats.add_row(account, parents[account],
                     *(f"{f.by_account.get(account, 0):,.0f}" for f in figures))
    cats.add_row("[bold]root[/]", "", *(f"{f.by_account.get('root', 0):,.0f}" for f in figures))
    console.print(cats)
