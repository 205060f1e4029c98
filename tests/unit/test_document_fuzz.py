"""Fuzz every document format (PDF, XLSX, CSV, Markdown, the terminal table) with a
report whose every text field is hostile: unbroken strings up to 20,000 characters,
line breaks, control characters, RTL marks, emoji, HTML and Markdown, formula starts,
pipes and quotes. Nothing crashes; a cut field says so (in the PDF too, read back
with pdftotext); no CSV text cell starts like a formula; every cell fits Excel.

As tests/unit/test_bad_input.py's hostile_site, the report comes from a real store
(the synthetic October); hypothesis then writes its strings into every text field,
keys of the report's small maps included, which Slurm output alone cannot vary fast
enough for a fuzzer."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import date
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from openpyxl import load_workbook

from collector.documents.office import pdf, xlsx
from collector.documents.text import (
    CELL_MAX,
    FORMULA_START,
    SHOWN_MAX,
    get_rows,
    render,
    sections_of,
)
from collector.engine import periods
from collector.engine.model import PeriodInfo, PlanWarning, Record, RejectedLine, Report
from collector.engine.report import build_report
from collector.store.database import Store

from .dashboard_fixture import NOW, make

PARTS = ('=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)", "=cmd|' /C calc'!A0",
         "\t", "\r", "\n", "\r\n", "|", '"', "'", ",", ";", "\\", "# ", " ",
         "<script>alert(1)</script>", "<b>", "&amp;", "![t](http://x)", "**b**", "$x$", "`",
         "\u202e", "\u200f", "\u2066", "\u061c", "😀", "👩‍💻", "中文", "עברית", "\ufeff",
         "\x00", "\x07", "\x0b", "\x1b", "\x1f", "\x7f", "\u2028")
LONG = st.builds(lambda c, n: c * n, st.sampled_from(["L", "W", "😀", "中", "\u202e", "=", "|",
                                                      "<", "\x00", "-"]),
                 st.integers(SHOWN_MAX - 40, 20_000))
FRAGMENT = st.one_of(st.sampled_from(PARTS), LONG,
                     st.text(st.characters(max_codepoint=0x1f), max_size=5),
                     st.text(max_size=30))
NAMES = st.lists(st.lists(FRAGMENT, min_size=1, max_size=4).map("".join), min_size=1,
                 max_size=6)


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    _, _, cfg = make(tmp_path_factory.mktemp("fuzz"))
    with Store.open_reader(cfg.store.path) as store:
        return build_report(store, cfg, periods.parse_month("2026-10", "UTC"), now=NOW)


def poisoned(rep: Report, names: list[str]) -> Report:
    """The report with every string (the keys of its name maps included) one of `names`
    in turn, and the lists and maps that are empty in October filled first. The period
    stays (its time zone is a setting, not text from Slurm), and so do the warnings'
    kinds (the engine's own words)."""
    rep = replace(
        rep, data_quality=replace(
            rep.data_quality, rejected_sample=(RejectedLine("sacct", 7, "r", "l"),),
            unusual_states=(("S", 3),), ambiguous_accounts=(("a", ("c1", "c2")),)),
        allocations=tuple(replace(a, warnings=(PlanWarning("over plan", 1.2),
                                               PlanWarning("unused", 0.3)),
                                  projected_exhaustion=date(2026, 12, 1))
                          for a in rep.allocations))
    turn = count()

    def walk(value):
        if isinstance(value, str):
            return names[next(turn) % len(names)]
        if isinstance(value, PeriodInfo | PlanWarning):
            return value
        if isinstance(value, Record):
            return replace(value, **{f: walk(getattr(value, f))
                                     for f in value.__struct_fields__})
        if isinstance(value, tuple):
            return tuple(walk(v) for v in value)
        return value

    return walk(rep)


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def check_csv(text: str, rep: Report) -> None:
    rows = list(csv.reader(io.StringIO(text)))
    sections: dict[str, int] = {}
    key = None
    for row in rows:
        if len(row) == 1 and row[0].startswith("# "):
            key = row[0][2:]
            sections[key] = -1          # the header row is not a data row
        elif row:
            sections[key] += 1  # type: ignore[index]
        for c in row:
            assert len(c) <= CELL_MAX + 1
            if c[:1] in FORMULA_START or c.lstrip()[:1] in FORMULA_START:
                float(c)                # only a number may start with - or +
    assert sections == {k: len(get_rows(rep, k)) for _, k, _ in sections_of(rep)}  # no row split


def check_markdown(md: str) -> None:
    assert "<" not in md
    pipes = None
    for ln in md.split("\n"):           # a Markdown line ends at LF (or CR) only
        assert "\r" not in ln
        if not ln.startswith("|"):
            pipes = None
        elif pipes is None:
            pipes = ln.replace("\\|", "").count("|")
        else:
            assert ln.replace("\\|", "").count("|") == pipes, ln[:200]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(names=NAMES)
def test_no_hostile_name_crashes_a_document(october, tmp_path, names):
    rep = poisoned(october, names)

    text = pdf_text(pdf(rep), tmp_path)
    flat = "".join(text.split())
    facility = rep.facility             # on the title page, never in a table
    if len(facility) > SHOWN_MAX:
        assert f"…[cut,{len(facility):,}characters]" in flat

    wb = load_workbook(io.BytesIO(xlsx(rep)))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f"
                assert not isinstance(c.value, str) or len(c.value) <= CELL_MAX

    check_csv(render(rep, "csv"), rep)
    check_markdown(render(rep, "md"))
    assert render(rep, "table")
