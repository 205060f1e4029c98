"""The Streamlit edge: settings, the period picker, cached queries and formatting.

Queries are cached with a TTL and keyed by the store's newest collection, so a
finished collection shows at once and nothing is recomputed in between.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import streamlit as st

from collector import access, clock
from collector.access import Viewer
from collector.config import ConfigError, Settings, load
from collector.documents.office import header
from collector.documents.text import csv_cell, md_escape
from collector.engine.periods import Period, PeriodError
from collector.store.database import StoreError

from . import queries

CONFIG_ENV = "GPU_USAGE_CONFIG"
STORE_TTL_S = 300      # a cached store query lives at most this long
VERSION_TTL_S = 15     # how often the store is asked for its newest collection
LIVE_TTL_S = 30        # squeue/sinfo at most this often, as the exporter


def config_path() -> str:
    return os.environ.get(CONFIG_ENV, "facility.toml")


@st.cache_resource(show_spinner=False)
def _settings(path: str, mtime: float) -> Settings:
    return load(Path(path))


def settings() -> Settings:
    path = config_path()
    try:
        return _settings(path, Path(path).stat().st_mtime)
    except FileNotFoundError:
        said(st.error, "Policy file not found; start the dashboard with `gpu-usage "
             f"dashboard --config FILE` (or set {CONFIG_ENV}):", path)
    except ConfigError as exc:
        said(st.error, "The policy file is not valid:", f"{path}\n{exc}")
    st.stop()
    raise AssertionError  # pragma: no cover - st.stop() does not return


@st.cache_resource(show_spinner=False, ttl=60)
def _secret(path: str, mtime: float) -> str | None:
    auth = _settings(path, mtime).dashboard.auth
    return None if auth is None else access.read_secret(auth)


def viewer() -> Viewer:
    """Who sent this session's request: from the proxy's headers when [dashboard.auth]
    is configured, else the local operator (the dashboard then listens on localhost)."""
    cfg, path = settings(), config_path()
    if cfg.dashboard.auth is None:
        return access.LOCAL
    try:
        secret = _secret(path, Path(path).stat().st_mtime)
    except ConfigError as exc:
        said(st.error, "The dashboard cannot check who you are:", str(exc))
        st.stop()
    sent = st.context.headers
    return access.viewer(cfg.dashboard.auth, sent.to_dict(), secret,
                         repeated=[k for k in sent if len(sent.get_all(k)) > 1])


def operator_only() -> None:
    """Stop the page unless the viewer is an operator (every facility-wide figure)."""
    who = viewer()
    if not who.operator:
        st.error("This page shows the whole facility: operators only.")
        st.stop()


@st.cache_data(ttl=VERSION_TTL_S, show_spinner=False)
def store_version(path: str) -> tuple[int, float]:
    return queries.store_version(_settings(path, Path(path).stat().st_mtime))


def _cfg(path: str) -> Settings:
    return _settings(path, Path(path).stat().st_mtime)


@st.cache_data(ttl=STORE_TTL_S, show_spinner="Reading the store...", max_entries=64)
def _report(path: str, period: Period, cluster: str | None, version: tuple[int, float]
            ) -> dict:
    return queries.report(_cfg(path), period, cluster=cluster)


@st.cache_data(ttl=STORE_TTL_S, show_spinner=False, max_entries=32)
def _daily(path: str, period: Period, cluster: str | None, version: tuple[int, float]
           ) -> pd.DataFrame:
    return queries.daily_by_category(_cfg(path), period, cluster=cluster)


@st.cache_data(ttl=STORE_TTL_S, show_spinner=False, max_entries=32)
def _rows(path: str, period: Period, cluster: str | None, version: tuple[int, float]
          ) -> pd.DataFrame:
    return queries.usage_rows(_cfg(path), period, cluster=cluster)


@st.cache_data(ttl=STORE_TTL_S, show_spinner=False, max_entries=64)
def _burn(path: str, account: str, version: tuple[int, float]) -> pd.DataFrame:
    return queries.burn_down(_cfg(path), account)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def _live(path: str) -> queries.Live:
    return queries.live(_cfg(path))


@st.cache_data(ttl=STORE_TTL_S, show_spinner=False)
def _checks(path: str, version: tuple[int, float]) -> pd.DataFrame:
    return queries.sreport_checks(_cfg(path))


def _guard(fn, *args):
    """Run a cached query; a missing or unreadable store stops the page with a message."""
    try:
        return fn(*args)
    except StoreError as exc:
        said(st.warning, "No data yet: run `gpu-usage collect` with the dashboard's policy "
             "file first.", f"{exc}\ngpu-usage collect --config {config_path()}")
        st.stop()


def _version() -> tuple[int, float]:
    return _guard(store_version, config_path())


def cluster() -> str | None:
    """The cluster the pages show (the sidebar's pick); None: the whole facility."""
    return st.session_state.get("cluster")


def report(period: Period) -> dict:
    """The period's report as this viewer may see it (a PI: their projects only, on
    every cluster)."""
    scope = cluster() if viewer().operator else None
    return access.scope_report(_guard(_report, config_path(), period, scope, _version()),
                               viewer())


def daily(period: Period) -> pd.DataFrame:
    operator_only()
    return _guard(_daily, config_path(), period, cluster(), _version())


def rows(period: Period) -> pd.DataFrame:
    operator_only()
    return _guard(_rows, config_path(), period, cluster(), _version())


def burn(account: str) -> pd.DataFrame:
    if not viewer().may_see(account):
        st.error("No access to this project.")
        st.stop()
    return _guard(_burn, config_path(), account, _version())


def checks() -> pd.DataFrame:
    operator_only()
    return _guard(_checks, config_path(), _version())


@st.cache_data(ttl=STORE_TTL_S, show_spinner="Making the document...", max_entries=16)
def _document(path: str, period: Period, cluster: str | None, fmt: str,
              version: tuple[int, float]) -> bytes:
    from collector.documents.office import render_document
    return render_document(_report(path, period, cluster, version), fmt)


def document(period: Period, fmt: str) -> bytes:
    """The PDF or Excel report of the period, as `gpu-usage report --format` writes it."""
    operator_only()
    return _guard(_document, config_path(), period, cluster(), fmt, _version())


def live() -> tuple[queries.Live | None, str | None]:
    """The live view, or (None, why not) when squeue/sinfo cannot be reached."""
    from collector.slurm.commands import SlurmError
    operator_only()
    try:
        return _live(config_path()), None
    except SlurmError as exc:
        return None, str(exc)


# --- the cluster and period pickers (in the sidebar, shared by every page) -------------
FACILITY = "Whole facility"


def cluster_picker(cfg: Settings) -> str | None:
    """With several clusters, an operator picks one or the whole facility (a link may
    name it: ?cluster=NAME); None: the facility."""
    names = cfg.slurm.clusters
    if len(names) == 1 or not viewer().operator:
        return None
    if "cluster_pick" not in st.session_state:
        linked = st.query_params.get("cluster")
        st.session_state["cluster_pick"] = linked if linked in names else FACILITY
    picked = st.sidebar.selectbox("Cluster", (FACILITY, *names), key="cluster_pick")
    return None if picked == FACILITY else picked


_LINKED = {"month": re.compile(r"[0-9]{4}-[0-9]{2}|last|this"),
           "quarter": re.compile(r"[0-9]{4}[Qq][1-4]|last|this"),
           "year": re.compile(r"[0-9]{4}|last|this")}


def _from_link() -> None:
    """A link may name the period: ?month=2026-10, ?quarter=2026Q3 or ?year=2026
    (applied once per session, before the widgets are drawn)."""
    if st.session_state.get("_link_applied"):
        return
    st.session_state["_link_applied"] = True
    params = st.query_params
    for kind in ("month", "quarter", "year"):
        # Anyone can send a link: only a value of the period's form is taken (a message
        # about another would show it back), anything else is ignored.
        if kind in params and _LINKED[kind].fullmatch(params[kind]):
            st.session_state["period_kind"] = kind
            st.session_state[f"period_{kind}"] = params[kind]
            return


def period_picker(cfg: Settings) -> Period:
    side = st.sidebar
    _from_link()
    kind = side.radio("Period", queries.PERIOD_KINDS, horizontal=True, key="period_kind",
                      format_func=str.capitalize)
    today = clock.today(cfg.facility.timezone)
    try:
        if kind == "month":
            months = queries.recent_months(cfg)
            if st.session_state.get("period_month") not in (None, *months):
                months.append(st.session_state["period_month"])  # an older month from a link
            value = side.selectbox("Month", months, key="period_month")
        elif kind == "quarter":
            quarters = [f"{y}Q{q}" for y in range(today.year, today.year - 3, -1)
                        for q in (4, 3, 2, 1) if (y, q) <= (today.year, (today.month + 2) // 3)]
            if st.session_state.get("period_quarter") not in (None, *quarters):
                quarters.append(st.session_state["period_quarter"])
            value = side.selectbox("Quarter", quarters, key="period_quarter")
        elif kind == "year":
            years = [str(y) for y in range(today.year, today.year - 5, -1)]
            if st.session_state.get("period_year") not in (None, *years):
                years.append(st.session_state["period_year"])
            value = side.selectbox("Year", years, key="period_year")
        else:
            first = today.replace(day=1)
            picked = side.date_input("From, to (both included)", (first, today),
                                     key="period_custom")
            if not isinstance(picked, tuple) or len(picked) != 2:
                side.info("Pick the last day too.")
                st.stop()
            value = picked
        return queries.period_of(cfg, kind, value)
    except PeriodError as exc:
        side.error(md_escape(str(exc)))
        st.stop()
        raise AssertionError from exc  # pragma: no cover


def current_period() -> Period:
    period = st.session_state.get("period")
    if period is None:  # a page run without the app around it (tests of one page)
        period = period_picker(settings())
    return period


# --- formatting ------------------------------------------------------------------------
def gpu_h(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} GPU-h"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def guarded(df: pd.DataFrame) -> pd.DataFrame:
    """The table's text as the report's CSV has it (documents.text.csv_cell): Streamlit's
    own "Download as CSV" on every table quotes but does not guard formulas, so text a
    spreadsheet would run (=, +, -, @ first) gets its leading ' here already."""
    return df.apply(lambda col: col.map(lambda v: csv_cell(v) if isinstance(v, str) else v)
                    if col.dtype == object else col)


def table(df: pd.DataFrame, hours: tuple[str, ...] = (), ratios: tuple[str, ...] = (),
          counts: tuple[str, ...] = (), height: int | None = None,
          rates: tuple[str, ...] = ()) -> None:
    """A table with thousands separators, one decimal on GPU-hours, % on ratios, three
    decimals on rates (kWh per GPU-hour)."""
    fmt = {c: "{:,.1f}" for c in hours if c in df} | {c: "{:.1%}" for c in ratios if c in df} \
        | {c: "{:,.0f}" for c in counts if c in df} | {c: "{:,.3f}" for c in rates if c in df}
    names = {c: header(c) for c in df.columns}
    shown = guarded(df).rename(columns=names)
    styled = shown.style.format({names[c]: f for c, f in fmt.items()}, na_rep="-")
    st.dataframe(styled, hide_index=True, use_container_width=True,
                 **({"height": height} if height else {}))


def said(alert, sentence: str, text: str) -> None:
    """A message whose detail is text from elsewhere (Slurm's stderr, an error, a path,
    a login): the sentence rendered, the text below it as it is (st.code renders no
    Markdown: no link, image or icon, whatever the text holds)."""
    alert(sentence)
    st.code(text, language=None, wrap_lines=True)


def empty(message: str) -> None:
    st.info(message)


def age(epoch: float) -> str:
    s = max(0, clock.now() - epoch)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago" if s < 7200 else \
        f"{s / 3600:.1f} h ago"
