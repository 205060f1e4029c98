"""The test cluster's allocations move with its history, so the same projects are
active in its months on any day the tests run."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime

from testcluster.policy import REFERENCE_MONTH, TEMPLATE, policy_text, shift_dates


def _start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def test_on_the_reference_month_the_template_is_unchanged():
    text = policy_text(_start(REFERENCE_MONTH))
    assert tomllib.loads(text)["allocations"] == tomllib.loads(TEMPLATE.read_text())["allocations"]
    assert "history_start = 2026-11-01" in text


def test_starts_stay_firsts_and_ends_stay_last_days_across_february_and_years():
    text = "start = 2026-08-01\nend = 2026-11-30\nend = 2027-01-31\n"
    assert shift_dates(text, 3) == "start = 2026-11-01\nend = 2027-02-28\nend = 2027-04-30\n"
    assert shift_dates(text, -20) == "start = 2024-12-01\nend = 2025-03-31\nend = 2025-05-31\n"


def test_a_history_a_year_later_gets_the_same_allocations_a_year_later(tmp_path):
    later = tomllib.loads(policy_text(_start(date(2027, 11, 1)), tmp_path / "s", "Europe/Paris"))
    now = tomllib.loads(TEMPLATE.read_text())
    for a, b in zip(later["allocations"], now["allocations"], strict=True):
        assert (a["start"].year, a["start"].month) == (b["start"].year + 1, b["start"].month)
        assert (a["end"] - a["start"]).days in range((b["end"] - b["start"]).days - 2,
                                                      (b["end"] - b["start"]).days + 3)
    assert later["store"]["path"] == str(tmp_path / "s")
    assert later["facility"]["timezone"] == "Europe/Paris"
