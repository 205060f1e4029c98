"""The PDF and Excel report documents of the synthetic October: the PDF renders and its
text holds the category table's numbers; every Excel cell equals the JSON report;
hostile strings from Slurm stay text; no text cell of the CSV report or of the
dashboard's CSV downloads starts like a formula; long fields are cut, not a crash."""

from __future__ import annotations

import csv
import io
import subprocess

import pytest
from click.testing import CliRunner
from msgspec.structs import replace
from openpyxl import load_workbook

from collector.cli import main
from collector.documents import convert
from collector.documents.convert import document
from collector.documents.office import SHEETS, pdf, xlsx
from collector.documents.text import (
    CELL_MAX,
    ROW_TYPES,
    SHOWN_MAX,
    csv_cell,
    cut,
    get_rows,
    md_escape,
    render,
    sections_of,
)
from collector.engine import periods
from collector.engine.model import Report, UnmappedAccount, UserUse
from collector.engine.report import build_report
from collector.store.database import Store

from .dashboard_fixture import NOW, make

# DejaVu Sans (fonts-dejavu-core) covers Latin, Greek and Cyrillic, not CJK.
HOSTILE = '<b>bold</b> & "quoted" | =HYPERLINK("http://x") Łódź Ωμέγα Кириллица'


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    path, _, settings = make(tmp_path_factory.mktemp("documents"))
    with Store.open_reader(settings.store.path) as store:
        rep = build_report(store, settings, periods.parse_month("2026-10", "UTC"), now=NOW)
    return rep, path


def pdf_text(data: bytes, tmp_path) -> str:
    (tmp_path / "r.pdf").write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout


def test_pdf_renders_every_page_and_holds_the_category_numbers(october, tmp_path):
    rep, _ = october
    data = pdf(rep)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data, tmp_path)
    assert "Fake Factory" in text and "GPU usage report 2026-10" in text
    for part in ("1. Capacity", "3. Usage per pool and category against quota", "5. Allocations",
                 "6. Job mix", "7. Service", "8. Data quality"):
        assert part in text
    for c in get_rows(rep, "categories"):
        line = next(ln for ln in text.splitlines() if ln.split()[:2] == [c["category"], c["pool"]])
        assert f"{c['used_s']:,.1f}" in line and f"{c['quota_s']:,.1f}" in line
    assert "11,904.0" in text       # nominal GPU-hours: 16 GPUs x 744 h
    assert "maria" not in text      # user names stay out of the document for funders
    pages = int(next(ln.split()[1] for ln in subprocess.run(
        ["pdfinfo", str(tmp_path / "r.pdf")], capture_output=True, text=True,
        check=True).stdout.splitlines() if ln.startswith("Pages:")))
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(tmp_path / "r.pdf"),
                    str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == pages >= 3


def test_every_excel_cell_equals_the_json_report(october):
    rep, _ = october
    wb = load_workbook(io.BytesIO(xlsx(rep)))
    assert wb.sheetnames == ["Report", *(SHEETS[k] for _, k, _ in sections_of(rep))]
    for _, key, columns in sections_of(rep):
        ws = wb[SHEETS[key]]
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == tuple(convert.label(ROW_TYPES[key], c) for c in columns)
        expected = get_rows(rep, key)
        assert len(rows) - 1 == len(expected), key
        for got, want in zip(rows[1:], expected, strict=True):
            for c, value in zip(columns, got, strict=True):
                w = want[c]
                w = ("; ".join(map(str, w)) or None) if isinstance(w, list) else w
                assert value == w, (key, c)
                # numbers stay numbers (openpyxl reads 11904.0 back as 11904), never text
                assert isinstance(value, bool) == isinstance(w, bool), (key, c)
                assert isinstance(value, str) == isinstance(w, str), (key, c)
    assert wb["Categories"]["C1"].value == "Used GPU-h"
    assert wb["Categories"]["G2"].number_format == "0.0%"     # a share, kept as a fraction


