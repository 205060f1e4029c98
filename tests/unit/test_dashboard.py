"""Every dashboard page under Streamlit's AppTest on the synthetic October
(fakeslurm.py: 70 GPU-hours, 16 GPUs; the live view is the recorded squeue/sinfo of
the real cluster: 10 GPUs held, 10 pending, gpu04 drained), and the named queries
behind the pages."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit", reason="the dashboard extra (streamlit) is not installed")

from streamlit.testing.v1 import AppTest  # noqa: E402

from collector import clock  # noqa: E402
from collector.documents.office import header  # noqa: E402
from collector.engine import periods  # noqa: E402
from dashboard import queries  # noqa: E402

from . import fakeslurm  # noqa: E402
from .dashboard_fixture import NOW, VIEWS, make, toml_of  # noqa: E402

OCT_H = 31 * 24


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def env(site, monkeypatch):
    path, env, _ = site
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv(clock.ENV, str(NOW))   # the pages' "today" is the fixture's
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    return env


def run_page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(VIEWS / f"{name}.py"), default_timeout=60)
    at.session_state["period_month"] = "2026-10"
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def rendered(at: AppTest) -> list[str]:
    """The text of every element Streamlit renders as Markdown (main area and sidebar)."""
    kinds = ("title", "header", "subheader", "caption", "markdown", "warning", "info",
             "success", "error")
    return [e.value for kind in kinds for e in getattr(at, kind)]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_tiles_quota_table_and_commercial_check(env):
    at = run_page("overview")
    assert at.title[0].value == "GPU usage · 2026-10"
    m = metrics(at)
    assert m["Available GPU-hours"] == f"{16 * OCT_H:,} GPU-h"
    assert m["Used GPU-hours"] == "70 GPU-h"
    assert m["Utilisation"] == f"{70 / (16 * OCT_H):.1%}"
    assert m["GPUs allocated now"] == "10 of 16"
    table = at.dataframe[0].value.set_index(header("category"))
    assert table.loc["eu_science", header("gpu_hours")] == 16
    assert table.loc["science", header("gpu_hours")] == 43
    assert table.loc["science", header("quota_gpu_hours")] == 0.5 * 16 * OCT_H
    # commercial: 8 GPU-h of a eurohpc pool of 0.5 x 11,904 = 0.1 %, within the 20 % cap
    assert any("Commercial use: **0.1%**" in s.value for s in at.success)
    assert len(at.get("arrow_vega_lite_chart")) == 3


def test_overview_of_an_empty_month_explains_itself(env):
    at = run_page("overview", period_month="2026-05")
    assert any("No GPU use recorded in 2026-05" in i.value for i in at.info)


def test_categories_drill_down_to_project_and_user(env):
    at = run_page("categories", drill_category="science")
    projects, users = at.dataframe[0].value, at.dataframe[1].value
    assert projects.set_index(header("account")).loc["nl_x", header("gpu_hours")] == 43
    assert users.set_index(header("user")).loc["maria", header("gpu_hours")] == 43
    assert at.selectbox(key="drill_category").options == ["eu_science", "commercial",
                                                          "science", "(unmapped)"]


def test_allocations_table_filters_and_burn_chart(env):
    at = run_page("allocations")
    row = at.dataframe[0].value.set_index(header("account")).loc["nl_x"]
    assert row[header("granted_gpu_hours")] == 100 and row[header("used_gpu_hours_total")] == 43
    assert len(at.get("arrow_vega_lite_chart")) == 1
    at.radio(key="alloc_filter").set_value("over").run()
    # nl_x used 43 of 100 by 11-22: a linear plan of 100 x 53/61 days; not over, not under
    assert any("No allocation matches" in i.value for i in at.info)


def test_job_mix_and_queue_wait(env):
    at = run_page("job_mix")
    waits = at.dataframe[0].value.set_index(header("category"))
    assert waits.loc["science", header("jobs_started")] == 3
    sizes = at.dataframe[1].value
    assert sizes[header("gpu_hours")].sum() == 70


def test_live_gpus_per_category(env):
    at = run_page("live")
    m = metrics(at)
    assert m["GPUs running"] == "10 of 16"
    assert m["GPUs requested by pending jobs"] == "10"
    assert m["GPUs on available nodes"] == "12"
    live = at.dataframe[0].value.set_index(header("category"))
    assert live.loc["commercial", header("running_gpus")] == 1
    assert live.loc["(unmapped)", header("running_gpus")] == 9


def test_live_without_slurm_says_why(env, monkeypatch):
    import streamlit as st
    st.cache_data.clear()  # the live view is cached for 30 s, like the exporter's
    monkeypatch.setenv("FAKE_SLURM_FAIL", "1")
    at = run_page("live")
    assert any("Slurm cannot be reached" in w.value for w in at.warning)
    # Slurm's own words (stderr) are shown as text, never rendered as Markdown.
    assert "squeue" in at.code[0].value and at.code[0].language == "plaintext"


def test_data_quality_shows_the_unmapped_account_and_missing_sreport_check(env):
    at = run_page("data_quality")
    m = metrics(at)
    assert m["Unmapped accounts"] == "1" and m["Jobs without GPU accounting"] == "1"
    assert at.dataframe[0].value.set_index(header("account")).loc["stray", header("gpu_hours")] == 3
    assert any("gpu-usage verify" in i.value for i in at.info)


def test_reports_page_offers_the_documents(env):
    at = run_page("reports", report_month="2026-10")
    buttons = [e for e in at.main if getattr(e, "type", "") == "download_button"]
    assert len(buttons) == 4
    assert "Fake Factory" in at.caption[0].value
    # The Markdown document is shown as its text, not rendered: Streamlit would make
    # links and icons of URLs and :shortcodes: in organisations' text, whatever the
    # escaping.
    assert not at.markdown
    assert at.code[0].language == "markdown" and at.code[0].value.startswith("# ")
    assert "Fake Factory" in at.code[0].value


def test_a_missing_store_is_a_message_not_a_traceback(env, tmp_path, monkeypatch, site):
    text = site[0].read_text().replace(str(site[2].store.path), str(tmp_path / "none"))
    (tmp_path / "p.toml").write_text(text)
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(tmp_path / "p.toml"))
    at = AppTest.from_file(str(VIEWS / "overview.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No data yet" in w.value for w in at.warning)


def test_a_bad_policy_file_names_the_problem(env, tmp_path, monkeypatch):
    (tmp_path / "bad.toml").write_text("[facility]\nname = 'x'\ntimezone = 'Mars/Base'\n")
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(tmp_path / "bad.toml"))
    at = AppTest.from_file(str(VIEWS / "overview.py"), default_timeout=60).run()
    assert not at.exception
    assert "not valid" in at.error[0].value and "Mars/Base" in at.code[0].value


# --- the named queries -------------------------------------------------------------------
def test_daily_trend_adds_up_to_the_report(site):
    _, _, settings = site
    period = periods.parse_month("2026-10", "UTC")
    days = queries.daily_by_category(settings, period, now=NOW)
    assert days["gpu_hours"].sum() == pytest.approx(fakeslurm.TOTAL_OCT_GPU_H)
    assert set(days["category"]) == {"eu_science", "commercial", "science", "(unmapped)"}
    rep = queries.report(settings, period, now=NOW)
    by_cat = days.groupby("category")["gpu_hours"].sum()
    for c in rep.categories:
        assert by_cat.get(c.category, 0) == pytest.approx(c.used_s / 3600)


def test_breakdowns_group_the_same_rows(site):
    _, _, settings = site
    rows = queries.usage_rows(settings, periods.parse_month("2026-10", "UTC"), now=NOW)
    by_type = queries.breakdown(rows, "gpu_type")
    assert by_type.to_dict("records") == [{"gpu_type": "h100", "gpu_hours": 70.0,
                                           "share": 1.0}]
    assert queries.breakdown(rows, "user", account="nl_x")["gpu_hours"].tolist() == [43.0]


def test_burn_down_accumulates_daily_use_against_the_plan(site):
    _, _, settings = site
    burn = queries.burn_down(settings, "nl_x", now=NOW)
    assert len(burn) == 61 and burn["plan_gpu_hours"].iloc[-1] == 100
    assert burn.set_index("day")["used_gpu_hours"].dropna().iloc[-1] == 43
    assert burn["used_gpu_hours"].isna().sum() == 61 - 32   # days after 11-01 have no use yet
    with pytest.raises(KeyError, match="no allocation"):
        queries.burn_down(settings, "com_acme")


def test_period_picker_periods():
    from collector.config import parse
    s = parse(fakeslurm.POLICY)
    assert queries.period_of(s, "quarter", "2026Q3").label == "2026Q3"
    assert queries.recent_months(s, 3, now=NOW) == ["2026-11", "2026-10", "2026-09"]
    from datetime import date
    assert queries.period_of(s, "custom", (date(2026, 10, 1), date(2026, 10, 7))).hours == 168


def test_the_daily_chart_ticks_each_day_once():
    """On the first days of a month the axis showed one date under a dozen ticks."""
    import pandas as pd

    from dashboard import charts
    days = pd.DataFrame({"day": pd.to_datetime(["2026-12-01", "2026-12-02"]),
                         "category": ["science", "science"], "gpu_hours": [1.0, 2.0]})
    axis = charts.daily_stack(days, ["science"]).to_dict()["encoding"]["x"]["axis"]
    assert axis["tickCount"] == {"interval": "day", "step": 1} and axis["format"] == "%d %b"
    assert charts.day_ticks(31) == {"interval": "day", "step": 3}
    assert charts.day_ticks(366)["step"] == 25


def test_energy_page_says_when_the_cluster_records_none(env):
    at = run_page("energy")
    assert any("not recorded on this cluster" in i.value for i in at.info)
    assert not at.get("arrow_vega_lite_chart")


def test_energy_page_by_category_with_estimates(tmp_path, monkeypatch):
    from .test_energy import _energy_jobs
    path, env, _ = make(tmp_path, _energy_jobs(), {"energy": {"pue": 1.25}})
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv(clock.ENV, str(NOW))
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    at = run_page("energy")
    m = metrics(at)
    assert m["Energy (nodes)"] == "40 kWh" and m["kWh per GPU-hour"] == "1.000"
    assert m["GPU-hours with energy"] == "57.1%" and m["Facility (est., x PUE)"] == "50 kWh"
    table = at.dataframe[0].value.set_index(header("category"))
    assert table.loc["science", header("kwh")] == 40.0
    assert len(at.get("arrow_vega_lite_chart")) == 1


def test_efficiency_page_without_gpu_data_shows_quota_and_allocated_only(env):
    at = run_page("efficiency")
    assert any("not recorded on this cluster" in i.value for i in at.info)
    assert len(at.get("arrow_vega_lite_chart")) == 1      # quota and allocated: known
    table = at.dataframe[0].value.set_index(header("category"))
    assert table[header("busy_gpu_hours")].isna().all()   # no data, never 0


def test_efficiency_page_busy_idle_and_the_most_idle_projects(tmp_path, monkeypatch):
    jobs, steps = fakeslurm.gpu_use_jobs()
    path, env, _ = make(tmp_path, jobs, None, steps)
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv(clock.ENV, str(NOW))
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    at = run_page("efficiency", period_month="2026-11")   # the month job 103 ended in
    m = metrics(at)
    assert m["Idle-allocated"] == "25.0%" and m["Busy (upper bound)"] == "60.0%"
    assert m["Jobs idle > 1 h"] == "1", m
    table = at.dataframe[0].value.set_index(header("category"))
    assert table.loc["commercial", header("idle_allocated_gpu_hours")] == 6.0
    top = at.dataframe[1].value
    assert list(top[header("group")]) == ["com_acme"]
    chart = queries.efficiency_bars(table.rename(columns={
        header(k): k for k in ("quota_gpu_hours", "gpu_hours", "busy_gpu_hours",
                               "idle_allocated_gpu_hours")}).reset_index().rename(
        columns={header("category"): "category"}))
    assert set(chart[chart.category == "commercial"].measure) == {
        "quota", "allocated", "busy (upper bound)", "idle-allocated"}
    others = chart[chart.category != "commercial"]  # no GPU data: quota and allocated only
    assert set(others.measure) <= {"quota", "allocated"} and len(others)


def test_the_efficiency_sentence_names_categories_as_text(tmp_path, monkeypatch):
    # The sentence names the categories over the idle threshold (policy names, which
    # may hold * or [): escaped in the caption, not emphasis or a link.
    jobs, steps = fakeslurm.gpu_use_jobs()
    name = "com*mer*cial [x](y)"
    cats = [dict(c, name=name) if c["name"] == "commercial" else c
            for c in fakeslurm.POLICY["categories"]]
    path, env, _ = make(tmp_path, jobs, {"categories": cats, "commercial": {
        "category": name, "pool": "eurohpc", "max_share_of_pool": 0.2},
        "efficiency": {"idle_share_alert": 0.2}}, steps)
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(path))
    monkeypatch.setenv(clock.ENV, str(NOW))
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", env["FAKE_SLURM_DIR"])
    at = run_page("efficiency", period_month="2026-11")
    caption = next(c.value for c in at.caption if c.value.startswith("GPU efficiency"))
    assert r"alert threshold (20%): com\*mer\*cial \[x\](y)" in caption, caption


@pytest.mark.parametrize("link", [
    "[Session expired - sign in again](https://evil.example/sso)![](https://evil.example/p)",
    "2026-10 [x](https://evil.example)", "october"])
def test_a_link_naming_a_period_of_another_form_is_ignored(env, link):
    """Anyone can send a link to the dashboard: a month that is not YYYY-MM, last or
    this is not taken (a message about it would show the text back as Markdown)."""
    at = AppTest.from_file(str(VIEWS / "overview.py"), default_timeout=60)
    at.query_params["month"] = link
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["period_month"] != link
    assert all("evil" not in (e.value or "") for e in at.markdown)


def test_a_linked_month_past_the_calendar_is_a_message_not_a_traceback(env):
    at = AppTest.from_file(str(VIEWS / "overview.py"), default_timeout=60)
    at.query_params["month"] = "0000-01"
    at.run()
    assert not at.exception
    assert "expected YYYY-MM" in at.sidebar.error[0].value


def test_a_linked_month_of_the_right_form_is_taken(env):
    at = AppTest.from_file(str(VIEWS / "overview.py"), default_timeout=60)
    at.query_params["month"] = "2026-10"
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["period_month"] == "2026-10"


def test_tables_guard_formulas_as_the_csv_report_does():
    """Streamlit's own "Download as CSV" of a table writes cells as they are shown."""
    import pandas as pd

    from dashboard.state import guarded

    df = pd.DataFrame({"organisation": ['=HYPERLINK("https://evil.example","x")', "NWO",
                                        "@SUM(A1)", None],
                       "gpu_hours": [1.5, 2.0, 3.0, 4.0]})
    out = guarded(df)
    assert list(out["organisation"])[:3] == ['\'=HYPERLINK("https://evil.example","x")',
                                             "NWO", "'@SUM(A1)"]
    assert out["organisation"].iloc[3] is None
    assert list(out["gpu_hours"]) == [1.5, 2.0, 3.0, 4.0]


