"""The one source of "now" for the collector, the exporter and the dashboard.

Every reading of the current time in the product goes through `now()` (a lint rule
bans `time.time`, `datetime.now` and `date.today` everywhere else), so a test or a
demo can pin it: set GPU_USAGE_NOW to an ISO 8601 instant with its offset
(`2026-12-01T00:05:00+01:00`, `2026-11-30T23:05:00Z`) or to epoch seconds, and every
"this month", "today", "running jobs count up to now" and "age of the last
collection" is computed at that instant. Unset, it is the system clock.

"Today" is always a day in the facility's time zone (`today(tz)`), never the
machine's: a facility in Amsterdam starts December at 2026-11-30 23:00 UTC.
Durations are measured with time.monotonic(), which is not "now" and stays allowed.
"""

from __future__ import annotations

import math
import os
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

ENV = "GPU_USAGE_NOW"


class ClockError(ValueError):
    """GPU_USAGE_NOW holds something that is not an instant."""


def parse_instant(text: str) -> float:
    """Epoch seconds of `text`: epoch seconds, or ISO 8601 with an offset or Z."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise ClockError(f"{ENV}={text!r}: epoch seconds must be finite and >= 0")
        return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ClockError(f"{ENV}={text!r}: expected epoch seconds or an ISO 8601 instant "
                         "with its offset, e.g. 2026-12-01T00:05:00+01:00") from exc
    if moment.tzinfo is None:
        raise ClockError(f"{ENV}={text!r}: give the offset (+01:00 or Z); a bare local "
                         "time is ambiguous")
    return moment.timestamp()


def pinned() -> float | None:
    """The pinned instant from GPU_USAGE_NOW, or None when the clock is real."""
    text = os.environ.get(ENV, "")
    return parse_instant(text) if text.strip() else None


def now() -> float:
    """Epoch seconds now: GPU_USAGE_NOW when set, else the system clock."""
    fixed = pinned()
    return time.time() if fixed is None else fixed


def now_or(value: float | None) -> float:
    """`value` when a caller passed its own instant, else now()."""
    return now() if value is None else value


def today(timezone: str, at: float | None = None) -> date:
    """The date in the facility's time zone at `at` (default: now)."""
    return datetime.fromtimestamp(now_or(at), ZoneInfo(timezone)).date()


__all__ = ["ENV", "ClockError", "now", "now_or", "parse_instant", "pinned", "today"]
