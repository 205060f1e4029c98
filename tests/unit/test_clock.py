"""One clock: GPU_USAGE_NOW pins "now", today is the facility's day, and nothing in
the tree reads the system clock except collector/clock.py."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pytest

from collector import clock
from collector.engine import periods

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("collector", "dashboard", "testcluster", "tests", "scripts")
# 2026-12-01 00:05 in Amsterdam is still 30 November in UTC.
AMSTERDAM_FIRST = "2026-12-01T00:05:00+01:00"


def test_an_iso_instant_with_its_offset_pins_now(monkeypatch):
    monkeypatch.setenv(clock.ENV, AMSTERDAM_FIRST)
    assert clock.now() == 1796079900.0
    assert clock.now_or(12.0) == 12.0
    assert clock.today("Europe/Amsterdam") == date(2026, 12, 1)
    assert clock.today("UTC") == date(2026, 11, 30)
    assert periods.parse_month("this", "Europe/Amsterdam").label == "2026-12"
    assert periods.parse_month("last", "Europe/Amsterdam").label == "2026-11"
    assert periods.parse_month("this", "UTC").label == "2026-11"


def test_epoch_seconds_and_z_pin_the_same_instant(monkeypatch):
    monkeypatch.setenv(clock.ENV, "1796079900")
    assert clock.now() == 1796079900.0
    monkeypatch.setenv(clock.ENV, "2026-11-30T23:05:00Z")
    assert clock.now() == 1796079900.0


@pytest.mark.parametrize("text", ["2026-12-01T00:05:00", "yesterday", "-5", "nan", "inf",
                                  "2026-13-01T00:00:00Z"])
def test_a_bad_pin_is_an_error_that_names_the_variable(monkeypatch, text):
    monkeypatch.setenv(clock.ENV, text)
    with pytest.raises(clock.ClockError, match=clock.ENV):
        clock.now()


def test_unset_or_empty_is_the_system_clock(monkeypatch):
    monkeypatch.delenv(clock.ENV, raising=False)
    assert clock.pinned() is None
    monkeypatch.setenv(clock.ENV, " ")
    assert clock.pinned() is None
    assert clock.now() > 1_700_000_000


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


# Calls that read the system clock; the no-argument forms of the time module's
# converters read it too (time.gmtime() is "now" in UTC).
ALWAYS = {"time.time", "time.time_ns"}
NOW_METHODS = {"now", "utcnow", "today"}   # datetime.now(), date.today(), pd.Timestamp.now()
WITHOUT_ARGS = {"time.gmtime", "time.localtime", "time.ctime", "time.asctime"}


def clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        bare = not node.args and not node.keywords
        receiver, _, method = name.rpartition(".")
        if name in ALWAYS or (name in WITHOUT_ARGS and bare) or \
                (method in NOW_METHODS and receiver and receiver.split(".")[-1] != "clock") or \
                (name == "time.strftime" and len(node.args) == 1):
            found.append(f"{path.name}:{node.lineno}: {name}()")
    return found


def test_nothing_but_the_clock_module_reads_the_system_clock():
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    assert len(files) > 100
    found = [hit for p in files if p != ROOT / "collector" / "clock.py"
             for hit in clock_reads(p)]
    assert found == []


def test_the_scan_sees_each_form_it_bans(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import time, datetime\nfrom datetime import date, datetime as dt\n"
                      "time.time()\ndt.now()\ndate.today()\ntime.gmtime()\n"
                      "time.strftime('%Y')\npd.Timestamp.now()\n"
                      "time.gmtime(5)\ntime.strftime('%Y', x)\nclock.now()\n"
                      "clock.today('UTC')\n")
    hits = [h.rsplit(": ", 1)[1] for h in clock_reads(sample)]
    assert hits == ["time.time()", "dt.now()", "date.today()", "time.gmtime()",
                    "time.strftime()", "pd.Timestamp.now()"]
