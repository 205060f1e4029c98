"""Report periods in the facility's time zone (pure).

A period is [start, end) in epoch seconds; its boundaries are local midnights, so
a month with a daylight-saving change has 743 or 745 hours.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec

from collector import clock


class PeriodError(ValueError):
    """A period given on the command line cannot be read."""


class Period(msgspec.Struct, frozen=True):
    kind: str            # month, quarter, year, custom
    label: str           # 2026-10, 2026Q4, 2026, 2026-10-01..2026-10-15
    start_s: int
    end_s: int
    timezone: str

    @property
    def hours(self) -> float:
        return (self.end_s - self.start_s) / 3600

    def start_date(self) -> date:
        return datetime.fromtimestamp(self.start_s, ZoneInfo(self.timezone)).date()

    def end_date(self) -> date:
        """The last day inside the period."""
        return datetime.fromtimestamp(self.end_s - 1, ZoneInfo(self.timezone)).date()


def local_midnight(day: date, timezone: str) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).timestamp())


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _span(kind: str, label: str, y: int, m: int, months: int, tz: str) -> Period:
    ey, em = _add_months(y, m, months)
    return Period(kind, label, local_midnight(date(y, m, 1), tz),
                  local_midnight(date(ey, em, 1), tz), tz)


def month(year: int, month_: int, timezone: str) -> Period:
    return _span("month", f"{year:04d}-{month_:02d}", year, month_, 1, timezone)


def quarter(year: int, q: int, timezone: str) -> Period:
    return _span("quarter", f"{year:04d}Q{q}", year, 3 * q - 2, 3, timezone)


def year(year_: int, timezone: str) -> Period:
    return _span("year", f"{year_:04d}", year_, 1, 12, timezone)


def _year_ok(y: int) -> bool:
    """A year a period can be in: its days and the day after it are dates (1-9998)."""
    return 1 <= y <= 9998


def parse_month(text: str, timezone: str, now: float | None = None) -> Period:
    """YYYY-MM, `last` (the previous month) or `this` (the current month, to now)."""
    d = clock.today(timezone, now)
    if text in ("last", "this"):
        y, m = _add_months(d.year, d.month, -1 if text == "last" else 0)
        return month(y, m, timezone)
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match[2]) <= 12 or not _year_ok(int(match[1])):
        raise PeriodError(f"month {text!r}: expected YYYY-MM (e.g. 2026-10), 'last' or 'this'")
    return month(int(match[1]), int(match[2]), timezone)


def parse_quarter(text: str, timezone: str, now: float | None = None) -> Period:
    """YYYYQN (e.g. 2026Q3), `last` or `this`."""
    d = clock.today(timezone, now)
    if text in ("last", "this"):
        q = (d.month - 1) // 3 + 1
        y, q = (d.year, q) if text == "this" else ((d.year, q - 1) if q > 1 else (d.year - 1, 4))
        return quarter(y, q, timezone)
    match = re.fullmatch(r"(\d{4})[Qq]([1-4])", text)
    if not match or not _year_ok(int(match[1])):
        raise PeriodError(f"quarter {text!r}: expected YYYYQN (e.g. 2026Q3), 'last' or 'this'")
    return quarter(int(match[1]), int(match[2]), timezone)


def parse_year(text: str, timezone: str, now: float | None = None) -> Period:
    """YYYY, `last` or `this`."""
    d = clock.today(timezone, now)
    if text in ("last", "this"):
        return year(d.year - (text == "last"), timezone)
    if not re.fullmatch(r"\d{4}", text) or not _year_ok(int(text)):
        raise PeriodError(f"year {text!r}: expected YYYY (e.g. 2026), 'last' or 'this'")
    return year(int(text), timezone)


def custom(first: date, last: date, timezone: str) -> Period:
    """Whole local days from `first` to `last`, both included."""
    if last < first:
        raise PeriodError(f"period {first}..{last}: the last day is before the first")
    end = date.fromordinal(last.toordinal() + 1)
    return Period("custom", f"{first}..{last}", local_midnight(first, timezone),
                  local_midnight(end, timezone), timezone)


def year_to_date(period: Period) -> Period:
    """From 1 January of the period's (last) year to the period's end."""
    y = period.end_date().year
    return Period("ytd", f"{y} to {period.end_date()}", local_midnight(date(y, 1, 1),
                  period.timezone), period.end_s, period.timezone)


def months_of(period: Period) -> list[Period]:
    """The calendar months that the period covers (whole or in part)."""
    first, last = period.start_date(), period.end_date()
    out, (y, m) = [], (first.year, first.month)
    while (y, m) <= (last.year, last.month):
        out.append(month(y, m, period.timezone))
        y, m = _add_months(y, m, 1)
    return out


def default_history_start(timezone: str, now: float | None = None) -> int:
    """13 months back: the first day of the month 13 months before the current one, so
    that last year's same month and everything since are complete."""
    d = clock.today(timezone, now)
    y, m = _add_months(d.year, d.month, -13)
    return local_midnight(date(y, m, 1), timezone)
