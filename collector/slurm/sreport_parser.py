"""sreport's account figures, and sacct's ConsumedEnergyRaw, read: the independent
oracles `gpu-usage verify` checks the store against."""

from __future__ import annotations


class SreportFormatError(ValueError):
    """sreport printed a line that is not Cluster|Account|Login|Used."""


def parse_sreport_accounts(text: str) -> dict[str, int]:
    """GPU-minutes per account from `sreport -n -P ... AccountUtilizationByUser
    format=Cluster,Account,Login,Used` (account lines have an empty Login; user lines
    are skipped). Split at \n only; no field is text a user writes."""
    minutes: dict[str, int] = {}
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 4 or not (parts[3].isascii() and parts[3].isdigit()):
            raise SreportFormatError(f"sreport line {no}: expected 4 fields ending in whole "
                                     f"minutes, got {line[:200]!r}")
        _, account, login, used = parts
        if not login:
            minutes[account] = int(used)
    return minutes


def parse_sacct_energy(text: str, start_s: int, end_s: int) -> tuple[dict[str, float], int]:
    """Joules per account inside [start, end) from `sacct ... --format=Account,Start,End,
    ConsumedEnergyRaw,AllocTRES` (TZ=UTC): each finished GPU job's ConsumedEnergyRaw
    times the share of its run inside the window; and how many jobs had energy.
    Jobs without energy (empty), without GPUs, never run or still running add nothing."""
    from collector.slurm.sacct_parser import FieldError, parse_time

    joules: dict[str, float] = {}
    jobs = 0
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise SreportFormatError(f"sacct line {no}: expected 5 fields, got {line[:200]!r}")
        account, begun, ended, energy, tres = parts
        if not energy or "gres/gpu=" not in tres:
            continue
        if not (energy.isascii() and energy.isdigit()):
            raise SreportFormatError(f"sacct line {no}: ConsumedEnergyRaw {energy!r} is not "
                                     "joules")
        try:
            a, b = parse_time(begun, "Start"), parse_time(ended, "End")
        except FieldError as exc:
            raise SreportFormatError(f"sacct line {no}: {exc}") from exc
        if a is None or b is None or b <= a:
            continue
        inside = min(b, end_s) - max(a, start_s)
        if inside > 0:
            joules[account] = joules.get(account, 0.0) + int(energy) * inside / (b - a)
            jobs += 1
    return joules, jobs
