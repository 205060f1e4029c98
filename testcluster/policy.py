"""The test cluster's facility policy (facility.toml), placed on its history.

The allocations in facility.toml carry fixed dates that suit a history whose first
month is REFERENCE_MONTH. A history made on another day starts in another month, so
tests and demos move every allocation by the months between the two: on any day,
each project then starts, runs and ends at the same place in its history (the same
ones active, new and ended in each backfilled month).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

TEMPLATE = Path(__file__).with_name("facility.toml")
REFERENCE_MONTH = date(2026, 11, 1)
_DATE_KEY = re.compile(r"^(start|end) = (\d{4})-(\d{2})-(\d{2})$", re.MULTILINE)


def _add_months(day: date, months: int) -> date:
    y, m = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(y, m + 1, 1)


def shift_dates(text: str, months: int) -> str:
    """Move every allocation's start (a 1st) and end (a month's last day) by `months`."""
    def move(match: re.Match[str]) -> str:
        key, day = match[1], date(int(match[2]), int(match[3]), int(match[4]))
        if key == "start":
            moved = _add_months(day, months) + timedelta(days=day.day - 1)
        else:  # an end is the last day of its month: keep it the last day
            moved = _add_months(day + timedelta(days=1), months) - timedelta(days=1)
        return f"{key} = {moved.isoformat()}"
    return _DATE_KEY.sub(move, text)


def months_from_reference(history_start_s: int) -> int:
    first = datetime.fromtimestamp(history_start_s, UTC).date()
    return (first.year - REFERENCE_MONTH.year) * 12 + first.month - REFERENCE_MONTH.month


def policy_text(history_start_s: int, store: Path | None = None, timezone: str = "UTC") -> str:
    """facility.toml with its allocations on the history that starts at `history_start_s`,
    the store at `store` and the facility in `timezone`; the history's start is the
    collector's history_start."""
    text = shift_dates(TEMPLATE.read_text(), months_from_reference(history_start_s))
    if store is not None:
        text = text.replace('path = "var/store"', f'path = "{store}"')
    text = text.replace('timezone = "UTC"', f'timezone = "{timezone}"')
    first = datetime.fromtimestamp(history_start_s, UTC).date()
    return text.replace('source = "sacct"', f'source = "sacct"\nhistory_start = {first}')
