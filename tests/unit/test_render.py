"""Rendering: every format shows the same numbers; hostile names stay text."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from msgspec.structs import replace

from collector.collect import collect
from collector.documents.convert import document
from collector.documents.text import FORMATS, render, sections_of
from collector.engine import periods
from collector.engine.model import Report, UserUse
from collector.engine.report import build_report
from collector.store.database import Store

from . import fakeslurm

HOSTILE = 'x|y,"z"\n[bold]b[/bold] <script>alert(1)</script> 训练'


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    settings, env = fakeslurm.make(tmp_path_factory.mktemp("render"))
    now = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
    collect(settings, now=now, env=env)
    with Store.open_reader(settings.store.path) as store:
        got = build_report(store, settings, periods.parse_month("2026-10", "UTC"), now=now)
    return replace(got, users=(*got.users, UserUse(HOSTILE, HOSTILE,
                                                               int(1234.5 * 3600))))


def test_json_round_trips(report):
    assert json.loads(render(report, "json")) == document(report)


def test_csv_sections_parse_back_with_the_hostile_name_intact(report):
    text = render(report, "csv")
    sections = {}
    for block in text.split("# ")[1:]:
        name, _, body = block.partition("\n")
        sections[name] = list(csv.reader(io.StringIO(body)))
    assert set(sections) == {key for _, key, _ in sections_of(report)}
    users = sections["users"]
    assert users[0] == ["user", "account", "gpu_hours", "kwh"]
    assert [HOSTILE, HOSTILE, "1234.5", ""] in users   # no energy data: empty, not 0
    cats = {r[0]: r for r in sections["categories"][1:] if r}
    assert cats["science"][2] == "43.0"


def test_markdown_escapes_table_breakers_and_markup(report):
    md = render(report, "md")
    line = next(x for x in md.splitlines() if "alert" in x)
    assert "<script>" not in md and "&lt;script>" in line
    assert line.count(" | ") == 3  # the name's own | is escaped, the row keeps 4 cells
    assert "| science | national | 43.0 |" in md


def test_the_terminal_table_prints_markup_as_text(report):
    table = render(report, "table")
    assert "[bold]b[/bold]" in table and "1,234.5" in table
    assert "Categories against their quota" in table


def test_unknown_format_is_refused(report):
    assert set(FORMATS) == {"table", "csv", "md", "json"}
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "pdf")