def test_hostile_strings_stay_text_in_pdf_and_excel(october, tmp_path):
    rep = october[0]
    rep = replace(rep, accounts=(replace(rep.accounts[0], organisation=HOSTILE),
                                 *rep.accounts[1:]),
                  unmapped_accounts=(*rep.unmapped_accounts,
                                     UnmappedAccount(HOSTILE, 5400, False)))
    text = pdf_text(pdf(rep), tmp_path)
    assert '<b>bold</b> & "quoted" | =HYPERLINK' in text and "Łódź Ωμέγα Кириллица" in text
    ws = load_workbook(io.BytesIO(xlsx(rep)))["Unmapped accounts"]
    cell = ws.cell(ws.max_row, 1)
    assert cell.value == HOSTILE and cell.data_type == "s"


def test_report_cli_writes_documents_and_refuses_binary_to_a_terminal(october, tmp_path):
    _, path = october
    runner = CliRunner()
    result = runner.invoke(main, ["report", "--config", str(path), "--month", "2026-10",
                                  "--format", "pdf"])
    assert result.exit_code == 2 and "--out" in result.output
    for fmt in ("pdf", "xlsx"):
        out = tmp_path / "reports" / f"{{period}}.{fmt}"
        result = runner.invoke(main, ["report", "--config", str(path), "--month", "2026-10",
                                      "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        written = (tmp_path / "reports" / f"2026-10.{fmt}").read_bytes()
        assert written[:4] == (b"%PDF" if fmt == "pdf" else b"PK\x03\x04")


# --- formula injection in CSV (issue 17, item 6) -------------------------------------------
# Every start that makes a spreadsheet read a text cell as a formula, bare and after
# white space; the rest holds the delimiter, quotes and a pipe, as a real attack would.
PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", " =", "\t@", "  -", " \r+")
PAYLOAD = "cmd|' /C calc'!A0,\"x\";HYPERLINK(\"http://evil.example\")"


def text_columns(rep: Report) -> set[tuple[str, str]]:
    """(section, column) of every text column of the CSV report: the typed report's
    text fields (dates, numbers and warnings are typed, so no user text reaches them)."""
    return {(key, c) for _, key, columns in sections_of(rep) for c in columns
            if convert.unit(ROW_TYPES[key], c) == "text"}


def _section(rep: Report, key: str):
    value = rep
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _with_section(rep: Report, key: str, value) -> Report:
    parts = key.split(".")
    if len(parts) == 1:
        return replace(rep, **{key: value})
    parent = getattr(rep, parts[0])
    return replace(rep, **{parts[0]: replace(parent, **{parts[1]: value})})


def hostile_report(rep: Report, prefixes: tuple[str, ...]) -> Report:
    """The report with one row per prefix in every table, every text field of that row
    starting with the prefix; a single-row section (commercial) takes the first one.
    Two numbers are negative: -5 and -0.25 GPU-hours."""
    cols = text_columns(rep)

    def poisoned(key: str, row, prefix: str):
        return replace(row, **{c: prefix + PAYLOAD for k, c in cols if k == key})

    for _, key, _ in sections_of(rep):
        rows = _section(rep, key)
        if not isinstance(rows, tuple):
            rep = _with_section(rep, key, poisoned(key, rows, prefixes[0]))
        elif rows:
            rep = _with_section(rep, key, (*(poisoned(key, rows[0], p) for p in prefixes),
                                           *rows))
    cats = list(rep.categories)
    cats[len(prefixes)] = replace(cats[len(prefixes)], used_s=-5 * 3600)  # the first real rows
    cats[len(prefixes) + 1] = replace(cats[len(prefixes) + 1], difference_s=-0.25 * 3600)
    return replace(rep, categories=tuple(cats))


def csv_sections(text: str) -> dict[str, list[list[str]]]:
    """The CSV report parsed back with csv.reader: {section: [header, *rows]}."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) == 1 and row[0].startswith("# "):
            current = sections.setdefault(row[0][2:], [])
        elif row:
            current.append(row)
    return sections


def assert_neutralised(text: str, rep: Report) -> int:
    """Every text cell of the CSV report is the report's text with a leading quote when
    it starts like a formula; every number parses back as the number. Returns how many
    cells were neutralised."""
    sections, cols, quoted = csv_sections(text), text_columns(rep), 0
    assert set(sections) == {key for _, key, _ in sections_of(rep)}
    for _, key, columns in sections_of(rep):
        header_row, *rows = sections[key]
        assert tuple(header_row) == tuple(convert.key(ROW_TYPES[key], c) for c in columns)
        for got, want in zip(rows, get_rows(rep, key), strict=True):
            for c, cell_text in zip(columns, got, strict=True):
                value = want[c]
                if (key, c) in cols and value:
                    value = "; ".join(value) if isinstance(value, list) else value
                    hostile = value.startswith(PREFIXES)
                    assert cell_text == ("'" + value if hostile else value), (key, c)
                    quoted += hostile
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    assert float(cell_text) == value and cell_text[:1] != "'", (key, c)
    return quoted


@pytest.mark.parametrize("first", range(len(PREFIXES)))
def test_csv_report_neutralises_every_formula_start_in_every_text_column(october, first):
    prefixes = PREFIXES[first:] + PREFIXES[:first]   # the single-row section takes each
    rep = hostile_report(october[0], prefixes)
    text = render(rep, "csv")
    quoted = assert_neutralised(text, rep)
    # (sections without rows in this month, e.g. no idle projects without GPU data, have
    # no row to poison)
    n_cols = len({(k, c) for k, c in text_columns(rep) if _section(october[0], k)})
    # every hostile row reached the CSV (the single-row commercial section takes one prefix)
    assert quoted == len(PREFIXES) * (n_cols - 2) + 2
    sections = csv_sections(text)
    cats = sections["categories"]
    used, diff = cats[0].index("gpu_hours"), cats[0].index("difference_gpu_hours")
    assert cats[1 + len(PREFIXES)][used] == "-5.0"     # a negative number stays a number
    assert cats[2 + len(PREFIXES)][diff] == "-0.25"


def test_csv_cell_decides_by_type_not_by_look():
    np = pytest.importorskip("numpy")
    assert csv_cell("-5") == "'-5" and csv_cell("=1+1") == "'=1+1"
    assert csv_cell(-5) == -5 and csv_cell(-0.25) == -0.25
    assert csv_cell(np.float64(-1.5)) == -1.5 and csv_cell(np.int64(-3)) == -3
    assert csv_cell("anna") == "anna" and csv_cell("a=b-c") == "a=b-c" and csv_cell("") == ""
    assert csv_cell(" @x") == "' @x" and csv_cell("\t-x") == "'\t-x"
    assert csv_cell(None) == "" and csv_cell(True) is True
    assert csv_cell(["=a", "b"]) == "'=a; b"
    assert csv_cell("x" * 40_000) == cut("x" * 40_000, CELL_MAX)


@pytest.fixture
def dashboard_downloads(october, monkeypatch):
    """Run a dashboard page on a given report; returns {label: downloaded text}."""
    pytest.importorskip("streamlit", reason="the dashboard extra is not installed")
    from streamlit.delta_generator import DeltaGenerator
    from streamlit.testing.v1 import AppTest

    from collector import clock
    from dashboard import state

    from .dashboard_fixture import VIEWS

    monkeypatch.setenv("GPU_USAGE_CONFIG", str(october[1]))
    monkeypatch.setenv(clock.ENV, str(NOW))
    got: dict[str, str] = {}
    original = DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):
        got[label] = data.decode() if isinstance(data, bytes) else data
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)

    def run(page: str, rep: Report) -> dict[str, str]:
        monkeypatch.setattr(state, "report", lambda period: rep)
        monkeypatch.setattr(state, "document", lambda period, fmt: b"stand-in")
        got.clear()
        at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=60)
        at.session_state["period_month"] = "2026-10"
        at.session_state["report_month"] = "2026-10"
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return dict(got)

    return run


def test_dashboard_csv_downloads_neutralise_every_formula_start(october, dashboard_downloads):
    rep = hostile_report(october[0], PREFIXES)
    report_csv = dashboard_downloads("reports", rep)["CSV"]
    assert report_csv == render(rep, "csv")
    assert assert_neutralised(report_csv, rep) >= len(PREFIXES) * 10

    mine = replace(october[0], users=(  # allocations stay real: the page draws burn-downs
        *(UserUse(p + PAYLOAD, PAYLOAD + p, 3600) for p in PREFIXES),
        *(UserUse("anna", p + "x", -900 if p == "-" else -5 * 3600) for p in PREFIXES)))
    rows = list(csv.reader(io.StringIO(dashboard_downloads("projects", mine)["Users (CSV)"])))
    assert rows[0] == ["user", "account", "gpu_hours"]
    for got, want in zip(rows[1:], document(mine)["users"], strict=True):
        for c, cell_text in zip(("user", "account"), got[:2], strict=True):
            hostile = want[c].startswith(PREFIXES)
            assert cell_text == ("'" + want[c] if hostile else want[c]), c
        assert float(got[2]) == want["gpu_hours"] and got[2][:1] != "'"
    assert sum(r[0].startswith("'") for r in rows[1:]) == len(PREFIXES)       # users
    assert sum(r[1].startswith("'") for r in rows[1:]) == len(PREFIXES)       # accounts
    assert {r[2] for r in rows[1:]} >= {"-5.0", "-0.25"}   # numbers, not neutralised text


# --- long fields (issue 17, item 8) --------------------------------------------------------
def test_an_unbroken_name_of_thousands_of_characters_is_cut_in_every_format(october, tmp_path):
    rep = october[0]
    long_org, huge = "O" * 4_000, "H" * 40_000
    rep = replace(rep, accounts=(replace(rep.accounts[0], organisation=long_org),
                                 *rep.accounts[1:]),
                  unmapped_accounts=(replace(rep.unmapped_accounts[0], account=huge),
                                     *rep.unmapped_accounts[1:]))
    text = pdf_text(pdf(rep), tmp_path)            # reportlab's LayoutError before
    flat = "".join(text.split())
    assert "…[cut,4,000characters]" in flat and "…[cut,40,000characters]" in flat
    assert "O" * (SHOWN_MAX + 1) not in flat

    wb = load_workbook(io.BytesIO(xlsx(rep)))
    org = next(c for c in wb["Accounts"]["D"] if c.value and c.value.startswith("OOO"))
    assert org.value == long_org                     # under Excel's limit: whole
    big = wb["Unmapped accounts"]["A2"].value
    assert len(big) == CELL_MAX and big.endswith("… [cut, 40,000 characters]")

    sections = csv_sections(render(rep, "csv"))
    assert [long_org] == [c for r in sections["accounts"] for c in r if c.startswith("OOO")]
    assert sections["unmapped_accounts"][1][0] == cut(huge, CELL_MAX)

    md = render(rep, "md")
    assert md_escape(cut(long_org, SHOWN_MAX)) in md and "O" * SHOWN_MAX not in md
    assert max(len(line) for line in md.splitlines()) < 40 * SHOWN_MAX
    assert render(rep, "json").count("O" * 4_000) == 1   # the data format keeps it whole


def test_cut_keeps_the_limit_and_says_how_long_the_text_was():
    assert cut("short", SHOWN_MAX) == "short"
    assert cut("x" * SHOWN_MAX, SHOWN_MAX) == "x" * SHOWN_MAX
    long = cut("y" * 20_000, SHOWN_MAX)
    assert len(long) == SHOWN_MAX and long.endswith("… [cut, 20,000 characters]")


@pytest.mark.parametrize(("text", "first", "inline"), [
    ("# Big", r"\# Big", "# Big"), ("  > quote", r"  \> quote", "  > quote"),
    ("- item", r"\- item", "- item"), ("+ item", r"\+ item", "+ item"),
    ("12. item", r"12\. item", "12. item"), ("3) item", r"3\) item", "3) item"),
    ("===", r"\===", "==="), ("a-b #c 1.", "a-b #c 1.", "a-b #c 1."),
    ("*x* [l](u)", r"\*x\* \[l\](u)", r"\*x\* \[l\](u)")])
def test_md_escape_at_the_start_of_a_line_escapes_block_markers(text, first, inline):
    # Text that starts a Markdown line (a dashboard caption opening with the facility's
    # name) must not make it a heading, quote, list or rule; inside a line it stays.
    assert md_escape(text, first=True) == first
    assert md_escape(text) == inline
