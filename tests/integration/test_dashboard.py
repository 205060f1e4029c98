"""The dashboard and the report documents on the real test cluster's data:

- `gpu-usage verify` finds no account that differs from sreport, and the data-quality
  page shows the checked months;
- every page runs under Streamlit's AppTest against the collected store and shows the
  report's figures;
- a real headless Chromium (Debian's) opens the running dashboard, visits every page
  through the sidebar, finds no error element, and saves a screenshot of each
  (test artefacts in $GPU_USAGE_ARTIFACTS, default var/test-artifacts/);
- the PDF's text holds the category table's numbers; the Excel cells equal the JSON.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from collector import clock
from collector.documents import convert
from collector.documents.office import SHEETS, header
from collector.documents.text import OPTIONAL, ROW_TYPES, SECTIONS
from testcluster import history
from testcluster.browser import (
    CHARTS,
    PAGES,
    TITLES,
    chromium,
    dashboard,
    errors_on_page,
    open_page,
    wait_rendered,
)

from .conftest import some_history
from .test_collector import gpu_usage, write_policy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("GPU_USAGE_ARTIFACTS", ROOT / "var" / "test-artifacts"))
VIEWS = ROOT / "dashboard" / "views"


@pytest.fixture(scope="module")
def site(lay, cli_args, tmp_path_factory):
    """A policy on a store collected from the cluster, and its closed backfilled months."""
    spec = some_history(lay, cli_args)
    path = write_policy(tmp_path_factory.mktemp("dashboard"), spec.start)
    gpu_usage(lay, "collect", "--config", str(path))
    months = [time.strftime("%Y-%m", time.gmtime(history.add_months(spec.start, i)))
              for i in range(spec.months) if history.add_months(spec.start, i + 1) <= clock.now()]
    assert months, "the backfill has no closed month"
    return path, months


def report_json(lay, path: Path, month: str) -> dict:
    return json.loads(gpu_usage(lay, "report", "--config", str(path), "--month", month,
                                "--format", "json").stdout)


def test_verify_finds_every_account_equal_to_sreport(lay, site):
    path, months = site
    args = [a for m in months for a in ("--month", m)]
    out = gpu_usage(lay, "verify", "--config", str(path), *args).stdout
    for m in months:
        assert f"{m}: " in out and " 0 differ by more than 1 GPU-minute" in out, out


@pytest.fixture
def page_env(lay, site, monkeypatch):
    path, _ = site
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv("SLURM_CONF", lay.env()["SLURM_CONF"])
    return path


def test_every_page_runs_under_apptest_with_the_report_figures(lay, site, page_env):
    from streamlit.testing.v1 import AppTest

    path, months = site
    month = months[-1]
    rep = report_json(lay, path, month)
    for page in PAGES:
        at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=120)
        at.session_state["period_month"] = at.session_state["report_month"] = month
        at.run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        assert at.title[0].value.startswith(TITLES[page]), page
        metrics = {m.label: m.value for m in at.metric}
        if page == "overview":
            cap = rep["capacity"]
            assert metrics["Used GPU-hours"] == f"{cap['allocated_gpu_hours']:,.0f} GPU-h"
            assert metrics["Available GPU-hours"] == f"{cap['available_gpu_hours']:,.0f} GPU-h"
            table = at.dataframe[0].value.set_index(header("category"))
            for c in rep["categories"]:
                assert table.loc[c["category"], header("gpu_hours")] == c["gpu_hours"]
        if page == "allocations":
            table = at.dataframe[0].value.set_index(header("account"))
            for a in rep["allocations"]:
                assert table.loc[a["account"], header("used_gpu_hours_total")] == \
                    a["used_gpu_hours_total"]
        if page == "energy":   # the backfill records energy for every finished job
            assert metrics["Energy (nodes)"] == f"{rep['energy']['total']['kwh']:,.0f} kWh"
            table = at.dataframe[0].value.set_index(header("category"))
            for c in rep["energy"]["categories"]:
                assert table.loc[c["category"], header("kwh")] == c["kwh"] or c["kwh"] is None
        if page == "live":
            assert metrics["GPUs running"].endswith(f"of {rep['capacity']['gpus']}")
        if page == "data_quality":
            checks = at.dataframe[-1].value.set_index("period")
            assert set(months) <= set(checks.index)
            assert (checks.loc[months, "differing"] == 0).all()


def test_a_real_browser_visits_every_page_without_an_error(lay, site):
    path, months = site
    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    env = dict(lay.env())
    with dashboard(path, env, log=ARTIFACTS / "dashboard.log") as url:
        driver = chromium()
        try:
            driver.get(f"{url}/?month={months[-1]}")
            wait_rendered(driver, charts=CHARTS["overview"], timeout_s=120)
            for page in PAGES:  # through the sidebar, as an operator does
                open_page(driver, page, TITLES[page], charts=CHARTS.get(page, 0),
                          timeout_s=120)
                driver.save_screenshot(str(shots / f"{page}.png"))
                assert errors_on_page(driver) == [], page
                assert f"· {months[-1]}" in driver.find_element("css selector", "h1").text \
                    or page in ("live", "reports")
        finally:
            driver.quit()
    assert sorted(p.stem for p in shots.glob("*.png")) == sorted(PAGES)


def test_pdf_and_excel_hold_the_json_figures(lay, site, tmp_path):
    path, months = site
    month = months[-1]
    rep = report_json(lay, path, month)
    for fmt in ("pdf", "xlsx"):
        gpu_usage(lay, "report", "--config", str(path), "--month", month, "--format", fmt,
                  "--out", str(tmp_path / f"r.{fmt}"))
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    for c in rep["categories"]:
        line = next(ln for ln in text.splitlines() if ln.split()[:2] == [c["category"], c["pool"]])
        assert f"{c['gpu_hours']:,.1f}" in line, c["category"]
    subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "2", str(tmp_path / "r.pdf"),
                    str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) == 2
    wb = load_workbook(io.BytesIO((tmp_path / "r.xlsx").read_bytes()))
    # One cluster: no Clusters sheet (an optional section without rows is left out).
    assert rep["clusters"] == [] and "Clusters" not in wb.sheetnames
    for _, key, columns in SECTIONS:
        if key in OPTIONAL:
            continue
        rows = list(wb[SHEETS[key]].iter_rows(values_only=True))
        assert rows[0] == tuple(convert.label(ROW_TYPES[key], c) for c in columns)
        section = rep
        for part in key.split("."):
            section = section[part]
        keys = [convert.key(ROW_TYPES[key], c) for c in columns]
        for got, want in zip(rows[1:], [section] if isinstance(section, dict) else section,
                             strict=True):
            for c, value in zip(keys, got, strict=True):
                w = want[c]
                assert value == (("; ".join(map(str, w)) or None) if isinstance(w, list)
                                 else w), (key, c)
