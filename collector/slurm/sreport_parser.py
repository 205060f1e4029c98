"""sreport's account figures, read: the independent oracle `gpu-usage verify` checks
the store against."""

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
        if len(parts) != 4 or not parts[3].isdigit():
            raise SreportFormatError(f"sreport line {no}: expected 4 fields ending in whole "
                                     f"minutes, got {line[:200]!r}")
        _, account, login, used = parts
        if not login:
            minutes[account] = int(used)
    return minutes
