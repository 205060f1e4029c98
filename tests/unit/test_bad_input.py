"""Bad input: the fuzzer over real recorded sacct lines, slurmrestd JSON and the policy
file (testcluster/fuzz.py; scripts/fuzz.py runs it longer), arbitrary text as a policy
file, and hostile strings (delimiters, quotes, newlines, HTML/JS, Markdown, formulas,
very long, any Unicode) from Slurm through the store into every output."""

from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from openpyxl import load_workbook
from prometheus_client import generate_latest

from collector import clock
from collector.collect import collect
from collector.config import ConfigError, load
from collector.documents.office import render_document
from collector.documents.text import md_escape, render
from collector.engine.periods import parse_month
from collector.engine.report import build_report
from collector.store.database import Store
from testcluster import fuzz

from . import fakeslurm
from .test_exporter import exporter_for

NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
HOSTILE = {
    "html": "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "markdown": "![t](http://evil.example/t.png) [click](javascript:alert(3)) **b** $x$",
    "formula": '=HYPERLINK("http://evil.example","x")',
    "quotes": "it's \"quoted\" \\ back",
    "unicode": "ünï 中文 \u202eRTL 😀",
    "long": "L" * 3000,
    "control": "bell\x07nul\x00esc\x1b",
}


@pytest.mark.parametrize(("fuzzer", "n"), [(fuzz.fuzz_sacct, 4000), (fuzz.fuzz_rest, 3000),
                                           (fuzz.fuzz_policy, 600)])
def test_the_fuzzer_finds_no_input_that_crashes_or_vanishes(fuzzer, n):
    tally = fuzzer(n)
    assert tally.failures == [], tally.failures[:3]
    assert tally.inputs >= n
    assert tally.rejected + tally.refused > 0 and tally.records + tally.refused > 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_as_a_policy_file_is_valid_or_a_named_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("p") / "facility.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_non_utf8_policy_is_named(tmp_path):
    path = tmp_path / "facility.toml"
    path.write_bytes(b'[facility]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match=r"facility.toml: not UTF-8 text \(byte 19\)"):
        load(path)


def test_markdown_escape_leaves_no_markup():
    for text in HOSTILE.values():
        escaped = md_escape(text + "\nsecond|line")
        assert "\n" not in escaped and "<" not in escaped
        for active in ("![", "](", "**", "|", "$"):
            assert active not in escaped.replace("\\" + active[0], ""), (text, active)


@pytest.fixture
def hostile_site(tmp_path):
    """A store from Slurm output carrying hostile WCKeys and job names, and a line that
    cannot be read made of hostile text."""
    jobs = [*fakeslurm.JOBS]
    for i, text in enumerate(HOSTILE.values()):
        jobs.append(fakeslurm.line(300 + i, "anna", "ehpc_a", "COMPLETED", "2026-10-20T09:00:00",
                                   "2026-10-20T09:00:00", "2026-10-20T10:00:00",
                                   fakeslurm.gpu(1), wckey=text.replace("|", "/"),
                                   name=text))
    jobs.append("399|399|testai|" + "|".join(HOSTILE.values()))  # too few fields: rejected
    settings_, env = fakeslurm.make(tmp_path, jobs)
    done = collect(settings_, now=NOW, env=env)
    assert done.rejected == 1 and done.jobs_new == len(fakeslurm.JOBS) + len(HOSTILE)
    with Store.open_reader(settings_.store.path) as store:
        report = build_report(store, settings_, parse_month("2026-10", "UTC"), now=NOW)
        names = {r[0] for r in store.conn.execute("SELECT name FROM jobs")}
    assert set(HOSTILE.values()) <= names  # kept whole: the name is the last field
    # The accounts table carries an organisation from Slurm: make it hostile too.
    report = replace(report, accounts=(
        replace(report.accounts[0], organisation=HOSTILE["html"] + HOSTILE["formula"]),
        *report.accounts[1:]))
    return settings_, report


def test_hostile_strings_are_text_in_csv_json_and_markdown(hostile_site):
    _, report = hostile_site
    sample = report.data_quality.rejected_sample
    assert report.data_quality.rejected_lines == 1
    assert sample[0].line.startswith("399|399|testai|<script>")
    md = render(report, "md")
    assert "<script>" not in md and "![t](" not in md and "&lt;script>" in md
    pipes, tables = None, 0
    for ln in md.splitlines():  # every table row has its header's column count
        if not ln.startswith("|"):
            pipes = None
        elif pipes is None:
            pipes, tables = ln.replace("\\|", "").count("|"), tables + 1
        else:
            assert ln.replace("\\|", "").count("|") == pipes, ln[:200]
    assert tables >= 5
    import csv
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert any(HOSTILE["html"] + HOSTILE["formula"] in r for r in rows)


def test_hostile_strings_are_text_in_the_pdf_and_excel(hostile_site, tmp_path):
    _, report = hostile_site
    org = HOSTILE["html"] + HOSTILE["formula"]
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_document(report, "pdf"))
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = " ".join(text.split())
    assert "<script>alert(1)</script>" in flat  # shown, not interpreted by reportlab
    assert "=HYPERLINK(" in flat
    wb = load_workbook(io.BytesIO(render_document(report, "xlsx")))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row
             if isinstance(c.value, str)]
    hit = [c for c in cells if c.value == org]
    assert hit and all(c.data_type == "s" for c in hit)  # a string, never a formula
    assert not [c for c in cells if c.data_type == "f"]
    rejected = [r for r in wb["Rejected lines"].iter_rows(min_row=2, values_only=True)]
    assert rejected[0][3].startswith("399|399|testai|<script>")
    assert "bell\ufffdnul\ufffdesc\ufffd" in rejected[0][3]  # control characters shown


def test_rejected_lines_are_counted_in_the_metric_with_the_store(hostile_site):
    settings_, _ = hostile_site
    exporter, registry = exporter_for(settings_, None, now=NOW)
    exporter.refresh()
    text = generate_latest(registry).decode()
    assert "gpu_usage_rejected_lines 1.0" in text
    assert "<script>" not in text  # no line content in metrics, only the count


def test_rejected_lines_show_on_the_data_quality_page_as_text(hostile_site, tmp_path,
                                                               monkeypatch):
    from streamlit.testing.v1 import AppTest

    from .dashboard_fixture import VIEWS, toml_of
    settings_, _ = hostile_site
    path = tmp_path / "facility.toml"
    path.write_text(toml_of({**fakeslurm.POLICY, "store": {"path": str(settings_.store.path)}}))
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv(clock.ENV, str(NOW))
    at = AppTest.from_file(str(VIEWS / "data_quality.py"), default_timeout=60)
    at.session_state["period_month"] = "2026-10"
    at.run()
    assert not at.exception and not at.error
    from collector.documents.office import header
    column = header("line")                # the label the page shows above the column
    shown = [df for df in at.dataframe if column in df.value.columns]
    assert shown and shown[0].value[column].iloc[0].startswith("399|399|testai|<script>")
    for md in at.markdown:
        assert "<script>" not in md.value and "![t](" not in md.value
