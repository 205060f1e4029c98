"""Report periods in the facility's zone: DST months, quarters, 'last', bad input."""

from datetime import UTC, date, datetime

import pytest

from collector.engine import periods

AMS = "Europe/Amsterdam"


def _utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def test_a_month_starts_at_local_midnight():
    oct_ = periods.parse_month("2026-10", AMS)
    assert oct_.start_s == _utc(2026, 9, 30, 22)  # CEST, UTC+2
    assert oct_.end_s == _utc(2026, 10, 31, 23)   # CET, UTC+1
    assert oct_.label == "2026-10"


@pytest.mark.parametrize(("month", "hours"), [("2026-03", 743), ("2026-10", 745),
                                              ("2026-11", 720)])
def test_daylight_saving_months_have_743_or_745_hours(month, hours):
    assert periods.parse_month(month, AMS).hours == hours


def test_utc_months_have_calendar_hours():
    assert periods.parse_month("2026-10", "UTC").hours == 31 * 24


def test_last_and_this_follow_now_in_the_facility_zone():
    # 2026-11-30T23:30 UTC is already 1 December in Amsterdam.
    now = _utc(2026, 11, 30, 23, 30)
    assert periods.parse_month("last", AMS, now).label == "2026-11"
    assert periods.parse_month("last", "UTC", now).label == "2026-10"
    assert periods.parse_month("this", AMS, now).label == "2026-12"
    assert periods.parse_quarter("last", "UTC", _utc(2026, 2, 1)).label == "2025Q4"
    assert periods.parse_year("last", "UTC", _utc(2026, 2, 1)).label == "2025"


def test_quarter_and_year_cover_their_months():
    q3 = periods.parse_quarter("2026Q3", "UTC")
    assert (q3.start_s, q3.end_s) == (_utc(2026, 7, 1), _utc(2026, 10, 1))
    assert [m.label for m in periods.months_of(q3)] == ["2026-07", "2026-08", "2026-09"]
    assert len(periods.months_of(periods.parse_year("2026", AMS))) == 12


def test_year_to_date_runs_from_january_to_the_period_end():
    ytd = periods.year_to_date(periods.parse_month("2026-10", AMS))
    assert ytd.start_s == _utc(2025, 12, 31, 23) and ytd.end_s == _utc(2026, 10, 31, 23)


def test_custom_periods_are_whole_days():
    p = periods.custom(date(2026, 10, 1), date(2026, 10, 1), "UTC")
    assert p.hours == 24 and p.end_date() == date(2026, 10, 1)
    with pytest.raises(periods.PeriodError):
        periods.custom(date(2026, 10, 2), date(2026, 10, 1), "UTC")


@pytest.mark.parametrize(("parse", "text"), [
    (periods.parse_month, "2026-13"), (periods.parse_month, "October"),
    (periods.parse_month, "2026-1"), (periods.parse_quarter, "2026Q5"),
    (periods.parse_year, "26"), (periods.parse_month, "2026-10; rm -rf /"),
    # past the calendar: Python's dates end at 9999 and start at 1
    (periods.parse_month, "0000-01"), (periods.parse_month, "9999-12"),
    (periods.parse_quarter, "0000Q1"), (periods.parse_year, "9999")])
def test_bad_periods_are_refused_with_the_expected_form(parse, text):
    with pytest.raises(periods.PeriodError, match="expected"):
        parse(text, "UTC")


def test_default_history_start_is_13_months_back():
    start = periods.default_history_start("UTC", _utc(2026, 11, 22, 10))
    assert start == _utc(2025, 10, 1)


# The four instants the CI pins the whole unit suite at, read here as an Amsterdam
# facility sees them through GPU_USAGE_NOW: (this month, last month, this quarter,
# last year, hours of this month).
@pytest.mark.parametrize(("instant", "this", "last", "quarter", "last_year", "hours"), [
    ("2026-12-01T00:05:00+01:00", "2026-12", "2026-11", "2026Q4", "2025", 744),
    ("2027-02-28T23:55:00+01:00", "2027-02", "2027-01", "2027Q1", "2026", 672),
    ("2026-10-25T02:30:00+01:00", "2026-10", "2026-09", "2026Q4", "2025", 745),
    ("2027-01-01T00:05:00+01:00", "2027-01", "2026-12", "2027Q1", "2026", 744),
])
def test_calendar_edges_through_the_pinned_clock(monkeypatch, instant, this, last, quarter,
                                                 last_year, hours):
    from collector import clock
    monkeypatch.setenv(clock.ENV, instant)
    month = periods.parse_month("this", AMS)
    assert (month.label, month.hours) == (this, hours)
    assert month.start_s <= clock.now() < month.end_s
    assert periods.parse_month("last", AMS).label == last
    assert periods.parse_quarter("this", AMS).label == quarter
    assert periods.parse_year("last", AMS).label == last_year
    ytd = periods.year_to_date(month)
    assert ytd.start_s == periods.parse_year("this", AMS).start_s and ytd.end_s == month.end_s