def test_the_facility_name_shows_as_text_not_markup(env, tmp_path, monkeypatch, site):
    # The policy is the operator's, but a name like this still must not become a
    # bracketed link or emphasis on the pages that show it in Markdown. (The bare URL
    # inside still autolinks: Streamlit does that whatever the escaping.)
    name = "# Fake [Factory](https://evil.example) *now*"   # first on its line: no heading
    text = site[0].read_text()
    old = '"name" = "Fake Factory"'
    assert old in text
    (tmp_path / "p.toml").write_text(text.replace(old, f'"name" = "{name}"'))
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(tmp_path / "p.toml"))
    for page in ("overview", "reports"):
        at = run_page(page, report_month="2026-10")
        caption = at.caption[0].value
        assert caption.startswith(r"\# Fake \[Factory\](https://evil.example) \*now\*"), caption


def test_names_from_slurm_on_the_data_quality_page_are_table_cells(env, tmp_path, monkeypatch,
                                                                    site):
    # An account two categories claim: its name (Slurm's, and `www.x.org` would be a
    # valid one that Streamlit autolinks in any Markdown) goes to a table, not a sentence.
    policy = {**fakeslurm.POLICY, "store": {"path": str(site[2].store.path)}}
    policy["categories"] = [*policy["categories"], {
        "name": "all_eurohpc", "pool": "eurohpc", "quota_share": 0.1,
        "accounts_under": ["eurohpc"]}]
    (tmp_path / "p.toml").write_text(toml_of(policy))
    monkeypatch.setenv("GPU_USAGE_CONFIG", str(tmp_path / "p.toml"))
    at = run_page("data_quality")
    assert any("several categories" in w.value for w in at.warning)
    assert not [t for t in rendered(at) if "ehpc_a" in t or "com_acme" in t]
    tables = [t.value for t in at.dataframe if header("categories") in t.value.columns]
    assert len(tables) == 1
    got = dict(zip(tables[0][header("account")], tables[0][header("categories")], strict=True))
    assert got["ehpc_a"] == "eu_science, all_eurohpc" and "com_acme" in got
