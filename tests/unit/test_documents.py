"""The PDF and Excel report documents of the synthetic October: the PDF renders and its
text holds the category table's numbers; every Excel cell equals the JSON report;
hostile strings from Slurm stay text."""

from __future__ import annotations

import copy
import io
import json
import subprocess

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from collector import periods
from collector.cli import main
from collector.documents import SHEETS, header, pdf, xlsx
from collector.render import SECTIONS, get_rows
from collector.report import build_report
from collector.store import Store

from .dashboard_fixture import NOW, make

# DejaVu Sans (fonts-dejavu-core) covers Latin, Greek and Cyrillic, not CJK.
HOSTILE = '<b>bold</b> & "quoted" | =HYPERLINK("http://x") Łódź Ωμέγα Кириллица'


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    path, _, settings = make(tmp_path_factory.mktemp("documents"))
    with Store.open_reader(settings.store.path) as store:
        rep = build_report(store, settings, periods.parse_month("2026-10", "UTC"), now=NOW)
    return json.loads(json.dumps(rep)), path


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
    for c in rep["categories"]:
        line = next(ln for ln in text.splitlines() if ln.split()[:2] == [c["category"], c["pool"]])
        assert f"{c['gpu_hours']:,.1f}" in line and f"{c['quota_gpu_hours']:,.1f}" in line
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
    assert wb.sheetnames == ["Report", *SHEETS.values()]
    for _, key, columns in SECTIONS:
        ws = wb[SHEETS[key]]
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == tuple(header(c) for c in columns)
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
    assert wb["Categories"]["C1"].value == "used [GPU-h]"
    assert wb["Categories"]["G2"].number_format == "0.0%"     # a share, kept as a fraction


def test_hostile_strings_stay_text_in_pdf_and_excel(october, tmp_path):
    rep = copy.deepcopy(october[0])
    rep["accounts"][0]["organisation"] = HOSTILE
    rep["unmapped_accounts"].append({"account": HOSTILE, "gpu_hours": 1.5,
                                     "in_slurm_tree": False})
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
